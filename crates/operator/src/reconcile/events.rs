//! Kubernetes Events about one stack: what the operator did, what failed.
//!
//! Publishing an Event is best effort: a failure is logged, never fails the
//! reconcile (the status conditions carry the same information).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

/// Events regarding one stack.
pub struct StackEvents<'a> {
    pub recorder: &'a Recorder,
    pub stack: ObjectReference,
}

impl StackEvents<'_> {
    /// Something the operator did (`reason`: PascalCase, `action`: the verb).
    pub async fn normal(&self, reason: &str, action: &str, note: String) {
        self.publish(EventType::Normal, reason, action, note).await;
    }

    /// Something that failed.
    pub async fn warning(&self, reason: &str, action: &str, note: String) {
        self.publish(EventType::Warning, reason, action, note).await;
    }

    async fn publish(&self, type_: EventType, reason: &str, action: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            // The Events API caps the note at 1 kB.
            note: Some(truncate(note, 1000)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &self.stack).await {
            tracing::warn!(%error, reason, "publishing an event failed");
        }
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn truncates_on_a_char_boundary() {
        assert_eq!(super::truncate("aé".repeat(3), 4), "aéa");
        assert_eq!(super::truncate("short".into(), 10), "short");
    }
}
