//! File-based catalog blobs (`olm.package`, `olm.channel`, `olm.bundle`), as
//! defined by operator-registry's declcfg schema, and their YAML stream.

use serde_json::{json, Value};

use super::semver_template::Channel;
use super::{yaml, OlmError};

/// The `olm.package` blob.
pub fn package(
    name: &str,
    default_channel: &str,
    description: Option<&str>,
    icon: Option<&Value>,
) -> Value {
    let mut blob = json!({
        "schema": "olm.package",
        "name": name,
        "defaultChannel": default_channel,
    });
    if let Some(description) = description {
        blob["description"] = json!(description);
    }
    if let Some(icon) = icon {
        blob["icon"] = icon.clone();
    }
    blob
}

/// An `olm.channel` blob; absent `replaces` and empty `skips` are left out,
/// as opm leaves them out.
pub fn channel(package: &str, channel: &Channel) -> Value {
    let entries: Vec<Value> = channel
        .entries
        .iter()
        .map(|entry| {
            let mut e = json!({ "name": entry.name });
            if let Some(replaces) = &entry.replaces {
                e["replaces"] = json!(replaces);
            }
            if !entry.skips.is_empty() {
                e["skips"] = json!(entry.skips);
            }
            e
        })
        .collect();
    json!({
        "schema": "olm.channel",
        "package": package,
        "name": channel.name,
        "entries": entries,
    })
}

/// What an `olm.bundle` blob says about its bundle.
pub struct BundleFacts<'a> {
    pub name: &'a str,
    pub package: &'a str,
    pub image: &'a str,
    pub version: &'a semver::Version,
    /// `(group, version, kind)` of each API the bundle serves.
    pub gvks: &'a [(String, String, String)],
    /// `(name, image)` of each image the bundle runs.
    pub related_images: &'a [(String, String)],
}

/// An `olm.bundle` blob with `olm.package` and `olm.gvk` properties.
pub fn bundle(facts: &BundleFacts<'_>) -> Value {
    let mut properties = vec![json!({
        "type": "olm.package",
        "value": { "packageName": facts.package, "version": facts.version.to_string() },
    })];
    for (group, version, kind) in facts.gvks {
        properties.push(json!({
            "type": "olm.gvk",
            "value": { "group": group, "version": version, "kind": kind },
        }));
    }
    // opm lists the bundle image itself (unnamed) among the related images.
    let mut related = vec![json!({ "name": "", "image": facts.image })];
    related.extend(
        facts
            .related_images
            .iter()
            .map(|(name, image)| json!({ "name": name, "image": image })),
    );
    json!({
        "schema": "olm.bundle",
        "name": facts.name,
        "package": facts.package,
        "image": facts.image,
        "properties": properties,
        "relatedImages": related,
    })
}

/// The version in a bundle blob's `olm.package` property.
pub fn bundle_version(blob: &Value) -> Option<semver::Version> {
    blob.get("properties")?
        .as_array()?
        .iter()
        .find(|p| p.get("type").and_then(Value::as_str) == Some("olm.package"))?
        .pointer("/value/version")?
        .as_str()
        .and_then(|v| semver::Version::parse(v).ok())
}

/// The blobs as one YAML stream, each document introduced by `---`.
pub fn to_yaml_stream(header: &str, blobs: &[Value]) -> Result<String, OlmError> {
    let mut out = String::from(header);
    for blob in blobs {
        out.push_str("---\n");
        out.push_str(&yaml::to_yaml(blob, "a catalog blob")?);
    }
    Ok(out)
}
