//! The `InferenceStack` custom resource.
//!
//! - [`v1alpha1`]: the types (the CRD is generated from them, never written
//!   by hand) and `validate()`, which reports every problem with its field
//!   path or returns the [`v1alpha1::ValidStack`] the builders consume.
//! - [`watches`]: the one parser of `watches.yaml` (what an operator process
//!   reconciles), shared by the operator and the cli's OLM bundle.
//!
//! The files and environment the operator hands to the data plane are in
//! `flightdeck-protocol`, which links no Kubernetes client.

pub mod v1alpha1;
pub mod watches;
