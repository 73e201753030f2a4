//! Server-side apply of the built objects.
//!
//! One field manager, `force`: the operator owns every field it sets, and a
//! user's `kubectl edit` of such a field is reverted on the next reconcile
//! (fields it does not set, e.g. annotations added by other tools, stay).
//! An apply that changes nothing is a no-op on the API server: no new
//! resourceVersion, no event for watchers.

use std::fmt::Debug;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::OwnerReference, NamespaceResourceScope};
use kube::{
    api::{Patch, PatchParams},
    Api, Client, Resource,
};
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    error::{Error, Result},
    metrics::Metrics,
};

/// The one field manager of every write this operator makes.
pub const FIELD_MANAGER: &str = "flightdeck-operator";

/// Applies one namespaced object and returns it as stored (with status).
pub struct Applier<'a> {
    pub client: &'a Client,
    pub metrics: &'a Metrics,
    pub namespace: &'a str,
    /// The stack's controller reference, set on every child the builders
    /// did not already point at the stack.
    pub owner: &'a OwnerReference,
}

impl Applier<'_> {
    pub async fn apply<K>(&self, mut object: K) -> Result<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Serialize
            + DeserializeOwned
            + Clone
            + Debug,
    {
        let kind = K::kind(&()).into_owned();
        let name = object.meta().name.clone().unwrap_or_default();
        let meta = object.meta_mut();
        meta.namespace = Some(self.namespace.to_owned());
        // The API server rejects an apply that carries these.
        meta.managed_fields = None;
        meta.resource_version = None;
        let owners = meta.owner_references.get_or_insert_with(Vec::new);
        if !owners.iter().any(|owner| owner.uid == self.owner.uid) {
            owners.push(self.owner.clone());
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), self.namespace);
        self.metrics.count_write("apply", &kind);
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|source| Error::Kube {
            verb: "apply",
            kind,
            namespace: self.namespace.to_owned(),
            name,
            source: Box::new(source),
        })
    }
}
