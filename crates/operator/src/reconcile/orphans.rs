//! Deletion of children the spec no longer asks for.
//!
//! Owner references only clean up when the stack itself goes. An application
//! removed from the spec (or a model cache or Ingress turned off) must take
//! its objects with it, so after applying, the operator lists its children of
//! every kind it applied (the [`AppliedRecord`], never a list kept by hand)
//! by the stack's label and deletes those it did not just apply.
//!
//! PersistentVolumeClaims: a model cache belongs to its application and is
//! deleted with it (or when `modelCache` is removed). It only holds
//! re-downloadable weights, and keeping it would silently hold storage nobody
//! can see in the spec. Kubernetes' PVC protection keeps the claim until the
//! last pod using it is gone. A user who wants to keep one removes the
//! operator's owner reference from it: objects not controlled by this stack
//! are never deleted.

use flightdeck_build::labels;
use kube::{
    api::{DeleteParams, DynamicObject, ListParams},
    Api, Client,
};

use super::apply::{AppliedKind, AppliedRecord};
use crate::{error::ReconcileError, metrics::Metrics};

/// Deletes the children of one stack that the last apply did not name.
pub struct OrphanSweeper<'a> {
    pub client: &'a Client,
    pub metrics: &'a Metrics,
    pub namespace: &'a str,
    pub stack_name: &'a str,
    pub stack_uid: &'a str,
}

impl OrphanSweeper<'_> {
    /// For every kind in `applied`, last applied first (an Ingress goes
    /// before the Service it routes to), deletes each object labelled for
    /// this stack and controlled by it whose name was not applied. Returns
    /// `Kind/name` of each deleted one.
    pub async fn sweep(&self, applied: &AppliedRecord) -> Result<Vec<String>, ReconcileError> {
        let mut deleted = Vec::new();
        for kind in applied.kinds().iter().rev() {
            deleted.extend(self.sweep_kind(kind).await?);
        }
        Ok(deleted)
    }

    async fn sweep_kind(&self, applied: &AppliedKind) -> Result<Vec<String>, ReconcileError> {
        let kind = &applied.resource.kind;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), self.namespace, &applied.resource);
        let selector = labels::stack_selector(self.stack_name);
        // Metadata only (a Secret's data never travels), served from the API
        // server's watch cache: cheap at scale, and a slightly stale answer
        // only delays a deletion to the next pass.
        let params = ListParams::default().labels(&selector).match_any();
        let children = api
            .list_metadata(&params)
            .await
            .map_err(|source| ReconcileError::Kube {
                verb: "list",
                kind: kind.clone(),
                namespace: self.namespace.to_owned(),
                name: selector.clone(),
                source: Box::new(source),
            })?;
        let mut deleted = Vec::new();
        for child in children {
            let meta = child.metadata;
            let name = meta.name.unwrap_or_default();
            let controlled_by_stack = meta
                .owner_references
                .iter()
                .flatten()
                .any(|owner| owner.uid == self.stack_uid && owner.controller == Some(true));
            if name.is_empty()
                || applied.names.contains(&name)
                || !controlled_by_stack
                || meta.deletion_timestamp.is_some()
            {
                continue;
            }
            self.metrics.count_write("delete", kind);
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => deleted.push(format!("{kind}/{name}")),
                // Already gone: the goal is reached.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(ReconcileError::Kube {
                        verb: "delete",
                        kind: kind.clone(),
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
