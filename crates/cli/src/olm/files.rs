//! Writing generated files, or (with `--check`) comparing them with what is on
//! disk so CI fails when someone changed an input and forgot to regenerate.

use std::path::{Path, PathBuf};

use super::OlmError;

/// A file the renderer produced: where it goes and its exact bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub path: PathBuf,
    pub contents: String,
}

/// Writes every file (creating parent folders), or in `check` mode reports
/// those whose contents on disk differ, naming `regenerate` as the fix.
pub fn write_or_check(
    files: &[Generated],
    check: bool,
    regenerate: &'static str,
) -> Result<(), OlmError> {
    if check {
        let stale: Vec<String> = files
            .iter()
            .filter(|f| std::fs::read_to_string(&f.path).ok().as_deref() != Some(&f.contents))
            .map(|f| f.path.display().to_string())
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        return Err(OlmError::Drift {
            count: stale.len(),
            files: stale.join(", "),
            command: regenerate,
        });
    }
    for file in files {
        if let Some(parent) = file.path.parent() {
            create_dir(parent)?;
        }
        std::fs::write(&file.path, &file.contents).map_err(|source| OlmError::Write {
            path: file.path.clone(),
            source,
        })?;
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), OlmError> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|source| OlmError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Reads a file as text, naming it in the error.
pub fn read(path: &Path) -> Result<String, OlmError> {
    std::fs::read_to_string(path).map_err(|source| OlmError::Read {
        path: path.to_path_buf(),
        source,
    })
}
