//! Token counts per model and consumer group
//! (`flightdeck_gateway_prompt_tokens_total`,
//! `flightdeck_gateway_completion_tokens_total`), taken from the bytes the
//! relay already holds, without slowing it down.
//!
//! - JSON answers: the top-level `usage` object. Small bodies are parsed
//!   whole (every other field is skipped, nothing is built); large ones
//!   (embeddings of a big batch) only from their last `"usage":{...}`, which
//!   engines write at or near the end.
//! - Event streams: each SSE `data:` line is scanned where it lies in the
//!   chunk (a colon search; no copy, no allocation per token). The stream's
//!   last line carrying a `usage` object (the final chunk a client gets with
//!   `stream_options.include_usage`, or vLLM's continuous usage) is kept as a
//!   slice of its chunk and parsed once, when the stream ends. Without one,
//!   completion tokens are the count of generated pieces the engine sent (a
//!   non-empty `content`, `reasoning_content`, `reasoning`, tool-call
//!   `arguments` or completions `text` string): one piece is one token for
//!   engines that stream token by token, fewer for engines that put several
//!   tokens in one event. Such streams add no prompt tokens.
//!
//! Counts are added once per answer, when it ends (also when the client
//! leaves mid-stream: what was relayed until then).

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;

use crate::metrics::Metrics;

/// JSON answers up to this size are parsed whole for their `usage`.
const FULL_PARSE_LIMIT: usize = 256 * 1024;
/// Larger JSON answers: `usage` is looked for in this many last bytes.
const USAGE_TAIL: usize = 16 * 1024;
/// An SSE line longer than this (split over chunks) is not counted, so a
/// misbehaving engine cannot make the gateway buffer without bound.
const MAX_CARRIED_LINE: usize = 256 * 1024;

/// Keys whose non-empty string value is one generated piece of a stream.
const PIECE_KEYS: [&[u8]; 5] = [
    b"content",
    b"text",
    b"reasoning_content",
    b"reasoning",
    b"arguments",
];

/// The OpenAI `usage` object; engines add more fields, which are skipped.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

/// A whole answer or chunk, of which only `usage` is read.
#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<Usage>,
}

/// Where one answer's counts go: resolved to counters only when there is
/// something to add.
pub struct TokenSink {
    metrics: Arc<Metrics>,
    model: String,
    group: Arc<str>,
}

impl TokenSink {
    pub fn new(metrics: Arc<Metrics>, model: String, group: Arc<str>) -> Self {
        Self {
            metrics,
            model,
            group,
        }
    }

    fn add(&self, prompt: u64, completion: u64) {
        let labels = [self.model.as_str(), self.group.as_ref()];
        if prompt > 0 {
            self.metrics
                .prompt_tokens
                .with_label_values(&labels)
                .inc_by(prompt);
        }
        if completion > 0 {
            self.metrics
                .completion_tokens
                .with_label_values(&labels)
                .inc_by(completion);
        }
    }

    /// Counts a complete JSON answer (only call it for successful answers).
    pub fn count_json(&self, body: &[u8]) {
        if let Some(usage) = json_usage(body) {
            self.add(
                usage.prompt_tokens.unwrap_or(0),
                usage.completion_tokens.unwrap_or(0),
            );
        }
    }

    /// A tally for an event stream; it adds its counts when dropped.
    pub fn stream(self) -> StreamTally {
        StreamTally {
            sink: self,
            scan: SseScan::default(),
        }
    }
}

/// Counts one event stream as its chunks pass; adds the counts on drop, so a
/// stream cut short (client gone, reader lost) counts what was relayed.
pub struct StreamTally {
    sink: TokenSink,
    scan: SseScan,
}

impl StreamTally {
    pub fn scan(&mut self, chunk: &Bytes) {
        self.scan.chunk(chunk);
    }
}

impl Drop for StreamTally {
    fn drop(&mut self) {
        let (prompt, completion) = self.scan.totals();
        self.sink.add(prompt, completion);
    }
}

