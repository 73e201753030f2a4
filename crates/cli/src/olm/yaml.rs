//! YAML in and out. Objects are handled as `serde_json::Value` (the shape
//! Kubernetes itself uses) and written with keys in alphabetical order, as
//! `opm` and `operator-sdk` write them, so output is stable and diffs are small.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::OlmError;

/// Every document of a multi-document YAML file; empty documents (a lone
/// `---`, comments only) are skipped.
pub fn documents(path: &Path, text: &str) -> Result<Vec<Value>, OlmError> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|source| OlmError::Yaml {
            path: path.to_path_buf(),
            source,
        })?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// The single document of a YAML file.
pub fn single(path: &Path, text: &str) -> Result<Value, OlmError> {
    let mut docs = documents(path, text)?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        n => Err(OlmError::invalid(
            path,
            format!("expected one YAML document, found {n}"),
        )),
    }
}

/// A copy of `value` whose maps are sorted by key at every level (serde_json
/// may be built with `preserve_order` by another crate in the workspace).
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for key in keys {
                out.insert(key.clone(), sorted(&map[key]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// `value` as YAML with sorted keys.
pub fn to_yaml(value: &Value, what: &str) -> Result<String, OlmError> {
    serde_yaml::to_string(&sorted(value)).map_err(|source| OlmError::Serialize {
        what: what.to_string(),
        source,
    })
}

/// A string field at `path` (e.g. `["metadata", "name"]`), if present.
pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}
