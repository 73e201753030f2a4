//! The `olm.semver` catalog template, rendered as `opm alpha render-template
//! semver` does: bundles listed per archetype (candidate, fast, stable) become
//! channels named `ARCHETYPE-vMAJOR` (and/or `ARCHETYPE-vMAJOR.MINOR`), linked
//! so that the last bundle of each minor version `replaces` the highest bundle
//! of the previous minor and `skips` the lesser ones; no edge crosses an
//! archetype, channel kind or major version.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::OlmError;

/// Channel archetypes, least stable first (their order is their priority).
pub const ARCHETYPES: [&str; 3] = ["candidate", "fast", "stable"];

/// Which channels the template asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StreamKind {
    Major,
    Minor,
}

/// A parsed semver template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub generate_major: bool,
    pub generate_minor: bool,
    pub default_preference: StreamKind,
    /// Bundle images per archetype, in [`ARCHETYPES`] order.
    pub images: [Vec<String>; 3],
}

impl Template {
    /// Every image the template lists, once, in order of first mention.
    pub fn all_images(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.images
            .iter()
            .flatten()
            .filter(|image| seen.insert(image.as_str()))
            .cloned()
            .collect()
    }
}

/// Looks a key up case-insensitively: opm decodes the template with Go's
/// JSON rules, so `Stable`/`stable` and `Image`/`image` are the same key.
fn field<'a>(map: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Parses the template strictly: unknown keys are errors, as in opm.
pub fn parse(path: &Path, doc: &Value) -> Result<Template, OlmError> {
    let map = doc
        .as_object()
        .ok_or_else(|| OlmError::invalid(path, "the template is not a mapping"))?;
    const KNOWN: [&str; 7] = [
        "schema",
        "generateMajorChannels",
        "generateMinorChannels",
        "defaultChannelTypePreference",
        "candidate",
        "fast",
        "stable",
    ];
    if let Some(unknown) = map
        .keys()
        .find(|k| !KNOWN.iter().any(|known| known.eq_ignore_ascii_case(k)))
    {
        return Err(OlmError::invalid(
            path,
            format!("unknown template key {unknown:?}"),
        ));
    }
    if field(map, "schema").and_then(Value::as_str) != Some("olm.semver") {
        return Err(OlmError::invalid(path, "schema must be \"olm.semver\""));
    }
    let flag = |name: &str| field(map, name).and_then(Value::as_bool).unwrap_or(false);
    let generate_major = flag("generateMajorChannels");
    let mut generate_minor = flag("generateMinorChannels");
    if !generate_major && !generate_minor {
        generate_minor = true;
    }
    let default_preference =
        match field(map, "defaultChannelTypePreference").and_then(Value::as_str) {
            None | Some("") if generate_minor => StreamKind::Minor,
            None | Some("") => StreamKind::Major,
            Some("minor") if generate_minor => StreamKind::Minor,
            Some("major") if generate_major => StreamKind::Major,
            Some(other) => {
                return Err(OlmError::invalid(
                    path,
                    format!(
                    "defaultChannelTypePreference {other:?} does not match the channels generated"
                ),
                ))
            }
        };
    let mut images: [Vec<String>; 3] = Default::default();
    for (slot, archetype) in images.iter_mut().zip(ARCHETYPES) {
        let Some(section) = field(map, archetype) else {
            continue;
        };
        let bundles = section
            .as_object()
            .and_then(|s| field(s, "bundles"))
            .and_then(Value::as_array);
        for bundle in bundles.into_iter().flatten() {
            let image = bundle
                .as_object()
                .and_then(|b| field(b, "image"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    OlmError::invalid(path, format!("a {archetype} bundle has no image"))
                })?;
            slot.push(image.to_string());
        }
    }
    Ok(Template {
        generate_major,
        generate_minor,
        default_preference,
        images,
    })
}

/// A rendered channel entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub replaces: Option<String>,
    pub skips: Vec<String>,
}

