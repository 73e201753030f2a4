//! Types shared by every Flightdeck binary.
//!
//! - [`v1alpha1`]: the `InferenceStack` custom resource (the CRD is generated
//!   from these types, never written by hand).
//! - [`gateway_config`]: the file the operator writes into the gateway's
//!   ConfigMap and the gateway reads (and reloads) at run time.
//! - [`reader_env`]: the environment contract between the operator (or
//!   `flightdeck up`) and the reader sidecar.

pub mod gateway_config;
pub mod reader_env;
pub mod v1alpha1;
