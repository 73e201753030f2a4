//! Server-side apply of the built objects, with a record of what was applied.
//!
//! One field manager, `force`: the operator owns every field it sets, and a
//! user's `kubectl edit` of such a field is reverted on the next reconcile
//! (fields it does not set, e.g. annotations added by other tools, stay).
//! An apply that changes nothing is a no-op on the API server: no new
//! resourceVersion, no event for watchers.
//!
//! Every object goes through [`Applier`], which records its kind and name
//! ([`AppliedRecord`]). The orphan sweep works from that record alone (as
//! Stackable's `ClusterResources` does), so a kind the operator applies can
//! never be missing from the sweep.

use std::{collections::BTreeSet, fmt::Debug};

use k8s_openapi::NamespaceResourceScope;
use kube::{
    api::{ApiResource, Patch, PatchParams},
    Api, Client, Resource,
};
use serde::{de::DeserializeOwned, Serialize};

use crate::{error::ReconcileError, metrics::Metrics};

/// A namespaced object the operator applies for a stack.
pub trait Child:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Serialize
    + DeserializeOwned
    + Clone
    + Debug
{
}

impl<K> Child for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug
{
}

/// The one field manager of every write this operator makes.
pub const FIELD_MANAGER: &str = "flightdeck-operator";

/// The names applied of one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedKind {
    /// The kind, for the sweep's list and delete calls.
    pub resource: ApiResource,
    /// Names applied in this pass (possibly none: the kind was declared by
    /// [`Applier::apply_all`] with nothing in it).
    pub names: BTreeSet<String>,
}

/// Every kind applied in one reconcile and the names applied of each, in
/// the order each kind was first applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppliedRecord {
    kinds: Vec<AppliedKind>,
}

impl AppliedRecord {
    /// The kinds, in the order first applied.
    pub fn kinds(&self) -> &[AppliedKind] {
        &self.kinds
    }

    /// Records kind `K` (with no name yet) and returns its set of names.
    fn kind<K: Resource<DynamicType = ()>>(&mut self) -> &mut BTreeSet<String> {
        let resource = ApiResource::erase::<K>(&());
        let index = match self.kinds.iter().position(|k| k.resource == resource) {
            Some(index) => index,
            None => {
                self.kinds.push(AppliedKind {
                    resource,
                    names: BTreeSet::new(),
                });
                self.kinds.len() - 1
            }
        };
        &mut self.kinds[index].names
    }
}

/// Applies the namespaced children of one stack, one at a time, in the
/// order it is called, and records each.
pub struct Applier<'a> {
    client: &'a Client,
    metrics: &'a Metrics,
    namespace: &'a str,
    record: AppliedRecord,
}

impl<'a> Applier<'a> {
    pub fn new(client: &'a Client, metrics: &'a Metrics, namespace: &'a str) -> Self {
        Self {
            client,
            metrics,
            namespace,
            record: AppliedRecord::default(),
        }
    }

    /// Applies one object and returns it as stored (with its status).
    pub async fn apply<K: Child>(&mut self, mut object: K) -> Result<K, ReconcileError> {
        let kind = K::kind(&()).into_owned();
        let name = object.meta().name.clone().unwrap_or_default();
        self.record.kind::<K>().insert(name.clone());
        let meta = object.meta_mut();
        meta.namespace = Some(self.namespace.to_owned());
        // The API server rejects an apply that carries these.
        meta.managed_fields = None;
        meta.resource_version = None;
        let api: Api<K> = Api::namespaced(self.client.clone(), self.namespace);
        self.metrics.count_write("apply", &kind);
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|source| ReconcileError::Kube {
            verb: "apply",
            kind,
            namespace: self.namespace.to_owned(),
            name,
            source: Box::new(source),
        })
    }

    /// Applies each of `objects` in order. Kind `K` is recorded even when
    /// there are none, so the sweep deletes the last object of a kind the
    /// spec no longer asks for (the Ingress turned off, every model cache
    /// removed).
    pub async fn apply_all<K, I>(&mut self, objects: I) -> Result<Vec<K>, ReconcileError>
    where
        K: Child,
        I: IntoIterator<Item = K>,
    {
        self.record.kind::<K>();
        let mut applied = Vec::new();
        for object in objects {
            applied.push(self.apply(object).await?);
        }
        Ok(applied)
    }

    /// What was applied, for the orphan sweep.
    pub fn into_record(self) -> AppliedRecord {
        self.record
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::{apps::v1::Deployment, networking::v1::Ingress};

    use super::*;

    #[test]
    fn the_record_keeps_kinds_in_first_applied_order_and_declared_empty_kinds() {
        let mut record = AppliedRecord::default();
        record.kind::<Deployment>().insert("a".into());
        record.kind::<Ingress>();
        record.kind::<Deployment>().insert("b".into());
        let kinds: Vec<(&str, Vec<&str>)> = record
            .kinds()
            .iter()
            .map(|k| {
                (
                    k.resource.kind.as_str(),
                    k.names.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![("Deployment", vec!["a", "b"]), ("Ingress", vec![])]
        );
    }
}
