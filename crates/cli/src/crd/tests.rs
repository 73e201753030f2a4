use std::path::Path;

use serde_json::Value;

use super::*;

fn repository_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The checked-in copies must be exactly what the types generate.
#[test]
fn checked_in_crd_copies_match_the_types() {
    let yaml = crd_yaml().expect("CRD generates");
    if let Err(err) = check(repository_root(), &yaml) {
        panic!("{err}");
    }
}

fn schema() -> Value {
    let crd = serde_json::to_value(crd().expect("CRD generates")).expect("CRD serialises");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn names_scope_and_columns() {
    let crd = crd().expect("CRD generates");
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("inferencestacks.flightdeck.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "InferenceStack");
    assert_eq!(crd.spec.names.short_names, Some(vec!["istack".to_owned()]));
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["flightdeck".to_owned()])
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
    assert!(version
        .subresources
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .is_some());
    let columns: Vec<(&str, &str)> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        columns,
        vec![
            ("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
            ("Endpoint", ".status.gateway.endpoint"),
            ("Applications", ".status.applicationsReady"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
}

#[test]
fn schema_enforces_enums_minimums_and_patterns() {
    let schema = schema();
    let spec = &schema["properties"]["spec"]["properties"];
    let app = &spec["applications"]["additionalProperties"]["properties"];
    assert_eq!(
        app["engine"]["enum"],
        serde_json::json!(["vllm", "sglang", "llamacpp", "tgi"])
    );
    assert_eq!(app["replicas"]["minimum"], 0.0);
    assert_eq!(
        app["readerConfig"]["properties"]["maxBatchSize"]["minimum"],
        1.0
    );
    assert_eq!(
        app["readerConfig"]["properties"]["device"]["enum"],
        serde_json::json!(["cuda", "cpu"])
    );
    assert_eq!(
        app["consumerGroups"]["items"]["pattern"],
        "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    );
    let port = &spec["gateway"]["properties"]["service"]["properties"]["port"];
    assert_eq!(
        (port["minimum"].as_f64(), port["maximum"].as_f64()),
        (Some(1.0), Some(65535.0))
    );
    let rules = spec["applications"]["x-kubernetes-validations"]
        .as_array()
        .expect("CEL rules on the application map");
    assert!(rules
        .iter()
        .any(|rule| rule["rule"] == "self.all(name, size(name) <= 40)"));
    assert_eq!(
        schema["properties"]["status"]["properties"]["conditions"]["x-kubernetes-list-type"],
        "map"
    );
}

#[test]
fn every_field_has_a_description() {
    fn walk(path: &str, schema: &Value, missing: &mut Vec<String>) {
        if let Some(props) = schema["properties"].as_object() {
            for (name, child) in props {
                let child_path = format!("{path}.{name}");
                if child["description"].as_str().unwrap_or_default().is_empty()
                    && !matches!(name.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    missing.push(child_path.clone());
                }
                // Embedded Kubernetes types bring their own descriptions.
                walk(&child_path, child, missing);
            }
        }
        for nested in ["items", "additionalProperties"] {
            if schema[nested].is_object() {
                walk(&format!("{path}[]"), &schema[nested], missing);
            }
        }
    }
    let mut missing = Vec::new();
    walk("", &schema(), &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}
