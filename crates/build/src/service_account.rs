//! `S-flightdeck`: the ServiceAccount of the stack's pods.
//!
//! Neither the gateway nor the reader calls the Kubernetes API, so the
//! account has no roles and its token is not mounted; it exists so cluster
//! policies (image pull secrets, PSA exemptions, audit) can target the stack.

use k8s_openapi::api::core::v1::ServiceAccount;

use crate::labels::Component;
use crate::meta::StackRef;
use crate::names;

/// The stack's ServiceAccount.
pub fn service_account(owner: &StackRef) -> ServiceAccount {
    ServiceAccount {
        metadata: owner.metadata(names::service_account(&owner.name), Component::Config, None),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}
