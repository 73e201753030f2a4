//! The Flightdeck operator: reconciles `InferenceStack`s into a gateway and
//! model-serving Deployments.
//!
//! - The pure builders (spec -> every owned object) and the engine map live
//!   in `flightdeck-build`, shared with the `flightdeck` cli.
//! - [`reconcile`]: the pipeline that validates, builds, applies (in
//!   dependency order), deletes orphans and writes status.
//! - [`controller`], [`leader`], [`runtime`]: the process around it: the
//!   watch, leader election, start-up (waiting for the CRD) and shutdown.
//! - [`error`]: start-up errors apart from reconcile errors.
//! - [`metrics`]: what the admin port exports (logging, the admin server and
//!   the shutdown signal are `flightdeck-runtime`, shared by every binary).
//! - [`permissions`]: every API permission it uses (mirrored in config/rbac).
//!
//! Which kind (and which stacks) the process reconciles comes from
//! watches.yaml, read by `flightdeck_api::watches` (the cli's OLM bundle
//! reads it with the same parser).

pub mod cli;
pub mod controller;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod permissions;
pub mod reconcile;
pub mod runtime;
