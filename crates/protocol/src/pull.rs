//! The gateway <-> reader pull protocol: paths, header names and the two
//! small encodings it uses. The reader crate uses these constants too, so the
//! wire format lives in one place; docs/protocol.md explains the semantics.
//!
//! Bodies are never wrapped: a lease response's body *is* the client's request
//! body, and an upload's body is one JSON head line followed by the engine's
//! bytes as they came. That keeps the per-token path free of re-serialization.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Long-poll for one request: `POST /v1/reader/lease?groups=a,b&waitMs=20000`.
pub const LEASE_PATH: &str = "/v1/reader/lease";
/// Streamed upload of the engine's answer: `POST /v1/reader/leases/{id}/response`.
pub const UPLOAD_PATH: &str = "/v1/reader/leases/{id}/response";
/// A reader going away wakes its waiting long-polls: `POST /v1/reader/leave`.
pub const LEAVE_PATH: &str = "/v1/reader/leave";

/// Identifies one reader process across its connections (for leave and metrics).
pub const HEADER_READER_ID: &str = "x-flightdeck-reader-id";
/// The lease id the upload must name.
pub const HEADER_LEASE_ID: &str = "x-flightdeck-lease";
/// The client API path to call on the engine, e.g. `/v1/chat/completions`.
pub const HEADER_ENGINE_PATH: &str = "x-flightdeck-path";
/// The consumer group the lease came from.
pub const HEADER_GROUP: &str = "x-flightdeck-group";
/// Queue heads of the reader's groups at the time of the answer (see [`Heads`]).
pub const HEADER_HEADS: &str = "x-flightdeck-heads";

/// Longest long-poll a gateway accepts; readers ask for less.
pub const MAX_WAIT_MS: u64 = 60_000;

/// Upper bound on the upload's head line, so a broken reader cannot make the
/// gateway buffer without limit before the first byte.
pub const MAX_HEAD_LINE: usize = 4096;

/// First line of an upload body: what the engine answered, before its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadHead {
    /// HTTP status code the engine answered with.
    pub status: u16,
    /// The engine's content type (`text/event-stream` for streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl UploadHead {
    /// The head line as sent on the wire, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| b"{\"status\":502}".to_vec());
        line.push(b'\n');
        line
    }
}

/// Query of the lease long-poll.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseQuery {
    /// Comma-separated consumer groups the reader serves.
    pub groups: String,
    /// How long to wait for work when none is queued (0: answer at once).
    #[serde(default)]
    pub wait_ms: u64,
}

/// The state of one queue's head as the gateway saw it when answering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    pub group: String,
    /// Requests waiting.
    pub depth: u32,
    /// Age of the oldest waiting request in milliseconds (0 when empty).
    pub oldest_age_ms: u64,
}

/// Queue heads, encoded in a header as `group=depth/ageMs,group=depth/ageMs`.
/// Group names are Kubernetes names, so `=`, `/` and `,` never occur in them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Heads(pub Vec<Head>);

impl Heads {
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.0.len() * 24);
        for (i, head) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}={}/{}", head.group, head.depth, head.oldest_age_ms);
        }
        out
    }

    /// Parses the header; malformed entries are skipped (the heads are a hint).
    pub fn decode(value: &str) -> Self {
        let heads = value
            .split(',')
            .filter_map(|entry| {
                let (group, rest) = entry.split_once('=')?;
                let (depth, age) = rest.split_once('/')?;
                Some(Head {
                    group: group.trim().to_string(),
                    depth: depth.trim().parse().ok()?,
                    oldest_age_ms: age.trim().parse().ok()?,
                })
            })
            .collect();
        Heads(heads)
    }

    /// Depth and oldest age over all groups: what a reader compares across gateways.
    pub fn summary(&self) -> (u32, u64) {
        self.0.iter().fold((0, 0), |(depth, age), head| {
            (
                depth.saturating_add(head.depth),
                age.max(head.oldest_age_ms),
            )
        })
    }
}

/// The upload path for one lease.
pub fn upload_path(lease_id: u64) -> String {
    format!("/v1/reader/leases/{lease_id}/response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_and_summarize() {
        let heads = Heads(vec![
            Head {
                group: "cpu".into(),
                depth: 3,
                oldest_age_ms: 1200,
            },
            Head {
                group: "gpu".into(),
                depth: 0,
                oldest_age_ms: 0,
            },
        ]);
        let encoded = heads.encode();
        assert_eq!(encoded, "cpu=3/1200,gpu=0/0");
        assert_eq!(Heads::decode(&encoded), heads);
        assert_eq!(heads.summary(), (3, 1200));
    }

    #[test]
    fn malformed_heads_are_skipped() {
        let heads = Heads::decode("cpu=x/1,gpu=2/5,junk");
        assert_eq!(heads.0.len(), 1);
        assert_eq!(heads.0[0].group, "gpu");
    }

    #[test]
    fn head_line_is_one_json_line() {
        let head = UploadHead {
            status: 200,
            content_type: Some("text/event-stream".into()),
        };
        let line = head.to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        let parsed: UploadHead = serde_json::from_slice(&line[..line.len() - 1]).expect("json");
        assert_eq!(parsed, head);
    }
}
