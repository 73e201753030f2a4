//! Labels and annotations on every object the operator creates.
//!
//! Selector labels are a subset of the common labels that never change for
//! the life of an object (a Deployment's selector is immutable), so they
//! carry no version or hash.

use std::collections::BTreeMap;

/// `app.kubernetes.io/name`: always `flightdeck`.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`: the stack's name.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/component`: `gateway`, `reader` or `config`.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/managed-by`: always `flightdeck-operator`.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The stack an object belongs to; orphan clean-up lists by it.
pub const STACK_LABEL: &str = "flightdeck.dev/stack";
/// The application a per-application object belongs to.
pub const APPLICATION_LABEL: &str = "flightdeck.dev/application";
/// Pod template annotation: sha256 of exactly the configuration the pod
/// depends on, so a change rolls those pods and no others.
pub const CONFIG_HASH_ANNOTATION: &str = "flightdeck.dev/config-hash";

/// Value of [`NAME_LABEL`].
pub const APP_NAME: &str = "flightdeck";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGER: &str = "flightdeck-operator";

/// What part of the stack an object belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// The gateway Deployment, its Services and Ingress.
    Gateway,
    /// An application's Deployment and model cache.
    Reader,
    /// Configuration shared by the stack: ConfigMap, Secret, ServiceAccount.
    Config,
}

impl Component {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Reader => "reader",
            Self::Config => "config",
        }
    }
}

/// The labels that select the pods of one component (and one application).
pub fn selector_labels(
    stack_name: &str,
    component: Component,
    application: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (NAME_LABEL.to_owned(), APP_NAME.to_owned()),
        (INSTANCE_LABEL.to_owned(), stack_name.to_owned()),
        (COMPONENT_LABEL.to_owned(), component.as_str().to_owned()),
    ]);
    if let Some(application) = application {
        labels.insert(APPLICATION_LABEL.to_owned(), application.to_owned());
    }
    labels
}

/// Label selector of every object the operator manages, whatever its stack
/// (the operator's watch of its Deployments).
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGER}")
}

/// Label selector of the objects of stack `stack_name` (what the orphan
/// sweep lists; each object found is still checked for the stack's
/// controller reference before it is deleted).
pub fn stack_selector(stack_name: &str) -> String {
    format!("{STACK_LABEL}={stack_name},{}", managed_selector())
}

/// Every label an object of the stack carries: the selector labels plus the
/// manager and the stack label used to find orphans.
pub fn common_labels(
    stack_name: &str,
    component: Component,
    application: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = selector_labels(stack_name, component, application);
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGER.to_owned());
    labels.insert(STACK_LABEL.to_owned(), stack_name.to_owned());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_application_labels() {
        let labels = common_labels("demo", Component::Reader, Some("llama-1b"));
        let expected: BTreeMap<String, String> = [
            ("app.kubernetes.io/name", "flightdeck"),
            ("app.kubernetes.io/instance", "demo"),
            ("app.kubernetes.io/component", "reader"),
            ("app.kubernetes.io/managed-by", "flightdeck-operator"),
            ("flightdeck.dev/stack", "demo"),
            ("flightdeck.dev/application", "llama-1b"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(labels, expected);
        let selector = selector_labels("demo", Component::Reader, Some("llama-1b"));
        assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
        assert!(!selector.contains_key(MANAGED_BY_LABEL));
    }

    #[test]
    fn selectors_match_the_common_labels() {
        assert_eq!(
            managed_selector(),
            "app.kubernetes.io/managed-by=flightdeck-operator"
        );
        let selector = stack_selector("demo");
        assert_eq!(
            selector,
            "flightdeck.dev/stack=demo,app.kubernetes.io/managed-by=flightdeck-operator"
        );
        let labels = common_labels("demo", Component::Config, None);
        for term in selector.split(',') {
            let (key, value) = term.split_once('=').expect("key=value");
            assert_eq!(labels.get(key).map(String::as_str), Some(value), "{term}");
        }
    }
}
