//! Client API keys and the reader token, compared in constant time so a
//! timing side channel cannot reveal a prefix of a valid key.

use std::path::Path;

use axum::http::{header, HeaderMap};

use crate::error::GatewayError;

/// Byte-wise compare whose time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let token = value
        .strip_prefix(b"Bearer ")
        .or_else(|| value.strip_prefix(b"bearer "))?;
    Some(trim_ascii(token))
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Client API keys; empty means the client API is open.
#[derive(Debug, Default, Clone)]
pub struct ApiKeys(Vec<Vec<u8>>);

impl ApiKeys {
    pub fn new(keys: Vec<Vec<u8>>) -> Self {
        Self(keys.into_iter().filter(|key| !key.is_empty()).collect())
    }

    /// Every regular file in `dir` holds one key (a mounted Secret: its
    /// entries are symlinks to regular files, which `metadata` follows).
    pub fn load_dir(dir: &Path) -> Result<Self, GatewayError> {
        let io = |source| GatewayError::Io {
            context: format!("reading API keys from {}", dir.display()),
            source,
        };
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            // Kubernetes puts its `..data` bookkeeping next to the keys.
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
            {
                continue;
            }
            if std::fs::metadata(&path)
                .map(|m| m.is_file())
                .unwrap_or(false)
            {
                let key = std::fs::read(&path).map_err(io)?;
                keys.push(trim_ascii(&key).to_vec());
            }
        }
        keys.sort();
        Ok(Self::new(keys))
    }

    pub fn is_enabled(&self) -> bool {
        !self.0.is_empty()
    }

    /// Checks the request's bearer key against every configured key.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), GatewayError> {
        if !self.is_enabled() {
            return Ok(());
        }
        let presented = bearer(headers).ok_or(GatewayError::Unauthorized)?;
        // No early exit: the time does not say which key matched.
        let matched = self
            .0
            .iter()
            .fold(false, |found, key| constant_time_eq(key, presented) | found);
        if matched {
            Ok(())
        } else {
            Err(GatewayError::Unauthorized)
        }
    }
}

/// The per-stack reader token; without one, the pull API refuses everyone.
#[derive(Debug, Clone)]
pub struct ReaderToken(Option<Vec<u8>>);

impl ReaderToken {
    pub fn new(token: Option<&str>) -> Self {
        Self(
            token
                .map(|t| t.trim().as_bytes().to_vec())
                .filter(|t| !t.is_empty()),
        )
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<(), GatewayError> {
        match (&self.0, bearer(headers)) {
            (Some(expected), Some(presented)) if constant_time_eq(expected, presented) => Ok(()),
            _ => Err(GatewayError::ReaderUnauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(auth: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(auth).expect("header"),
        );
        headers
    }

    #[test]
    fn api_keys_accept_any_configured_key_only() {
        let keys = ApiKeys::new(vec![b"alpha".to_vec(), b"beta".to_vec()]);
        assert!(keys.check(&headers("Bearer beta")).is_ok());
        assert!(keys.check(&headers("Bearer bet")).is_err());
        assert!(keys.check(&HeaderMap::new()).is_err());
        assert!(ApiKeys::default().check(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn reader_token_is_required_when_missing_from_config() {
        assert!(ReaderToken::new(None)
            .check(&headers("Bearer anything"))
            .is_err());
        let token = ReaderToken::new(Some("s3cret\n"));
        assert!(token.check(&headers("Bearer s3cret")).is_ok());
        assert!(token.check(&headers("Bearer s3cre")).is_err());
    }

    #[test]
    fn keys_dir_skips_kubernetes_bookkeeping() {
        let dir = std::env::temp_dir().join(format!("fd-keys-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("..data")).expect("mkdir");
        std::fs::write(dir.join("team-a"), "key-a\n").expect("write");
        std::fs::write(dir.join(".hidden"), "nope").expect("write");
        let keys = ApiKeys::load_dir(&dir).expect("load");
        assert!(keys.check(&headers("Bearer key-a")).is_ok());
        assert!(keys.check(&headers("Bearer nope")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
