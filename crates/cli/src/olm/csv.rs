//! The ClusterServiceVersion, built as a pure function of its inputs.
//!
//! OLM v1 installs registry+v1 bundles whose CSV names no owned CRD that is
//! missing from the bundle (operator-controller rejects "owned custom resource
//! definition ... not found in bundle"). Our CRD ships in the `catalog` helm
//! chart instead, so the CSV describes it under `customresourcedefinitions.required`:
//! consoles still show its display name and description, and OLM v1 installs
//! the bundle.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use flightdeck_api::watches::Gvk;

use super::kustomize::Resource;
use super::{images, yaml, OlmError, PACKAGE_NAME};

/// Everything the CSV is made of, already read from disk.
pub struct CsvInputs<'a> {
    /// `config/manifests/bases/*.clusterserviceversion.yaml`: console metadata.
    pub base: &'a Value,
    pub version: &'a semver::Version,
    pub image_registry: &'a str,
    /// Objects of `config/manager` (the Deployments are used).
    pub manager: &'a [Resource],
    /// Objects of `config/rbac`.
    pub rbac: &'a [Resource],
    /// Objects of `config/crd`.
    pub crds: &'a [Resource],
    /// The kind the operator reconciles (from watches.yaml).
    pub watched: &'a Gvk,
    /// Objects of `config/samples`, shown as `alm-examples`.
    pub examples: &'a [Value],
    pub icon_svg: &'a [u8],
}

/// The CSV object for `inputs`.
pub fn cluster_service_version(inputs: &CsvInputs<'_>) -> Result<Value, OlmError> {
    let version = inputs.version.to_string();
    let mut csv = inputs.base.clone();
    let root = csv.as_object_mut().ok_or_else(|| {
        OlmError::invalid("config/manifests/bases", "the base CSV is not a mapping")
    })?;

    let metadata = object_entry(root, "metadata")?;
    metadata.insert("name".into(), json!(format!("{PACKAGE_NAME}.v{version}")));
    let annotations = object_entry(metadata, "annotations")?;
    annotations.insert(
        "containerImage".into(),
        json!(format!(
            "{}/flightdeck-operator:{version}",
            inputs.image_registry
        )),
    );
    let examples =
        serde_json::to_string_pretty(inputs.examples).map_err(|source| OlmError::Json {
            what: "alm-examples".into(),
            source,
        })?;
    annotations.insert("alm-examples".into(), json!(examples));

    let deployments = deployments(inputs)?;
    let service_accounts: Vec<String> = deployments
        .iter()
        .map(|d| {
            yaml::str_at(d, &["spec", "template", "spec", "serviceAccountName"])
                .unwrap_or("default")
                .to_string()
        })
        .collect();
    let (cluster_permissions, permissions) = permissions(inputs.rbac, &service_accounts)?;

    let spec = object_entry(root, "spec")?;
    spec.insert("version".into(), json!(version));
    spec.insert(
        "icon".into(),
        json!([{
            "base64data": base64::engine::general_purpose::STANDARD.encode(inputs.icon_svg),
            "mediatype": "image/svg+xml",
        }]),
    );
    spec.insert(
        "customresourcedefinitions".into(),
        json!({ "required": [crd_description(inputs.crds, inputs.watched)?] }),
    );
    spec.insert(
        "relatedImages".into(),
        json!(["operator", "gateway", "reader"]
            .iter()
            .map(|name| json!({
                "name": name,
                "image": format!("{}/flightdeck-{name}:{version}", inputs.image_registry),
            }))
            .collect::<Vec<_>>()),
    );
    let mut install_spec = Map::new();
    install_spec.insert("deployments".into(), Value::Array(deployments));
    if !cluster_permissions.is_empty() {
        install_spec.insert(
            "clusterPermissions".into(),
            Value::Array(cluster_permissions),
        );
    }
    if !permissions.is_empty() {
        install_spec.insert("permissions".into(), Value::Array(permissions));
    }
    spec.insert(
        "install".into(),
        json!({ "strategy": "deployment", "spec": Value::Object(install_spec) }),
    );
    Ok(csv)
}

