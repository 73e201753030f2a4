//! The Flightdeck operator: reconciles `InferenceStack`s into a gateway and
//! model-serving Deployments.
//!
//! - [`build`] and [`engines`]: pure builders, spec -> every owned object
//!   (no client), and what each inference engine needs.
//! - [`reconcile`]: the pipeline that validates, builds, applies, deletes
//!   orphans and writes status.
//! - [`controller`], [`leader`], [`runtime`]: the process around it: the
//!   watch, leader election, start-up and shutdown.
//! - [`admin`], [`metrics`], [`logging`]: observability.
//! - [`watches`]: which kind (and which stacks) this process reconciles.
//! - [`permissions`]: every API permission it uses (mirrored in config/rbac).

pub mod admin;
pub mod build;
pub mod cli;
pub mod controller;
pub mod engines;
pub mod error;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod permissions;
pub mod reconcile;
pub mod runtime;
pub mod watches;
