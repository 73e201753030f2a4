//! Pure builders: a validated `InferenceStack` in, every object the operator
//! owns out.
//! Shared by the operator (which applies the objects) and the `flightdeck`
//! cli (`render`, and `up`, which runs the same configuration locally), so
//! neither links the other; this crate has no Kubernetes client.
//!
//! No client and no I/O: [`build`] turns a
//! [`ValidStack`] (what `flightdeck_api::v1alpha1::validate` returns) plus
//! the few facts the reconciler supplies in [`BuildContext`] into
//! [`StackObjects`], which the reconciler applies with server-side apply.
//! [`names`] and [`labels`] are the naming and labelling contract the
//! reconciler relies on too (token Secret, endpoint, orphan selector). One module per owned kind;
//! every object gets a deterministic name, the common labels and a
//! controller owner reference to the stack.

pub mod config_hash;
pub mod engines;
mod gateway_config_map;
mod gateway_deployment;
mod gateway_ingress;
mod gateway_service;
pub mod labels;
mod meta;
mod model_cache_pvc;
pub mod names;
mod reader_deployment;
mod reader_token_secret;
mod security;
mod service_account;

use std::collections::BTreeMap;

use flightdeck_api::v1alpha1::ValidStack;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::Ingress;
use thiserror::Error;

pub use gateway_config_map::{gateway_config, gateway_config_json};
pub use labels::{common_labels, selector_labels, Component};
pub use meta::StackRef;
pub use reader_deployment::reader_env;

/// Image of the gateway this operator release runs unless the stack names
/// one.
pub const DEFAULT_GATEWAY_IMAGE: &str = concat!(
    "ghcr.io/flightdeck-dev/flightdeck-gateway:",
    env!("CARGO_PKG_VERSION")
);
/// Image of the reader sidecar this operator release runs.
pub const DEFAULT_READER_IMAGE: &str = concat!(
    "ghcr.io/flightdeck-dev/flightdeck-reader:",
    env!("CARGO_PKG_VERSION")
);

/// What the builders need beyond the spec; supplied by the reconciler.
/// `Debug` redacts the token, so logging a context leaks no secret.
#[derive(Clone, PartialEq, Eq)]
pub struct BuildContext {
    /// Gateway image when `spec.gateway.image` is unset.
    pub gateway_image: String,
    /// Reader sidecar image.
    pub reader_image: String,
    /// The reader token: the one already in the stack's Secret, or a fresh
    /// one the reconciler generated.
    pub reader_token: String,
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContext")
            .field("gateway_image", &self.gateway_image)
            .field("reader_image", &self.reader_image)
            .field("reader_token", &"<redacted>")
            .finish()
    }
}

/// Every object the operator owns for one stack. The reconciler destructures
/// it without `..`, so a kind that is built but never applied fails to
/// compile.
#[derive(Clone, Debug, PartialEq)]
pub struct StackObjects {
    /// `S-flightdeck`.
    pub service_account: ServiceAccount,
    /// `S-reader-token`, key `token`.
    pub reader_token: Secret,
    /// `S-gateway`, key `gateway.json`.
    pub gateway_config: ConfigMap,
    /// `S-gateway`.
    pub gateway_deployment: Deployment,
    /// `S-gateway`: the client Service (port named `http`).
    pub gateway_service: Service,
    /// `S-gateway-readers`: headless, port 8081 named `readers`.
    pub gateway_readers_service: Service,
    /// `S-gateway`, when `spec.gateway.ingress` is set.
    pub gateway_ingress: Option<Ingress>,
    /// Per application, by application name.
    pub applications: BTreeMap<String, ApplicationObjects>,
}

/// The objects of one application.
#[derive(Clone, Debug, PartialEq)]
pub struct ApplicationObjects {
    /// `S-A`: engine plus reader sidecar.
    pub deployment: Deployment,
    /// `S-A-model-cache`, when `modelCache` is set.
    pub model_cache: Option<PersistentVolumeClaim>,
}

/// Why objects could not be built. The builders take a
/// [`ValidStack`], so what validation guarantees (name, namespace, uid, a
/// consistent spec) is never checked again; these are what remains.
#[derive(Debug, Error)]
pub enum BuildError {
    /// `reader_env` was asked for an application the stack does not have.
    #[error("InferenceStack {stack:?} has no application {application:?}")]
    UnknownApplication { stack: String, application: String },
    /// Serialising configuration (gateway.json or a hash input) failed.
    #[error("serialising {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// Builds every object of `stack` (see `flightdeck_api::v1alpha1::validate`
/// for how to get one). Fails only if the gateway configuration cannot be
/// serialised.
pub fn build(stack: &ValidStack, ctx: &BuildContext) -> Result<StackObjects, BuildError> {
    let owner = StackRef::new(stack);
    let config_json = gateway_config_json(stack)?;
    let applications = stack
        .spec()
        .applications
        .iter()
        .map(|(name, app)| {
            let objects = ApplicationObjects {
                deployment: reader_deployment::reader_deployment(&owner, stack, name, app, ctx)?,
                model_cache: model_cache_pvc::model_cache_pvc(&owner, name, app),
            };
            Ok((name.clone(), objects))
        })
        .collect::<Result<BTreeMap<_, _>, BuildError>>()?;
    Ok(StackObjects {
        service_account: service_account::service_account(&owner),
        reader_token: reader_token_secret::reader_token_secret(&owner, &ctx.reader_token),
        gateway_config: gateway_config_map::gateway_config_map(&owner, &config_json),
        gateway_deployment: gateway_deployment::gateway_deployment(
            &owner,
            stack,
            &config_json,
            ctx,
        )?,
        gateway_service: gateway_service::gateway_service(&owner, &stack.spec().gateway),
        gateway_readers_service: gateway_service::gateway_readers_service(&owner),
        gateway_ingress: gateway_ingress::gateway_ingress(&owner, &stack.spec().gateway),
        applications,
    })
}

#[cfg(test)]
mod tests;