/// The Deployments of `config/manager` as CSV deployment specs, with our
/// images pinned to the release's registry and version.
fn deployments(inputs: &CsvInputs<'_>) -> Result<Vec<Value>, OlmError> {
    let version = inputs.version.to_string();
    let mut out = Vec::new();
    for resource in inputs.manager.iter().filter(|r| r.kind() == "Deployment") {
        let mut spec = resource
            .object
            .get("spec")
            .cloned()
            .ok_or_else(|| OlmError::invalid(&resource.path, "the Deployment has no spec"))?;
        pin_pod_images(&mut spec, inputs.image_registry, &version);
        let mut entry = json!({ "name": resource.name(), "spec": spec });
        if let Some(labels) = resource.object.pointer("/metadata/labels") {
            entry["label"] = labels.clone();
        }
        out.push(entry);
    }
    if out.is_empty() {
        return Err(OlmError::invalid(
            "config/manager",
            "no Deployment found: the bundle would install nothing",
        ));
    }
    Ok(out)
}

fn pin_pod_images(deployment_spec: &mut Value, registry: &str, version: &str) {
    let Some(pod) = deployment_spec.pointer_mut("/template/spec") else {
        return;
    };
    for list in ["containers", "initContainers"] {
        let Some(Value::Array(containers)) = pod.get_mut(list) else {
            continue;
        };
        for container in containers {
            if let Some(Value::String(image)) = container.get_mut("image") {
                *image = images::pin(image, registry, version);
            }
            if let Some(Value::Array(args)) = container.get_mut("args") {
                for arg in args.iter_mut() {
                    if let Value::String(s) = arg {
                        *s = images::pin(s, registry, version);
                    }
                }
            }
            if let Some(Value::Array(env)) = container.get_mut("env") {
                for var in env.iter_mut() {
                    if let Some(Value::String(s)) = var.get_mut("value") {
                        *s = images::pin(s, registry, version);
                    }
                }
            }
        }
    }
}

/// `(clusterPermissions, permissions)`: the rules bound to each service
/// account, by ClusterRoleBinding (cluster-wide) or RoleBinding (in the
/// operator's namespace, which OLM sets to the install namespace).
fn permissions(
    rbac: &[Resource],
    service_accounts: &[String],
) -> Result<(Vec<Value>, Vec<Value>), OlmError> {
    let roles = |kind: &str| -> BTreeMap<&str, &Resource> {
        rbac.iter()
            .filter(|r| r.kind() == kind)
            .map(|r| (r.name(), r))
            .collect()
    };
    let cluster_roles = roles("ClusterRole");
    let namespaced_roles = roles("Role");
    let mut cluster = Vec::new();
    let mut namespaced = Vec::new();
    let mut sorted_accounts: Vec<&String> = service_accounts.iter().collect();
    sorted_accounts.sort();
    sorted_accounts.dedup();
    for account in sorted_accounts {
        let mut cluster_rules = Vec::new();
        let mut namespaced_rules = Vec::new();
        for binding in rbac
            .iter()
            .filter(|r| matches!(r.kind(), "ClusterRoleBinding" | "RoleBinding"))
            .filter(|b| binds_service_account(&b.object, account))
        {
            let role_kind = yaml::str_at(&binding.object, &["roleRef", "kind"]).unwrap_or_default();
            let role_name = yaml::str_at(&binding.object, &["roleRef", "name"]).unwrap_or_default();
            let role = match role_kind {
                "ClusterRole" => cluster_roles.get(role_name),
                "Role" => namespaced_roles.get(role_name),
                _ => None,
            }
            .ok_or_else(|| {
                OlmError::invalid(
                    &binding.path,
                    format!(
                        "{} {} refers to {role_kind} {role_name:?}, which is not in config/rbac",
                        binding.kind(),
                        binding.name()
                    ),
                )
            })?;
            let rules = role.object.get("rules").cloned().unwrap_or(json!([]));
            let rules = rules.as_array().cloned().unwrap_or_default();
            if binding.kind() == "ClusterRoleBinding" {
                cluster_rules.extend(rules);
            } else {
                namespaced_rules.extend(rules);
            }
        }
        if cluster_rules.is_empty() && namespaced_rules.is_empty() {
            return Err(OlmError::invalid(
                "config/rbac",
                format!("no binding grants service account {account:?} any permission"),
            ));
        }
        if !cluster_rules.is_empty() {
            cluster.push(json!({ "serviceAccountName": account, "rules": cluster_rules }));
        }
        if !namespaced_rules.is_empty() {
            namespaced.push(json!({ "serviceAccountName": account, "rules": namespaced_rules }));
        }
    }
    Ok((cluster, namespaced))
}

