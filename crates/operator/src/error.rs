//! The operator's two error types.
//!
//! - [`StartError`]: the process could not start (watches.yaml, client
//!   configuration, admin port, metrics, a watched kind the API server
//!   refuses) or had to stop (the leader lease was lost). It ends the process.
//! - [`ReconcileError`]: one reconcile of one stack failed. Each maps to a
//!   [`Category`], which labels the failure metric and the Kubernetes Event,
//!   and decides what the controller does next: a transient failure is
//!   retried with backoff, an invalid spec waits for the user to change the
//!   object.
//!
//! Every variant keeps the error that caused it as its `source`, so a log
//! line or an Event can be traced to the library call that failed.

use std::time::Duration;

use flightdeck_api::{v1alpha1::FieldError, watches::WatchesError};

/// Why the operator process could not start, or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// watches.yaml could not be read or does not name what this build serves.
    #[error(transparent)]
    Watches(#[from] WatchesError),
    /// Neither a kubeconfig nor the in-cluster configuration could be loaded.
    #[error("loading the Kubernetes client configuration: {source}")]
    ClientConfig {
        #[source]
        source: kube::config::InferConfigError,
    },
    /// The configuration loaded, but no client could be built from it (TLS
    /// material, proxy settings).
    #[error("building the Kubernetes client: {source}")]
    Client {
        #[source]
        source: Box<kube::Error>,
    },
    /// The admin (metrics/health) listener could not be started.
    #[error(transparent)]
    Admin(#[from] flightdeck_runtime::admin::BindError),
    /// A metric could not be registered (a programming error caught at start).
    #[error("registering metric {name}: {source}")]
    Metrics {
        name: &'static str,
        #[source]
        source: prometheus::Error,
    },
    /// The API server refused to list the watched kind in a way waiting
    /// cannot fix (watches.yaml's label selector is invalid).
    #[error("listing {kind} with label selector {selector:?} was refused: {source}")]
    WatchRefused {
        kind: String,
        selector: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The leader could not renew its Lease in time; it stops rather than
    /// risk a second writer.
    #[error(
        "leader election on lease {namespace}/{name}: not renewed within {deadline:?} \
         ({verb} failed: {source})"
    )]
    LeaseNotRenewed {
        namespace: String,
        name: String,
        deadline: Duration,
        verb: &'static str,
        #[source]
        source: Box<kube::Error>,
    },
    /// Another replica took the Lease while this one held it.
    #[error("leader election on lease {namespace}/{name}: another replica took the lease")]
    LeaseLost { namespace: String, name: String },
}

/// Why one reconcile of one stack failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The watched object has no namespace or name (cluster-scoped or
    /// malformed): nothing can be written back to it.
    #[error("object without {what}: InferenceStack must be namespaced and named")]
    MissingMetadata { what: &'static str },
    /// The object could not be read as an InferenceStack at all (e.g. a value
    /// the API server's schema let through but this version cannot parse).
    #[error("{namespace}/{name} is not a readable InferenceStack: {source}")]
    Unreadable {
        namespace: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
    /// The stack parsed but `validate()` refused it.
    #[error("{namespace}/{name} has an invalid spec: {}", format_fields(fields))]
    InvalidSpec {
        namespace: String,
        name: String,
        fields: Vec<FieldError>,
    },
    /// The pure builders refused the validated stack.
    #[error("building the objects of {namespace}/{name} failed: {source}")]
    Build {
        namespace: String,
        name: String,
        #[source]
        source: flightdeck_build::BuildError,
    },
    /// A call to the Kubernetes API failed.
    #[error("{verb} {kind} {namespace}/{name} failed: {source}")]
    Kube {
        verb: &'static str,
        kind: String,
        namespace: String,
        name: String,
        // Boxed: kube's error is large, and this enum travels in every Result.
        #[source]
        source: Box<kube::Error>,
    },
    /// The operating system's random source failed (reader token generation).
    #[error("generating the reader token for {namespace}/{name} failed: {source}")]
    Random {
        namespace: String,
        name: String,
        #[source]
        source: getrandom::Error,
    },
}

/// What kind of failure a [`ReconcileError`] is: labels metrics and Events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// The user's object is wrong; retrying cannot help until it changes.
    InvalidSpec,
    /// The Kubernetes API failed in a way that may pass (conflict, timeout,
    /// 5xx, connection): retry with backoff.
    Transient,
    /// The API refused us for lack of permission: retried, but an operator
    /// install problem, so it is counted apart.
    Forbidden,
    /// The operator's own configuration or an internal failure.
    Internal,
}

