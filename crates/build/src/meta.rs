//! Object metadata shared by every child: name, namespace, labels and the
//! controller owner reference that lets Kubernetes garbage-collect children
//! with their stack.

use flightdeck_api::v1alpha1::{InferenceStack, ValidStack};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::labels::{common_labels, Component};

/// The facts about a stack every child's metadata needs.
#[derive(Clone, Debug, PartialEq)]
pub struct StackRef {
    /// `metadata.name` of the stack.
    pub name: String,
    /// `metadata.namespace` of the stack; children live there too.
    pub namespace: String,
    /// Controller reference to the stack.
    pub owner_reference: OwnerReference,
}

impl StackRef {
    /// The stack's name, namespace and controller reference (validation
    /// guarantees all three facts).
    pub fn new(stack: &ValidStack) -> Self {
        let owner_reference = OwnerReference {
            api_version: InferenceStack::api_version(&()).into_owned(),
            kind: InferenceStack::kind(&()).into_owned(),
            name: stack.name().to_owned(),
            uid: stack.uid().to_owned(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        Self {
            name: stack.name().to_owned(),
            namespace: stack.namespace().to_owned(),
            owner_reference,
        }
    }

    /// Metadata for a child called `name`.
    pub fn metadata(
        &self,
        name: String,
        component: Component,
        application: Option<&str>,
    ) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(common_labels(&self.name, component, application)),
            owner_references: Some(vec![self.owner_reference.clone()]),
            ..ObjectMeta::default()
        }
    }
}