fn binds_service_account(binding: &Value, account: &str) -> bool {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .is_some_and(|subjects| {
            subjects.iter().any(|s| {
                yaml::str_at(s, &["kind"]) == Some("ServiceAccount")
                    && yaml::str_at(s, &["name"]) == Some(account)
            })
        })
}

/// Console description of the watched CRD version, taken from the
/// generated CRD so `kubectl explain` and the console say the same.
fn crd_description(crds: &[Resource], gvk: &Gvk) -> Result<Value, OlmError> {
    let crd = crds
        .iter()
        .filter(|r| r.kind() == "CustomResourceDefinition")
        .find(|r| {
            yaml::str_at(&r.object, &["spec", "group"]) == Some(gvk.group.as_str())
                && yaml::str_at(&r.object, &["spec", "names", "kind"]) == Some(gvk.kind.as_str())
        })
        .ok_or_else(|| {
            OlmError::invalid(
                "config/crd",
                format!(
                    "no CRD for {}/{} {}; generate it with `cargo run -p flightdeck-cli -- crd`",
                    gvk.group, gvk.version, gvk.kind
                ),
            )
        })?;
    let served = crd
        .object
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|versions| {
            versions
                .iter()
                .find(|v| yaml::str_at(v, &["name"]) == Some(gvk.version.as_str()))
        })
        .ok_or_else(|| {
            OlmError::invalid(
                &crd.path,
                format!("the CRD does not serve version {}", gvk.version),
            )
        })?;
    let description = yaml::str_at(served, &["schema", "openAPIV3Schema", "description"])
        .map(str::to_string)
        .unwrap_or_else(|| format!("A {} of {}.", gvk.kind, gvk.group));
    Ok(json!({
        "name": crd.name(),
        "version": gvk.version,
        "kind": gvk.kind,
        "displayName": display_name(&gvk.kind),
        "description": description,
    }))
}