/// The state of a scan over SSE bytes that arrive in arbitrary chunks.
#[derive(Default)]
struct SseScan {
    /// The start of a line whose end has not arrived yet. Reused, so it
    /// allocates only while lines keep getting longer.
    carry: Vec<u8>,
    /// In an over-long line: ignore bytes up to the next newline.
    skipping: bool,
    /// Generated pieces seen (the estimate when no usage comes).
    pieces: u64,
    /// The last `data:` line that carried a usage object.
    last_usage: Option<Bytes>,
}

impl SseScan {
    fn chunk(&mut self, chunk: &Bytes) {
        let mut start = 0;
        for newline in memchr::memchr_iter(b'\n', chunk) {
            if self.skipping {
                self.skipping = false;
            } else if self.carry.is_empty() {
                if self.line(&chunk[start..newline]) {
                    self.last_usage = Some(chunk.slice(start..newline));
                }
            } else {
                self.carry.extend_from_slice(&chunk[start..newline]);
                let line = std::mem::take(&mut self.carry);
                if self.line(&line) {
                    self.last_usage = Some(Bytes::copy_from_slice(&line));
                }
                self.carry = line;
                self.carry.clear();
            }
            start = newline + 1;
        }
        let rest = &chunk[start..];
        if self.skipping || rest.is_empty() {
            return;
        }
        if self.carry.len() + rest.len() > MAX_CARRIED_LINE {
            self.carry.clear();
            self.skipping = true;
        } else {
            self.carry.extend_from_slice(rest);
        }
    }

    /// Scans one line (without its `\n`); true when it carries usage.
    fn line(&mut self, line: &[u8]) -> bool {
        let Some(data) = line.strip_prefix(b"data:") else {
            return false;
        };
        let mut usage = false;
        for colon in memchr::memchr_iter(b':', data) {
            // A key ends with `"` right before its colon; a quote inside a
            // string is escaped, so `\"` never ends a known key.
            let Some(key_end) = colon.checked_sub(1) else {
                continue;
            };
            if data[key_end] != b'"' {
                continue;
            }
            let key = &data[..key_end];
            let value = trim_start(&data[colon + 1..]);
            if ends_with_key(key, b"usage") {
                usage |= value.first() == Some(&b'{');
            } else if value.first() == Some(&b'"')
                && value.get(1).is_some_and(|b| *b != b'"')
                && PIECE_KEYS.iter().any(|name| ends_with_key(key, name))
            {
                self.pieces += 1;
            }
        }
        usage
    }

    /// (prompt, completion) tokens of the stream so far.
    fn totals(&self) -> (u64, u64) {
        let usage = self.last_usage.as_deref().and_then(|line| {
            let data = line.strip_prefix(b"data:").unwrap_or(line);
            serde_json::from_slice::<WithUsage>(trim_end(data))
                .ok()
                .and_then(|chunk| chunk.usage)
        });
        match usage {
            Some(usage) => (
                usage.prompt_tokens.unwrap_or(0),
                usage.completion_tokens.unwrap_or(self.pieces),
            ),
            None => (0, self.pieces),
        }
    }
}

/// True when `before` (the bytes before a key's closing quote) ends with
/// `"name`.
fn ends_with_key(before: &[u8], name: &[u8]) -> bool {
    before.len() > name.len()
        && before.ends_with(name)
        && before[before.len() - name.len() - 1] == b'"'
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let at = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[at..]
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let at = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |at| at + 1);
    &bytes[..at]
}

