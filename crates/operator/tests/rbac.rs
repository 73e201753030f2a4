//! config/rbac grants exactly what the operator uses (permissions.rs), and
//! no wildcards. The end-to-end tests then run the operator as that
//! ServiceAccount, so a missing rule fails there too.

use std::{collections::BTreeSet, path::PathBuf};

use flightdeck_operator::permissions::{Permission, CLUSTER, LEADER_ELECTION};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};

type Grant = (String, String, String);

fn rbac_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/rbac")
}

fn read(file: &str) -> String {
    let path = rbac_dir().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn grants_of_rules(rules: &[PolicyRule]) -> BTreeSet<Grant> {
    let mut grants = BTreeSet::new();
    for rule in rules {
        assert!(
            rule.non_resource_urls.is_none(),
            "unexpected nonResourceURLs rule: {rule:?}"
        );
        assert!(
            rule.resource_names.is_none(),
            "resourceNames would make the rule narrower than the code assumes: {rule:?}"
        );
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    for value in [group, resource, verb] {
                        assert!(!value.contains('*'), "wildcard in rule {rule:?}");
                    }
                    grants.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    grants
}

fn grants_of_code(permissions: &[Permission]) -> BTreeSet<Grant> {
    permissions
        .iter()
        .flat_map(|p| {
            p.verbs.iter().map(move |verb| {
                (
                    p.group.to_owned(),
                    p.resource.to_owned(),
                    (*verb).to_owned(),
                )
            })
        })
        .collect()
}

#[test]
fn cluster_role_grants_exactly_what_the_operator_uses() {
    let role: ClusterRole =
        serde_yaml::from_str(&read("cluster_role.yaml")).expect("ClusterRole YAML");
    let granted = grants_of_rules(role.rules.as_deref().unwrap_or_default());
    let used = grants_of_code(CLUSTER);
    let missing: Vec<_> = used.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&used).collect();
    assert!(
        missing.is_empty(),
        "used by the operator but not granted: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "granted but never used (least privilege): {extra:?}"
    );
}

#[test]
fn leader_election_role_grants_exactly_the_lease_calls() {
    let role: Role = serde_yaml::from_str(&read("leader_election_role.yaml")).expect("Role YAML");
    assert_eq!(
        grants_of_rules(role.rules.as_deref().unwrap_or_default()),
        grants_of_code(LEADER_ELECTION)
    );
}

#[test]
fn kustomization_lists_every_manifest() {
    let kustomization: serde_yaml::Value =
        serde_yaml::from_str(&read("kustomization.yaml")).expect("kustomization YAML");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_sequence()
        .expect("resources list")
        .iter()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(rbac_dir())
        .expect("config/rbac")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    assert_eq!(listed, on_disk);
}
