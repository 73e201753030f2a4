//! The `InferenceStack` custom resource.
//!
//! - [`v1alpha1`]: the types (the CRD is generated from them, never written
//!   by hand) and `validate()`, which reports every problem with its field
//!   path.
//!
//! The files and environment the operator hands to the data plane are in
//! `flightdeck-protocol`, which links no Kubernetes client.

pub mod v1alpha1;