impl Category {
    /// Stable label value for metrics and Event reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::InvalidSpec => "invalid_spec",
            Category::Transient => "transient",
            Category::Forbidden => "forbidden",
            Category::Internal => "internal",
        }
    }

    /// Every category, so metrics start at zero for each.
    pub const ALL: [Category; 4] = [
        Category::InvalidSpec,
        Category::Transient,
        Category::Forbidden,
        Category::Internal,
    ];
}

impl ReconcileError {
    /// The failure's category.
    pub fn category(&self) -> Category {
        match self {
            ReconcileError::Unreadable { .. }
            | ReconcileError::InvalidSpec { .. }
            | ReconcileError::Build { .. } => Category::InvalidSpec,
            ReconcileError::Kube { source, .. } => match source.as_ref() {
                kube::Error::Api(status) if status.code == 403 || status.code == 401 => {
                    Category::Forbidden
                }
                // 422 Invalid from the API server: the built object is
                // rejected, which retrying will not fix; still retried
                // with backoff because a newer spec may be on its way.
                _ => Category::Transient,
            },
            ReconcileError::Random { .. } => Category::Transient,
            ReconcileError::MissingMetadata { .. } => Category::Internal,
        }
    }

    /// Short PascalCase reason for a Kubernetes Event.
    pub fn event_reason(&self) -> &'static str {
        match self {
            ReconcileError::Unreadable { .. } => "UnreadableSpec",
            ReconcileError::InvalidSpec { .. } => "InvalidSpec",
            ReconcileError::Build { .. } => "BuildFailed",
            ReconcileError::Kube { .. } => "ApiCallFailed",
            ReconcileError::Random { .. } => "TokenGenerationFailed",
            ReconcileError::MissingMetadata { .. } => "InternalError",
        }
    }
}

fn format_fields(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(FieldError::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use flightdeck_api::v1alpha1::{validate, InferenceStack};

    use super::*;

    fn kube_status(code: u16, reason: &str) -> Box<kube::Error> {
        let status = kube::core::Status::failure("no", reason).with_code(code);
        Box::new(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn invalid_spec_names_every_field_path() {
        let stack: InferenceStack = serde_yaml::from_str(
            "metadata: {name: demo, namespace: llm, uid: u}\nspec:\n  gateway: {replicas: -1, service: {port: 0}}\n",
        )
        .expect("parses");
        let fields = validate(&stack).expect_err("invalid");
        let err = ReconcileError::InvalidSpec {
            namespace: "llm".into(),
            name: "demo".into(),
            fields,
        };
        let text = err.to_string();
        assert!(
            text.contains("spec.gateway.replicas: must be at least 0"),
            "{text}"
        );
        assert!(text.contains("spec.gateway.service.port"), "{text}");
        assert_eq!(err.category(), Category::InvalidSpec);
        assert_eq!(err.event_reason(), "InvalidSpec");
    }

    #[test]
    fn forbidden_api_errors_are_counted_apart() {
        let err = |source| ReconcileError::Kube {
            verb: "apply",
            kind: "Deployment".into(),
            namespace: "llm".into(),
            name: "demo-gateway".into(),
            source,
        };
        assert_eq!(
            err(kube_status(403, "Forbidden")).category(),
            Category::Forbidden
        );
        assert_eq!(
            err(kube_status(409, "Conflict")).category(),
            Category::Transient
        );
        assert_eq!(
            err(kube_status(403, "Forbidden")).event_reason(),
            "ApiCallFailed"
        );
    }

    #[test]
    fn every_variant_keeps_its_source() {
        let serde = serde_json::from_str::<u8>("x").expect_err("not a number");
        let unreadable = ReconcileError::Unreadable {
            namespace: "llm".into(),
            name: "demo".into(),
            source: serde,
        };
        assert!(unreadable
            .source()
            .is_some_and(|s| s.is::<serde_json::Error>()));
        assert_eq!(unreadable.category(), Category::InvalidSpec);

        let lease = StartError::LeaseNotRenewed {
            namespace: "ops".into(),
            name: "lease".into(),
            deadline: Duration::from_secs(10),
            verb: "update",
            source: kube_status(500, "InternalError"),
        };
        assert_eq!(
            lease.source().map(ToString::to_string),
            Some(kube_status(500, "InternalError").to_string())
        );
        assert!(lease.to_string().contains("update failed"), "{lease}");
    }
}