/// The top-level `usage` of a JSON answer.
fn json_usage(body: &[u8]) -> Option<Usage> {
    if body.len() <= FULL_PARSE_LIMIT {
        return serde_json::from_slice::<WithUsage>(body).ok()?.usage;
    }
    let tail = &body[body.len() - USAGE_TAIL..];
    let key = memchr::memmem::rfind(tail, b"\"usage\"")?;
    let value = trim_start(&tail[key + b"\"usage\"".len()..]);
    let value = trim_start(value.strip_prefix(b":")?);
    if value.first() != Some(&b'{') {
        return None;
    }
    // One value, then whatever follows it in the answer.
    serde_json::Deserializer::from_slice(value)
        .into_iter::<Usage>()
        .next()?
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(chunks: &[&[u8]]) -> (u64, u64) {
        let mut scan = SseScan::default();
        for chunk in chunks {
            scan.chunk(&Bytes::copy_from_slice(chunk));
        }
        scan.totals()
    }

    const CHAT: &[u8] = b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\\"usage\\\": {x}\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";

    #[test]
    fn a_stream_without_usage_counts_its_content_pieces() {
        let mut stream = CHAT.to_vec();
        stream.extend_from_slice(b"data: [DONE]\n\n");
        // The role-only opening delta and the empty final delta are no tokens;
        // a quoted "usage" inside the content is not a usage object.
        assert_eq!(scan_all(&[&stream]), (0, 2));
    }

    #[test]
    fn the_final_usage_chunk_wins_over_the_count() {
        let mut stream = CHAT.to_vec();
        stream.extend_from_slice(
            b"data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":5,\"total_tokens\":12}}\n\ndata: [DONE]\n\n",
        );
        assert_eq!(scan_all(&[&stream]), (7, 5));
    }

    #[test]
    fn lines_split_anywhere_over_chunks_count_the_same() {
        let mut stream = CHAT.to_vec();
        stream.extend_from_slice(
            b"data: {\"choices\":[],\"usage\": {\"prompt_tokens\": 3, \"completion_tokens\": 9}}\r\n\r\ndata: [DONE]\r\n\r\n",
        );
        for split in 1..stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(scan_all(&[a, b]), (3, 9), "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(scan_all(&bytes), (3, 9));
    }

    #[test]
    fn completions_reasoning_and_tool_calls_are_pieces() {
        let stream: &[u8] = b"data: {\"choices\":[{\"index\":0,\"text\":\" a\",\"finish_reason\":null}]}\n\n\
data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"length\"}]}\n\n\
data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hm\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\": \"spaced\"}}]}\n\n\
: a comment with \"content\":\"x\"\n\n";
        assert_eq!(scan_all(&[stream]), (0, 4));
    }

    #[test]
    fn continuous_usage_keeps_the_last_report() {
        let stream: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1}}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\n\n";
        assert_eq!(scan_all(&[stream]), (4, 2));
    }

    #[test]
    fn an_over_long_line_is_skipped_without_buffering_it() {
        let mut scan = SseScan::default();
        scan.chunk(&Bytes::from_static(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"",
        ));
        let filler = Bytes::from(vec![b'x'; MAX_CARRIED_LINE]);
        scan.chunk(&filler);
        assert!(scan.carry.is_empty() && scan.skipping);
        scan.chunk(&Bytes::from_static(
            b"\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"y\"}}]}\n\n",
        ));
        assert_eq!(scan.totals(), (0, 1));
    }

    #[test]
    fn json_answers_report_their_top_level_usage() {
        let body = br#"{"id":"c","choices":[{"message":{"content":"hi","usage":{"prompt_tokens":99}}}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        assert_eq!(
            json_usage(body),
            Some(Usage {
                prompt_tokens: Some(3),
                completion_tokens: Some(2)
            })
        );
        let embeddings =
            br#"{"object":"list","data":[],"usage":{"prompt_tokens":6,"total_tokens":6}}"#;
        assert_eq!(
            json_usage(embeddings),
            Some(Usage {
                prompt_tokens: Some(6),
                completion_tokens: None
            })
        );
        assert_eq!(json_usage(br#"{"error":{"message":"no"}}"#), None);
        assert_eq!(json_usage(b"not json"), None);
    }

    #[test]
    fn large_json_answers_read_usage_from_their_tail() {
        let mut data = br#"{"object":"list","data":[{"embedding":["#.to_vec();
        while data.len() <= FULL_PARSE_LIMIT {
            data.extend_from_slice(b"0.125,");
        }
        data.extend_from_slice(b"0.5]}]");
        let mut with_usage = data.clone();
        with_usage
            .extend_from_slice(br#","usage" : {"prompt_tokens":11,"total_tokens":11},"id":"e"}"#);
        assert_eq!(
            json_usage(&with_usage),
            Some(Usage {
                prompt_tokens: Some(11),
                completion_tokens: None
            })
        );
        let mut without = data;
        without.extend_from_slice(b"}");
        assert_eq!(json_usage(&without), None);
    }
}
