//! Just enough of kustomize to read `config/`: the objects listed under
//! `resources:` of a kustomization, following folders that hold their own
//! kustomization. Transformers (namespace, prefixes) are not applied; the
//! bundle gets its namespace from OLM, and the packaging tests compare the
//! CSV with the real `kubectl kustomize config/default` output.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{files, yaml, OlmError};

/// One object read from `config/`, with the file it came from for messages.
#[derive(Debug, Clone)]
pub struct Resource {
    pub path: PathBuf,
    pub object: Value,
}

impl Resource {
    pub fn kind(&self) -> &str {
        yaml::str_at(&self.object, &["kind"]).unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        yaml::str_at(&self.object, &["metadata", "name"]).unwrap_or_default()
    }
}

/// Objects of the kustomization in `dir`, in the order kustomize lists them.
pub fn resources(dir: &Path) -> Result<Vec<Resource>, OlmError> {
    let kustomization = dir.join("kustomization.yaml");
    let text = files::read(&kustomization)?;
    let doc = yaml::single(&kustomization, &text)?;
    let entries = match doc.get("resources") {
        None => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            return Err(OlmError::invalid(
                &kustomization,
                "`resources` must be a list of paths",
            ))
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let rel = entry.as_str().ok_or_else(|| {
            OlmError::invalid(&kustomization, "every `resources` entry must be a path")
        })?;
        let path = dir.join(rel);
        if path.is_dir() {
            out.extend(resources(&path)?);
        } else {
            let text = files::read(&path)?;
            for object in yaml::documents(&path, &text)? {
                out.push(Resource {
                    path: path.clone(),
                    object,
                });
            }
        }
    }
    Ok(out)
}
