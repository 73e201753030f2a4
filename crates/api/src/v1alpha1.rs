//! `InferenceStack`, API version `flightdeck.dev/v1alpha1`.
//!
//! One stack is one gateway plus any number of "applications" (a model served
//! by an engine, with a reader sidecar in each pod). The CRD is generated from
//! these types (`flightdeck crd`); the doc comments become the CRD's
//! descriptions, which `kubectl explain inferencestack.spec` shows to users.
//!
//! The schema carries what the API server can enforce (enums, minimums,
//! patterns, CEL rules on newer servers); [`validate()`] checks everything,
//! including what only CEL could say, so old API servers and `flightdeck
//! render` report the same errors.

mod application;
mod gateway;
mod names;
mod spec;
mod status;
mod validate;

pub use application::{
    ApplicationSpec, CacheAccessMode, Device, Engine, ModelCacheSpec, ReaderConfig, Task,
    DEFAULT_STARTUP_TIMEOUT_SECONDS, DRAIN_TIMEOUT_SECONDS_RANGE, NVIDIA_GPU,
    STARTUP_TIMEOUT_SECONDS_RANGE,
};
pub use gateway::{
    ApiKeysSpec, GatewayServiceSpec, GatewaySpec, IngressSpec, IngressTls, QueueSpec, ServiceType,
};
pub use names::{
    APPLICATION_NAME_MAX_LEN, DNS_LABEL_MAX_LEN, DNS_LABEL_PATTERN, STACK_NAME_MAX_LEN,
};
pub use spec::{InferenceStack, InferenceStackSpec};
pub use status::{
    ApplicationStatus, GatewayStatus, InferenceStackStatus, CONDITION_DEGRADED,
    CONDITION_PROGRESSING, CONDITION_READY,
};
pub use validate::{validate, FieldError, ValidStack};