/// A rendered channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub name: String,
    pub entries: Vec<Entry>,
}

/// One bundle of an archetype, by name and version.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub name: String,
    pub version: semver::Version,
}

struct Tuple {
    archetype: usize,
    kind: StreamKind,
    channel: String,
    name: String,
    version: semver::Version,
    index: usize,
}

/// Channels (sorted by name) and the default channel for bundles per
/// archetype (in [`ARCHETYPES`] order).
pub fn channels(template: &Template, bundles: &[Vec<Versioned>; 3]) -> (Vec<Channel>, String) {
    let mut unlinked: BTreeMap<String, Channel> = BTreeMap::new();
    let mut tuples: Vec<Tuple> = Vec::new();
    // The "high-water" channel: most stable archetype, then highest version
    // at channel creation, then the preferred kind.
    let mut default: Option<(usize, semver::Version, StreamKind, String)> = None;

    for (archetype, list) in bundles.iter().enumerate() {
        let mut sorted: Vec<&Versioned> = list.iter().collect();
        sorted.sort_by(|a, b| a.version.cmp(&b.version));
        for bundle in sorted {
            let mut kinds = Vec::new();
            if template.generate_major {
                kinds.push((
                    StreamKind::Major,
                    format!("{}-v{}", ARCHETYPES[archetype], bundle.version.major),
                ));
            }
            if template.generate_minor {
                kinds.push((
                    StreamKind::Minor,
                    format!(
                        "{}-v{}.{}",
                        ARCHETYPES[archetype], bundle.version.major, bundle.version.minor
                    ),
                ));
            }
            for (kind, name) in kinds {
                let channel = unlinked.entry(name.clone()).or_insert_with(|| {
                    let candidate = (archetype, bundle.version.clone(), kind, name.clone());
                    if default.as_ref().is_none_or(|current| {
                        higher_water(&candidate, current, template.default_preference)
                    }) {
                        default = Some(candidate);
                    }
                    Channel {
                        name: name.clone(),
                        entries: Vec::new(),
                    }
                });
                channel.entries.push(Entry {
                    name: bundle.name.clone(),
                    replaces: None,
                    skips: Vec::new(),
                });
                tuples.push(Tuple {
                    archetype,
                    kind,
                    channel: name,
                    name: bundle.name.clone(),
                    version: bundle.version.clone(),
                    index: channel.entries.len() - 1,
                });
            }
        }
    }
    link(&mut unlinked, tuples);
    let default = default.map(|d| d.3).unwrap_or_default();
    (unlinked.into_values().collect(), default)
}

fn higher_water(
    candidate: &(usize, semver::Version, StreamKind, String),
    current: &(usize, semver::Version, StreamKind, String),
    preference: StreamKind,
) -> bool {
    if candidate.0 != current.0 {
        return candidate.0 > current.0;
    }
    if candidate.1 != current.1 {
        return candidate.1 > current.1;
    }
    candidate.2 != current.2 && candidate.2 == preference
}

/// Sets `replaces` and `skips`, walking entries by archetype, kind, version.
fn link(channels: &mut BTreeMap<String, Channel>, mut tuples: Vec<Tuple>) {
    let kind_rank = |k: StreamKind| match k {
        StreamKind::Major => 1,
        StreamKind::Minor => 2,
    };
    tuples.sort_by(|a, b| {
        a.archetype
            .cmp(&b.archetype)
            .then(kind_rank(a.kind).cmp(&kind_rank(b.kind)))
            .then_with(|| a.version.cmp(&b.version))
    });
    let mut prev_z_max: Option<String> = None;
    let mut skips: BTreeSet<String> = BTreeSet::new();
    for i in 1..tuples.len() {
        let (prev, cur) = (&tuples[i - 1], &tuples[i]);
        let crossing = prev.archetype != cur.archetype
            || prev.kind != cur.kind
            || prev.version.major != cur.version.major;
        let minor_change = prev.version.minor != cur.version.minor;
        if crossing || minor_change {
            set_edges(channels, prev, &prev_z_max, &skips);
        }
        if crossing {
            skips.clear();
            prev_z_max = None;
        } else {
            if minor_change {
                prev_z_max = Some(prev.name.clone());
            }
            skips.insert(prev.name.clone());
        }
    }
    if tuples.len() > 1 {
        let last = &tuples[tuples.len() - 1];
        let pen = &tuples[tuples.len() - 2];
        let crossing = pen.archetype != last.archetype
            || pen.kind != last.kind
            || pen.version.major != last.version.major;
        if !crossing {
            set_edges(channels, last, &prev_z_max, &skips);
        }
    }
}

