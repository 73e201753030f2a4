use std::path::PathBuf;

use super::*;

fn example(file: &str) -> (PathBuf, String) {
    let path = PathBuf::from(format!(
        "{}/../../examples/{file}",
        env!("CARGO_MANIFEST_DIR")
    ));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    (path, text)
}

fn ctx() -> BuildContext {
    BuildContext {
        gateway_image: "example.com/gateway:test".to_owned(),
        reader_image: "example.com/reader:test".to_owned(),
        reader_token: PLACEHOLDER_TOKEN.to_owned(),
    }
}

fn kinds_and_names(yaml: &str) -> Vec<(String, String)> {
    yaml.split("---\n")
        .filter(|doc| !doc.trim().is_empty())
        .map(|doc| {
            let value: serde_yaml::Value = serde_yaml::from_str(doc).expect("document parses");
            let field = |path: &[&str]| {
                let mut cursor = &value;
                for key in path {
                    cursor = &cursor[*key];
                }
                cursor.as_str().unwrap_or_default().to_owned()
            };
            let owner_uid = value["metadata"]["ownerReferences"][0]["uid"]
                .as_str()
                .unwrap_or_default();
            assert_eq!(owner_uid, PLACEHOLDER_UID);
            (field(&["kind"]), field(&["metadata", "name"]))
        })
        .collect()
}

#[test]
fn renders_every_object_in_apply_order() {
    let (path, text) = example("gpu-vllm.yaml");
    let stack = parse(&path, &text, None).expect("parses");
    assert_eq!(stack.metadata.namespace.as_deref(), Some("llm"));
    let yaml = render(&path, &stack, &ctx()).expect("renders");
    let pairs: Vec<(&str, &str)> = vec![
        ("ServiceAccount", "demo-flightdeck"),
        ("Secret", "demo-reader-token"),
        ("ConfigMap", "demo-gateway"),
        ("Service", "demo-gateway"),
        ("Service", "demo-gateway-readers"),
        ("PersistentVolumeClaim", "demo-llama-1b-model-cache"),
        ("Deployment", "demo-gateway"),
        ("Deployment", "demo-llama-1b"),
        ("Ingress", "demo-gateway"),
    ];
    let expected: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n.to_owned()))
        .collect();
    assert_eq!(kinds_and_names(&yaml), expected);
    assert!(yaml.contains("apiVersion: apps/v1"));
    assert!(yaml.contains("protocol: TCP"));
}

#[test]
fn namespace_flag_and_default() {
    let (path, text) = example("quickstart.yaml");
    assert_eq!(
        parse(&path, &text, None)
            .expect("parses")
            .metadata
            .namespace
            .as_deref(),
        Some("default")
    );
    assert_eq!(
        parse(&path, &text, Some("team-a"))
            .expect("parses")
            .metadata
            .namespace
            .as_deref(),
        Some("team-a")
    );
}

#[test]
fn invalid_stack_reports_field_paths() {
    let (path, text) = example("quickstart.yaml");
    let broken = text.replace("maxBatchSize: 4", "maxBatchSize: 0");
    let stack = parse(&path, &broken, None).expect("parses");
    let err = render(&path, &stack, &ctx()).expect_err("invalid");
    let message = err.to_string();
    assert!(
        message.contains("spec.applications.smollm2.readerConfig.maxBatchSize: must be between 1 and 4096, got 0"),
        "{message}"
    );
}

#[test]
fn other_kinds_and_empty_files_are_rejected() {
    let path = PathBuf::from("x.yaml");
    assert!(matches!(
        parse(
            &path,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            None
        ),
        Err(CliError::WrongKind { .. })
    ));
    assert!(matches!(
        parse(&path, "", None),
        Err(CliError::Empty { .. })
    ));
    assert!(matches!(
        parse(&path, "spec: [", None),
        Err(CliError::Parse { .. })
    ));
}