/// `InferenceStack` -> `Inference Stack`.
fn display_name(kind: &str) -> String {
    let mut out = String::with_capacity(kind.len() + 4);
    for (i, c) in kind.chars().enumerate() {
        if i > 0 && c.is_uppercase() {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The mapping under `key`, created (or replacing a non-mapping) if needed.
fn object_entry<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, OlmError> {
    let entry = map.entry(key.to_string()).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut().ok_or_else(|| {
        OlmError::invalid(
            "config/manifests/bases",
            format!("`{key}` is not a mapping"),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn resource(object: Value) -> Resource {
        Resource {
            path: PathBuf::from("test.yaml"),
            object,
        }
    }

    fn inputs_fixture() -> (Value, Vec<Resource>, Vec<Resource>, Vec<Resource>, Gvk) {
        let base = json!({"apiVersion": "operators.coreos.com/v1alpha1", "kind": "ClusterServiceVersion",
            "metadata": {"name": "x"}, "spec": {"displayName": "Flightdeck"}});
        let manager = vec![resource(
            json!({"kind": "Deployment", "metadata": {"name": "op", "labels": {"a": "b"}},
            "spec": {"template": {"spec": {"serviceAccountName": "op-sa", "containers": [{
                "name": "operator", "image": "ghcr.io/flightdeck-dev/flightdeck-operator:0.0.1",
                "args": ["--gateway-image=ghcr.io/flightdeck-dev/flightdeck-gateway:0.0.1", "--admin-listen=0.0.0.0:8080"]}]}}}}),
        )];
        let rbac = vec![
            resource(
                json!({"kind": "ClusterRole", "metadata": {"name": "op-role"},
                "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]}),
            ),
            resource(
                json!({"kind": "ClusterRoleBinding", "metadata": {"name": "op-binding"},
                "roleRef": {"kind": "ClusterRole", "name": "op-role"},
                "subjects": [{"kind": "ServiceAccount", "name": "op-sa", "namespace": "ns"}]}),
            ),
            resource(json!({"kind": "Role", "metadata": {"name": "leader"},
                "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]}]})),
            resource(
                json!({"kind": "RoleBinding", "metadata": {"name": "leader"},
                "roleRef": {"kind": "Role", "name": "leader"},
                "subjects": [{"kind": "ServiceAccount", "name": "op-sa"}]}),
            ),
        ];
        let crds = vec![resource(json!({"kind": "CustomResourceDefinition",
            "metadata": {"name": "inferencestacks.flightdeck.dev"},
            "spec": {"group": "flightdeck.dev", "names": {"kind": "InferenceStack"},
                "versions": [{"name": "v1alpha1", "schema": {"openAPIV3Schema": {"description": "A stack."}}}]}}))];
        (base, manager, rbac, crds, flightdeck_api::watches::served())
    }

    #[test]
    fn csv_carries_deployment_permissions_and_required_crd() -> Result<(), OlmError> {
        let (base, manager, rbac, crds, watched) = inputs_fixture();
        let version = semver::Version::new(1, 2, 3);
        let csv = cluster_service_version(&CsvInputs {
            base: &base,
            version: &version,
            image_registry: "registry.example/fd",
            manager: &manager,
            rbac: &rbac,
            crds: &crds,
            watched: &watched,
            examples: &[],
            icon_svg: b"<svg/>",
        })?;
        assert_eq!(csv["metadata"]["name"], "flightdeck-operator.v1.2.3");
        assert_eq!(csv["spec"]["version"], "1.2.3");
        let deployment = &csv["spec"]["install"]["spec"]["deployments"][0];
        assert_eq!(deployment["name"], "op");
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["image"],
            "registry.example/fd/flightdeck-operator:1.2.3"
        );
        assert_eq!(
            container["args"][0],
            "--gateway-image=registry.example/fd/flightdeck-gateway:1.2.3"
        );
        assert_eq!(container["args"][1], "--admin-listen=0.0.0.0:8080");
        let cluster = &csv["spec"]["install"]["spec"]["clusterPermissions"][0];
        assert_eq!(cluster["serviceAccountName"], "op-sa");
        assert_eq!(cluster["rules"][0]["resources"][0], "deployments");
        let namespaced = &csv["spec"]["install"]["spec"]["permissions"][0];
        assert_eq!(namespaced["rules"][0]["resources"][0], "leases");
        let required = &csv["spec"]["customresourcedefinitions"]["required"][0];
        assert_eq!(required["displayName"], "Inference Stack");
        assert_eq!(required["description"], "A stack.");
        assert!(csv["spec"]["customresourcedefinitions"]
            .get("owned")
            .is_none());
        Ok(())
    }

    #[test]
    fn binding_to_a_missing_role_is_an_error() {
        let (base, manager, mut rbac, crds, watched) = inputs_fixture();
        rbac.remove(0);
        let version = semver::Version::new(1, 0, 0);
        let result = cluster_service_version(&CsvInputs {
            base: &base,
            version: &version,
            image_registry: "r",
            manager: &manager,
            rbac: &rbac,
            crds: &crds,
            watched: &watched,
            examples: &[],
            icon_svg: b"",
        });
        assert!(
            matches!(result, Err(OlmError::Invalid { message, .. }) if message.contains("op-role"))
        );
    }
}
