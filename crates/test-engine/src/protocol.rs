//! The parts of OpenAI request bodies the engine reads. Unknown fields are
//! ignored, as real engines do, so any client's body is accepted.

use serde::Deserialize;

use crate::error::EngineError;

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// The newer name of `max_tokens` that current OpenAI clients send.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<MessageContent>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: PromptInput,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: PromptInput,
    #[serde(default)]
    pub encoding_format: Option<String>,
    #[serde(default)]
    pub dimensions: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// A prompt or embedding input: text, texts, or token ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PromptInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

impl PromptInput {
    /// One text per input item; token ids are written as `t<id>` words so
    /// they too give deterministic, distinct answers.
    pub fn texts(&self) -> Vec<String> {
        fn tokens(ids: &[u32]) -> String {
            ids.iter()
                .map(|id| format!("t{id}"))
                .collect::<Vec<_>>()
                .join(" ")
        }
        match self {
            PromptInput::Text(text) => vec![text.clone()],
            PromptInput::Texts(texts) => texts.clone(),
            PromptInput::Tokens(ids) => vec![tokens(ids)],
            PromptInput::TokenLists(lists) => lists.iter().map(|ids| tokens(ids)).collect(),
        }
    }
}

impl ChatRequest {
    /// The text the answer is derived from: the last user message.
    pub fn prompt_text(&self) -> String {
        self.messages
            .iter()
            .rev()
            .find(|message| message.role == "user")
            .and_then(|message| message.content.as_ref())
            .map(MessageContent::text)
            .unwrap_or_default()
    }

    /// Words across all messages, reported as prompt_tokens.
    pub fn prompt_words(&self) -> u32 {
        let words: usize = self
            .messages
            .iter()
            .filter_map(|message| message.content.as_ref())
            .map(|content| content.text().split_whitespace().count())
            .sum();
        u32::try_from(words).unwrap_or(u32::MAX)
    }
}

impl MessageContent {
    fn text(&self) -> String {
        match self {
            MessageContent::Text(text) => text.clone(),
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|part| part.text.as_deref())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// Parses a JSON body; any syntax or shape error is the client's (400).
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, EngineError> {
    serde_json::from_slice(body).map_err(|err| EngineError::InvalidBody(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_user_message_is_the_prompt() {
        let request: ChatRequest = parse(
            br#"{"model":"m","messages":[
                {"role":"system","content":"be brief"},
                {"role":"user","content":"first"},
                {"role":"assistant","content":"ok"},
                {"role":"user","content":[{"type":"text","text":"second"},{"type":"text","text":"part"}]}]}"#,
        )
        .expect("valid body");
        assert_eq!(request.prompt_text(), "second part");
        assert_eq!(request.prompt_words(), 6);
    }

    #[test]
    fn missing_messages_is_a_client_error() {
        let err = parse::<ChatRequest>(br#"{"model":"m"}"#).expect_err("must fail");
        assert!(matches!(err, EngineError::InvalidBody(ref msg) if msg.contains("messages")));
    }

    #[test]
    fn token_prompts_become_words() {
        let request: CompletionRequest =
            parse(br#"{"model":"m","prompt":[[1,2],[3]]}"#).expect("valid body");
        assert_eq!(request.prompt.texts(), vec!["t1 t2", "t3"]);
    }
}
