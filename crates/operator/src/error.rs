//! The operator's one error type.
//!
//! Every variant carries the context needed to act on it and maps to a
//! [`Category`], which labels the failure metric and the Kubernetes Event, and
//! decides what the controller does next: a transient failure is retried with
//! backoff, an invalid spec waits for the user to change the object.

use std::path::PathBuf;

/// Why a reconcile (or the operator's start-up) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object could not be read as an InferenceStack at all (e.g. a value
    /// the API server's schema let through but this version cannot parse).
    #[error("{namespace}/{name} is not a readable InferenceStack: {message}")]
    Unreadable {
        namespace: String,
        name: String,
        message: String,
    },
    /// The spec parsed but is semantically invalid.
    #[error("{namespace}/{name} has an invalid spec: {}", format_fields(fields))]
    InvalidSpec {
        namespace: String,
        name: String,
        /// `(field path, message)` pairs.
        fields: Vec<(String, String)>,
    },
    /// The pure builders refused the stack.
    #[error("building the objects of {namespace}/{name} failed: {message}")]
    Build {
        namespace: String,
        name: String,
        message: String,
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
    /// An object could not be turned into JSON for a patch.
    #[error("serializing {kind} {name} failed: {source}")]
    Serialize {
        kind: &'static str,
        name: String,
        #[source]
        source: serde_json::Error,
    },
    /// The operating system's random source failed (reader token generation).
    #[error("generating the reader token for {namespace}/{name} failed: {message}")]
    Random {
        namespace: String,
        name: String,
        message: String,
    },
    /// The object has no namespace or name (cluster-scoped or malformed).
    #[error("object without {what}: InferenceStack must be namespaced and named")]
    MissingMetadata { what: &'static str },
    /// watches.yaml could not be read.
    #[error("reading {path}: {source}")]
    WatchesRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// watches.yaml is not what this operator serves.
    #[error("{path}: {message}")]
    WatchesInvalid { path: PathBuf, message: String },
    /// The kubeconfig / in-cluster configuration could not be loaded.
    #[error("loading the Kubernetes client configuration: {message}")]
    ClientConfig { message: String },
    /// The admin (metrics/health) listener could not be started.
    #[error(transparent)]
    Admin(#[from] flightdeck_runtime::admin::BindError),
    /// Leader election could not proceed (or the lease was lost).
    #[error("leader election on lease {namespace}/{name}: {message}")]
    LeaderElection {
        namespace: String,
        name: String,
        message: String,
    },
    /// A metric could not be registered (a programming error caught at start).
    #[error("registering metric {name}: {source}")]
    Metrics {
        name: &'static str,
        #[source]
        source: prometheus::Error,
    },
}

/// What kind of failure an [`Error`] is: labels metrics and Events.
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

impl Error {
    /// The failure's category.
    pub fn category(&self) -> Category {
        match self {
            Error::Unreadable { .. } | Error::InvalidSpec { .. } | Error::Build { .. } => {
                Category::InvalidSpec
            }
            Error::Kube { source, .. } => match source.as_ref() {
                kube::Error::Api(status) if status.code == 403 || status.code == 401 => {
                    Category::Forbidden
                }
                // 422 Invalid from the API server: the built object is
                // rejected, which retrying will not fix; still retried
                // with backoff because a newer spec may be on its way.
                _ => Category::Transient,
            },
            Error::Random { .. } => Category::Transient,
            Error::Serialize { .. }
            | Error::MissingMetadata { .. }
            | Error::WatchesRead { .. }
            | Error::WatchesInvalid { .. }
            | Error::ClientConfig { .. }
            | Error::Admin(_)
            | Error::LeaderElection { .. }
            | Error::Metrics { .. } => Category::Internal,
        }
    }

    /// Short PascalCase reason for a Kubernetes Event.
    pub fn event_reason(&self) -> &'static str {
        match self {
            Error::Unreadable { .. } => "UnreadableSpec",
            Error::InvalidSpec { .. } => "InvalidSpec",
            Error::Build { .. } => "BuildFailed",
            Error::Kube { .. } => "ApiCallFailed",
            Error::Random { .. } => "TokenGenerationFailed",
            _ => "InternalError",
        }
    }
}

fn format_fields(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(path, message)| format!("{path}: {message}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Result with the operator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_spec_names_every_field_path() {
        let err = Error::InvalidSpec {
            namespace: "llm".into(),
            name: "demo".into(),
            fields: vec![
                ("spec.applications.a.replicas".into(), "must be >= 0".into()),
                ("spec.gateway.port".into(), "out of range".into()),
            ],
        };
        let text = err.to_string();
        assert!(text.contains("spec.applications.a.replicas: must be >= 0"));
        assert!(text.contains("spec.gateway.port: out of range"));
        assert_eq!(err.category(), Category::InvalidSpec);
    }

    #[test]
    fn forbidden_api_errors_are_counted_apart() {
        let status = kube::core::Status::failure("no", "Forbidden").with_code(403);
        let err = Error::Kube {
            verb: "patch",
            kind: "Deployment".into(),
            namespace: "llm".into(),
            name: "demo-gateway".into(),
            source: Box::new(kube::Error::Api(Box::new(status))),
        };
        assert_eq!(err.category(), Category::Forbidden);
        let status = kube::core::Status::failure("busy", "Conflict").with_code(409);
        let err = Error::Kube {
            verb: "patch",
            kind: "Deployment".into(),
            namespace: "llm".into(),
            name: "demo-gateway".into(),
            source: Box::new(kube::Error::Api(Box::new(status))),
        };
        assert_eq!(err.category(), Category::Transient);
    }
}
