//! The per-stack reader token: kept once generated, generated only if absent.
//!
//! Readers authenticate to the gateway with this token. Regenerating it on
//! every reconcile would roll every pod of the stack, so the operator reads
//! the Secret it applied before and reuses the token; only a stack without
//! one (new, or the Secret was deleted) gets a fresh random token.

use flightdeck_build::names::READER_TOKEN_KEY;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::error::ReconcileError;

/// Random bytes in a generated token (hex-encoded: 64 characters).
const TOKEN_BYTES: usize = 32;

/// The token and whether it was just generated (worth an Event).
pub struct ReaderToken {
    pub token: String,
    pub generated: bool,
}

/// Reads `secret_name`'s token, or generates a new one if the Secret or its
/// key is absent or not usable text.
pub async fn ensure(
    client: &Client,
    namespace: &str,
    secret_name: &str,
) -> Result<ReaderToken, ReconcileError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let existing = secrets
        .get_opt(secret_name)
        .await
        .map_err(|source| ReconcileError::Kube {
            verb: "get",
            kind: "Secret".into(),
            namespace: namespace.to_owned(),
            name: secret_name.to_owned(),
            source: Box::new(source),
        })?;
    if let Some(token) = existing.as_ref().and_then(token_of) {
        return Ok(ReaderToken {
            token,
            generated: false,
        });
    }
    let token = generate().map_err(|source| ReconcileError::Random {
        namespace: namespace.to_owned(),
        name: secret_name.to_owned(),
        source,
    })?;
    Ok(ReaderToken {
        token,
        generated: true,
    })
}

/// The token in `secret`, if present, non-empty UTF-8.
fn token_of(secret: &Secret) -> Option<String> {
    let from_data = secret
        .data
        .as_ref()
        .and_then(|data| data.get(READER_TOKEN_KEY))
        .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok());
    let from_string_data = || {
        secret
            .string_data
            .as_ref()
            .and_then(|data| data.get(READER_TOKEN_KEY))
            .cloned()
    };
    from_data
        .or_else(from_string_data)
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

/// A fresh token from the operating system's random source, hex-encoded.
fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    #[test]
    fn generated_tokens_are_long_and_distinct() {
        let a = generate().expect("random");
        let b = generate().expect("random");
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn reads_the_token_key_and_ignores_empty_values() {
        let secret = Secret {
            data: Some(BTreeMap::from([(
                READER_TOKEN_KEY.to_owned(),
                ByteString(b"abc123\n".to_vec()),
            )])),
            ..Secret::default()
        };
        assert_eq!(token_of(&secret).as_deref(), Some("abc123"));
        let empty = Secret {
            data: Some(BTreeMap::from([(
                READER_TOKEN_KEY.to_owned(),
                ByteString(Vec::new()),
            )])),
            ..Secret::default()
        };
        assert_eq!(token_of(&empty), None);
        assert_eq!(token_of(&Secret::default()), None);
    }
}
