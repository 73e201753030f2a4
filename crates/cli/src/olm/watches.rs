//! The group/version/kind the operator reconciles, from `watches.yaml`.
//!
//! The catalog advertises exactly these as the bundle's `olm.gvk` properties,
//! and the CSV describes the matching CRD version for the console.

use std::path::Path;

use serde_json::Value;

use super::{files, yaml, OlmError};

/// One watched kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// Reads `watches.yaml`: either one mapping with `group`, `version` and
/// `kind`, or a list of such mappings (the operator-sdk layout).
pub fn read(path: &Path) -> Result<Vec<Gvk>, OlmError> {
    let text = files::read(path)?;
    let doc = yaml::single(path, &text)?;
    let entries: Vec<&Value> = match &doc {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![&doc],
        _ => {
            return Err(OlmError::invalid(
                path,
                "expected a mapping with group, version and kind (or a list of them)",
            ))
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let field = |name: &str| {
            yaml::str_at(entry, &[name])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| OlmError::invalid(path, format!("a watch has no `{name}`")))
        };
        out.push(Gvk {
            group: field("group")?,
            version: field("version")?,
            kind: field("kind")?,
        });
    }
    if out.is_empty() {
        return Err(OlmError::invalid(path, "no kind is watched"));
    }
    out.sort();
    Ok(out)
}
