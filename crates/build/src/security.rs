//! Hardened security contexts for the containers Flightdeck ships (gateway
//! and reader). Engine containers run as their images expect: several
//! engines write caches next to their code and some need root for GPU
//! libraries.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

/// The non-root uid of Flightdeck's distroless images.
pub const FLIGHTDECK_UID: i64 = 65532;

/// Non-root, read-only root file system, no privilege escalation, no
/// capabilities.
pub fn restricted_container() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(FLIGHTDECK_UID),
        run_as_group: Some(FLIGHTDECK_UID),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

/// Pod-level settings of the gateway pod (all its containers are ours).
pub fn restricted_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(FLIGHTDECK_UID),
        run_as_group: Some(FLIGHTDECK_UID),
        fs_group: Some(FLIGHTDECK_UID),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..PodSecurityContext::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}
