//! Deterministic answers and their timing.
//!
//! Token `i` of an answer is word `i mod n` of the prompt (or `tok<i>` for an
//! empty prompt), joined by single spaces: prompt "a b" with 5 tokens answers
//! "a b a b a". A test can so compute the exact answer of every request it
//! sent, and a mix-up between two requests shows.

use std::time::Duration;

use futures::stream::{self, Stream};

use crate::error::EngineError;
use crate::stats::RequestGuard;

/// Upper bound on an answer, whatever max_tokens asks.
pub const MAX_ANSWER_TOKENS: u32 = 100_000;

/// What to generate for one request.
#[derive(Debug, Clone)]
pub struct Plan {
    words: Vec<String>,
    /// Tokens to generate.
    pub tokens: u32,
    /// True when max_tokens cut the answer (finish_reason "length").
    pub cut_by_max_tokens: bool,
}

impl Plan {
    pub fn new(prompt: &str, default_tokens: u32, max_tokens: Option<u32>) -> Self {
        let (tokens, cut_by_max_tokens) = match max_tokens {
            Some(max) => (max.min(MAX_ANSWER_TOKENS), true),
            None => (default_tokens.min(MAX_ANSWER_TOKENS), false),
        };
        Self {
            words: prompt.split_whitespace().map(str::to_owned).collect(),
            tokens,
            cut_by_max_tokens,
        }
    }

    /// The text token `index` adds to the answer (with its leading space).
    pub fn piece(&self, index: u32) -> String {
        let word = if self.words.is_empty() {
            format!("tok{index}")
        } else {
            let at = usize::try_from(index).unwrap_or(0) % self.words.len();
            self.words[at].clone()
        };
        if index == 0 {
            word
        } else {
            format!(" {word}")
        }
    }

    pub fn finish_reason(&self) -> &'static str {
        if self.cut_by_max_tokens {
            "length"
        } else {
            "stop"
        }
    }
}

/// The engine-wide timing and fault settings.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ttft: Duration,
    pub token_delay: Duration,
    pub fail_after_tokens: Option<u32>,
}

/// One step of a generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Token(String),
    /// The answer is complete.
    Done,
}

struct State {
    plan: Plan,
    timing: Timing,
    guard: RequestGuard,
    next: u32,
    finished: bool,
}

/// The tokens of `plan` at the engine's pace, then `Done`. Dropping the
/// stream before `Done` counts the request as cancelled (the guard's drop).
pub fn generate(
    plan: Plan,
    timing: Timing,
    guard: RequestGuard,
) -> impl Stream<Item = Result<Piece, EngineError>> + Send + 'static {
    let state = State {
        plan,
        timing,
        guard,
        next: 0,
        finished: false,
    };
    stream::unfold(state, |mut state| async move {
        if state.finished {
            return None;
        }
        if state.timing.fail_after_tokens == Some(state.next) && state.next < state.plan.tokens {
            state.finished = true;
            state.guard.failed();
            let tokens = state.next;
            return Some((Err(EngineError::InjectedFailure { tokens }), state));
        }
        if state.next == state.plan.tokens {
            state.finished = true;
            state.guard.completed();
            return Some((Ok(Piece::Done), state));
        }
        let delay = if state.next == 0 {
            state.timing.ttft
        } else {
            state.timing.token_delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let piece = state.plan.piece(state.next);
        state.next += 1;
        Some((Ok(Piece::Token(piece)), state))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::StreamExt;

    use super::*;
    use crate::stats::Stats;

    const NO_DELAY: Timing = Timing {
        ttft: Duration::ZERO,
        token_delay: Duration::ZERO,
        fail_after_tokens: None,
    };

    #[test]
    fn answers_cycle_over_the_prompt_words() {
        let plan = Plan::new("a b", 16, Some(5));
        let text: String = (0..plan.tokens).map(|i| plan.piece(i)).collect();
        assert_eq!(text, "a b a b a");
        assert_eq!(plan.finish_reason(), "length");
        let empty = Plan::new("  ", 3, None);
        let text: String = (0..empty.tokens).map(|i| empty.piece(i)).collect();
        assert_eq!(text, "tok0 tok1 tok2");
        assert_eq!(empty.finish_reason(), "stop");
    }

    #[tokio::test]
    async fn a_full_generation_completes() {
        let stats = Arc::new(Stats::default());
        let pieces: Vec<_> = generate(Plan::new("x", 2, None), NO_DELAY, stats.begin(None))
            .collect()
            .await;
        assert_eq!(pieces.len(), 3);
        assert!(matches!(pieces.last(), Some(Ok(Piece::Done))));
        assert_eq!(stats.snapshot().completed, 1);
    }

    #[tokio::test]
    async fn an_injected_failure_ends_the_stream_with_an_error() {
        let stats = Arc::new(Stats::default());
        let timing = Timing {
            fail_after_tokens: Some(1),
            ..NO_DELAY
        };
        let pieces: Vec<_> = generate(Plan::new("x", 4, None), timing, stats.begin(None))
            .collect()
            .await;
        assert_eq!(pieces.len(), 2);
        assert!(matches!(
            pieces[1],
            Err(EngineError::InjectedFailure { tokens: 1 })
        ));
        assert_eq!(stats.snapshot().failed, 1);
    }

    #[tokio::test]
    async fn dropping_the_stream_early_counts_a_cancellation() {
        let stats = Arc::new(Stats::default());
        let mut pieces = Box::pin(generate(
            Plan::new("x", 4, None),
            NO_DELAY,
            stats.begin(None),
        ));
        assert!(pieces.next().await.is_some());
        drop(pieces);
        let snap = stats.snapshot();
        assert_eq!((snap.cancelled, snap.in_flight), (1, 0));
    }
}