/// Writes `replaces` and `skips` (less the replaced bundle) onto one entry.
fn set_edges(
    channels: &mut BTreeMap<String, Channel>,
    tuple: &Tuple,
    replaces: &Option<String>,
    skips: &BTreeSet<String>,
) {
    if let Some(entry) = channels
        .get_mut(&tuple.channel)
        .and_then(|c| c.entries.get_mut(tuple.index))
    {
        entry.replaces = replaces.clone();
        entry.skips = skips
            .iter()
            .filter(|s| Some(*s) != replaces.as_ref())
            .cloned()
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, version: &str) -> Result<Versioned, semver::Error> {
        Ok(Versioned {
            name: format!("op.v{name}"),
            version: semver::Version::parse(version)?,
        })
    }

    fn template(major: bool, minor: bool) -> Template {
        Template {
            generate_major: major,
            generate_minor: minor,
            default_preference: if minor {
                StreamKind::Minor
            } else {
                StreamKind::Major
            },
            images: Default::default(),
        }
    }

    #[test]
    fn major_channels_link_minors_with_replaces_and_z_streams_with_skips(
    ) -> Result<(), semver::Error> {
        let stable = vec![
            v("0.1.0", "0.1.0")?,
            v("0.1.1", "0.1.1")?,
            v("0.2.0", "0.2.0")?,
            v("1.0.0", "1.0.0")?,
        ];
        let (channels, default) = channels(&template(true, false), &[vec![], vec![], stable]);
        assert_eq!(default, "stable-v1");
        let names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["stable-v0", "stable-v1"]);
        let v0 = &channels[0].entries;
        assert_eq!(
            v0[0],
            Entry {
                name: "op.v0.1.0".into(),
                replaces: None,
                skips: vec![]
            }
        );
        assert_eq!(
            v0[1],
            Entry {
                name: "op.v0.1.1".into(),
                replaces: None,
                skips: vec!["op.v0.1.0".into()]
            }
        );
        assert_eq!(
            v0[2],
            Entry {
                name: "op.v0.2.0".into(),
                replaces: Some("op.v0.1.1".into()),
                skips: vec!["op.v0.1.0".into()]
            }
        );
        // No edge crosses a major version.
        assert_eq!(
            channels[1].entries[0],
            Entry {
                name: "op.v1.0.0".into(),
                replaces: None,
                skips: vec![]
            }
        );
        Ok(())
    }

    #[test]
    fn unknown_keys_and_wrong_schema_are_rejected() {
        let path = Path::new("t.yaml");
        let bad = serde_json::json!({"schema": "olm.semver", "stabel": {}});
        assert!(parse(path, &bad).is_err());
        let wrong = serde_json::json!({"schema": "olm.template.basic"});
        assert!(parse(path, &wrong).is_err());
        let ok = serde_json::json!({"Schema": "olm.semver", "GenerateMajorChannels": true,
            "Stable": {"Bundles": [{"Image": "r/b:v1.0.0"}]}});
        let parsed = parse(path, &ok);
        assert!(
            matches!(parsed, Ok(ref t) if t.generate_major && !t.generate_minor && t.images[2] == ["r/b:v1.0.0"])
        );
    }
}
