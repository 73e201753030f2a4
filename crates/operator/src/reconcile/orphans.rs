//! Deletion of children the spec no longer asks for.
//!
//! Owner references only clean up when the stack itself goes. An application
//! removed from the spec (or a model cache or Ingress turned off) must take
//! its objects with it, so after applying, the operator lists its children by
//! label and deletes those it did not just apply.
//!
//! PersistentVolumeClaims: a model cache belongs to its application and is
//! deleted with it (or when `modelCache` is removed). It only holds
//! re-downloadable weights, and keeping it would silently hold storage nobody
//! can see in the spec. Kubernetes' PVC protection keeps the claim until the
//! last pod using it is gone. A user who wants to keep one removes the
//! operator's owner reference from it: objects not controlled by this stack
//! are never deleted.

use std::{collections::BTreeSet, fmt::Debug};

use k8s_openapi::NamespaceResourceScope;
use kube::{
    api::{DeleteParams, ListParams},
    Api, Client, Resource, ResourceExt,
};
use serde::de::DeserializeOwned;

use crate::{
    error::{Error, Result},
    metrics::Metrics,
};

/// Label every child carries: the stack's name.
pub const STACK_LABEL: &str = "flightdeck.dev/stack";
/// Label every child carries: who manages it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "flightdeck-operator";

/// Deletes children of one kind.
pub struct OrphanSweeper<'a> {
    pub client: &'a Client,
    pub metrics: &'a Metrics,
    pub namespace: &'a str,
    pub stack_name: &'a str,
    pub stack_uid: &'a str,
}

impl OrphanSweeper<'_> {
    /// Deletes every `K` labelled for this stack and controlled by it whose
    /// name is not in `wanted`; returns `Kind/name` of each deleted one.
    pub async fn sweep<K>(&self, wanted: &BTreeSet<String>) -> Result<Vec<String>>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + DeserializeOwned
            + Clone
            + Debug,
    {
        let kind = K::kind(&()).into_owned();
        let api: Api<K> = Api::namespaced(self.client.clone(), self.namespace);
        let selector = format!(
            "{STACK_LABEL}={},{MANAGED_BY_LABEL}={MANAGED_BY}",
            self.stack_name
        );
        // Served from the API server's watch cache: cheap at scale, and a
        // slightly stale answer only delays a deletion to the next pass.
        let params = ListParams::default().labels(&selector).match_any();
        let children = api.list(&params).await.map_err(|source| Error::Kube {
            verb: "list",
            kind: kind.clone(),
            namespace: self.namespace.to_owned(),
            name: selector.clone(),
            source: Box::new(source),
        })?;
        let mut deleted = Vec::new();
        for child in children {
            let name = child.name_any();
            let controlled_by_stack = child
                .owner_references()
                .iter()
                .any(|owner| owner.uid == self.stack_uid && owner.controller == Some(true));
            if wanted.contains(&name)
                || !controlled_by_stack
                || child.meta().deletion_timestamp.is_some()
            {
                continue;
            }
            self.metrics.count_write("delete", &kind);
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => deleted.push(format!("{kind}/{name}")),
                // Already gone: the goal is reached.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(Error::Kube {
                        verb: "delete",
                        kind,
                        namespace: self.namespace.to_owned(),
                        name,
                        source: Box::new(source),
                    })
                }
            }
        }
        Ok(deleted)
    }
}
