//! The `flightdeck.dev/config-hash` pod template annotation.
//!
//! Each pod template carries the sha256 of exactly the configuration its
//! pods read (serialised as JSON; struct fields and BTreeMaps serialise in a
//! fixed order). A change to that configuration changes the template, so
//! Kubernetes rolls those pods, and only those.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::BuildError;

/// Lower-case hex sha256 of `value`'s JSON form.
pub fn config_hash<T: Serialize>(what: &'static str, value: &T) -> Result<String, BuildError> {
    let bytes =
        serde_json::to_vec(value).map_err(|source| BuildError::Serialize { what, source })?;
    Ok(sha256_hex(&bytes))
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let a = config_hash("test", &serde_json::json!({"a": 1})).expect("serialises");
        let b = config_hash("test", &serde_json::json!({"a": 2})).expect("serialises");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }
}
