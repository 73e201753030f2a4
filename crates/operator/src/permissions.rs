//! Every API permission the operator uses, in one place.
//!
//! `config/rbac/` grants exactly these (no wildcards); a test compares the
//! two, and the end-to-end tests run the operator as that ServiceAccount, so
//! a call added here without its rule (or the reverse) fails CI.

/// One RBAC rule: API group (`""` is core), resource, verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
}

const fn rule(
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
) -> Permission {
    Permission {
        group,
        resource,
        verbs,
    }
}

/// Granted cluster-wide (ClusterRole `flightdeck-operator`).
pub const CLUSTER: &[Permission] = &[
    // The watched kind: the controller's list+watch, status apply patches.
    rule("flightdeck.dev", "inferencestacks", &["list", "watch"]),
    rule("flightdeck.dev", "inferencestacks/status", &["patch"]),
    // Owner references with blockOwnerDeletion need this where the
    // OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift).
    rule("flightdeck.dev", "inferencestacks/finalizers", &["update"]),
    // Children: server-side apply (a PATCH that creates a missing object is
    // authorized as `create` too), the reader token read, and the orphan
    // sweep, which lists (metadata only) and deletes every kind it applies.
    rule(
        "",
        "serviceaccounts",
        &["list", "create", "patch", "delete"],
    ),
    rule("", "secrets", &["get", "list", "create", "patch", "delete"]),
    rule("", "configmaps", &["list", "create", "patch", "delete"]),
    rule("", "services", &["list", "create", "patch", "delete"]),
    rule(
        "",
        "persistentvolumeclaims",
        &["list", "create", "patch", "delete"],
    ),
    rule(
        "apps",
        "deployments",
        &["list", "watch", "create", "patch", "delete"],
    ),
    rule(
        "networking.k8s.io",
        "ingresses",
        &["list", "create", "patch", "delete"],
    ),
    // kube-runtime's event Recorder creates, then patches repeated events.
    rule("events.k8s.io", "events", &["create", "patch"]),
];

/// Granted in the leader-election namespace only (Role `flightdeck-operator-leader-election`).
pub const LEADER_ELECTION: &[Permission] = &[rule(
    "coordination.k8s.io",
    "leases",
    &["get", "create", "update"],
)];
