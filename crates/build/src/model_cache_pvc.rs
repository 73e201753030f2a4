//! `S-A-model-cache`: a claim for downloaded weights, when `modelCache` is
//! set, so a restarted pod does not download the model again.

use std::collections::BTreeMap;

use flightdeck_api::v1alpha1::ApplicationSpec;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};

use crate::labels::Component;
use crate::meta::StackRef;
use crate::names;

/// The application's model cache claim, or `None` without `modelCache`.
pub fn model_cache_pvc(
    owner: &StackRef,
    application: &str,
    app: &ApplicationSpec,
) -> Option<PersistentVolumeClaim> {
    let cache = app.model_cache.as_ref()?;
    Some(PersistentVolumeClaim {
        metadata: owner.metadata(
            names::model_cache_claim(&owner.name, application),
            Component::Reader,
            Some(application),
        ),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![cache.access_mode.as_str().to_owned()]),
            storage_class_name: cache.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), cache.size.clone())])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    })
}
