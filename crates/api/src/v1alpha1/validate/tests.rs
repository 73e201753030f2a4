use super::*;
use crate::v1alpha1::InferenceStack;

/// The stack as the API server stores it: in a namespace, with a uid.
fn stack(yaml: &str) -> InferenceStack {
    let mut stack = raw(yaml);
    stack.metadata.namespace.get_or_insert_with(|| "llm".into());
    stack.metadata.uid.get_or_insert_with(|| "uid-1".into());
    stack
}

/// The stack exactly as written.
fn raw(yaml: &str) -> InferenceStack {
    serde_yaml::from_str(yaml).expect("test fixture parses")
}

fn paths(stack: &InferenceStack) -> Vec<String> {
    match validate(stack) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| e.path).collect(),
    }
}

const MINIMAL: &str = r#"
apiVersion: flightdeck.dev/v1alpha1
kind: InferenceStack
metadata: {name: demo, namespace: llm}
spec:
  applications:
    llama-1b:
      engine: vllm
      readerConfig: {modelName: unsloth/Llama-3.2-1B-Instruct}
"#;

#[test]
fn minimal_stack_is_valid_and_defaulted() {
    let stack = stack(MINIMAL);
    let valid = validate(&stack).expect("valid");
    assert_eq!(
        (valid.name(), valid.namespace(), valid.uid()),
        ("demo", "llm", "uid-1")
    );
    assert_eq!(valid.spec(), &stack.spec);
    let app = &stack.spec.applications["llama-1b"];
    assert_eq!(app.replicas, 1);
    assert_eq!(app.reader_config.max_batch_size, 16);
    assert_eq!(app.reader_config.tensor_parallel_size, 1);
    assert_eq!(app.effective_consumer_groups("llama-1b"), vec!["llama-1b"]);
    assert_eq!(stack.spec.gateway.replicas, 1);
    assert_eq!(stack.spec.gateway.service.port, 8080);
    assert_eq!(stack.spec.gateway.queue.max_depth, 1024);
}

#[test]
fn reports_every_bad_field_with_its_path() {
    let stack = stack(
        r#"
metadata: {name: demo}
spec:
  gateway:
    replicas: -1
    service: {port: 70000}
    queue: {maxDepth: 0, requestTimeoutSeconds: 0}
    ingress: {host: "not a host"}
    apiKeys: {secretName: ""}
  applications:
    llama-1b:
      engine: llamacpp
      replicas: -2
      consumerGroups: [Bad_Group, ok, ok]
      readerConfig:
        modelName: ""
        maxBatchSize: 0
        maxSequenceLength: 0
        quantization: awq
        tensorParallelSize: 2
      modelCache: {size: lots}
"#,
    );
    let errors = validate(&stack).expect_err("invalid stack");
    let got: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        got,
        vec![
            "spec.gateway.replicas",
            "spec.gateway.service.port",
            "spec.gateway.ingress.host",
            "spec.gateway.queue.maxDepth",
            "spec.gateway.queue.requestTimeoutSeconds",
            "spec.gateway.apiKeys.secretName",
            "spec.applications.llama-1b.replicas",
            "spec.applications.llama-1b.consumerGroups[0]",
            "spec.applications.llama-1b.consumerGroups[2]",
            "spec.applications.llama-1b.readerConfig.modelName",
            "spec.applications.llama-1b.readerConfig.maxBatchSize",
            "spec.applications.llama-1b.readerConfig.maxSequenceLength",
            "spec.applications.llama-1b.readerConfig.quantization",
            "spec.applications.llama-1b.readerConfig.tensorParallelSize",
            "spec.applications.llama-1b.modelCache.size",
        ]
    );
    let batch = &errors[10];
    assert_eq!(batch.message, "must be between 1 and 4096, got 0");
    assert_eq!(
        batch.to_string(),
        "spec.applications.llama-1b.readerConfig.maxBatchSize: must be between 1 and 4096, got 0"
    );
    assert!(errors[8].message.contains("duplicate"));
}

#[test]
fn namespace_and_uid_are_required_for_owned_objects() {
    let errors = validate(&raw("metadata: {name: demo}\nspec: {}\n")).expect_err("no metadata");
    let got: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(got, vec!["metadata.namespace", "metadata.uid"]);
    assert!(errors[1].message.contains("API server"), "{}", errors[1]);
    let empty = raw("metadata: {name: demo, namespace: '', uid: ''}\nspec: {}\n");
    assert_eq!(paths(&empty), vec!["metadata.namespace", "metadata.uid"]);
}

#[test]
fn application_names_must_be_short_dns_labels() {
    let long = "a".repeat(41);
    let yaml = format!(
        "metadata: {{name: demo}}\nspec:\n  applications:\n    Llama_1B:\n      engine: tgi\n      readerConfig: {{modelName: m}}\n    {long}:\n      engine: tgi\n      readerConfig: {{modelName: m}}\n"
    );
    assert_eq!(
        paths(&stack(&yaml)),
        vec![
            "spec.applications.Llama_1B".to_owned(),
            format!("spec.applications.{long}")
        ]
    );
}

#[test]
fn stack_and_application_names_must_fit_together() {
    let stack_name = "s".repeat(40);
    let yaml = format!(
        "metadata: {{name: {stack_name}}}\nspec:\n  applications:\n    twelve-chars:\n      engine: tgi\n      readerConfig: {{modelName: m}}\n"
    );
    let errors = validate(&stack(&yaml)).expect_err("65 characters");
    assert_eq!(errors[0].path, "spec.applications.twelve-chars");
    assert!(
        errors[0].message.contains("65 characters"),
        "{}",
        errors[0].message
    );
}

#[test]
fn stack_name_must_be_a_dns1035_label() {
    for name in ["1demo", "demo.example", &"d".repeat(48)] {
        let yaml = format!("metadata: {{name: {name:?}}}\nspec: {{}}\n");
        assert_eq!(paths(&stack(&yaml)), vec!["metadata.name"], "{name}");
    }
    assert_eq!(
        paths(&stack("metadata: {}\nspec: {}\n")),
        vec!["metadata.name"]
    );
    assert_eq!(
        paths(&stack(&format!(
            "metadata: {{name: {}}}\nspec: {{}}\n",
            "d".repeat(47)
        ))),
        Vec::<String>::new()
    );
}

#[test]
fn cpu_needs_a_cpu_capable_image() {
    let yaml = |engine: &str, image: &str| {
        format!(
            "metadata: {{name: demo}}\nspec:\n  applications:\n    app:\n      engine: {engine}\n{image}      readerConfig: {{modelName: m, device: cpu}}\n"
        )
    };
    assert_eq!(
        paths(&stack(&yaml("vllm", ""))),
        vec!["spec.applications.app.readerConfig.device"]
    );
    assert_eq!(
        paths(&stack(&yaml("sglang", ""))),
        vec!["spec.applications.app.readerConfig.device"]
    );
    assert!(paths(&stack(&yaml(
        "vllm",
        "      image: example.com/vllm-cpu:1\n"
    )))
    .is_empty());
    assert!(paths(&stack(&yaml("llamacpp", ""))).is_empty());
    assert!(paths(&stack(&yaml("tgi", ""))).is_empty());
}

#[test]
fn quantities() {
    for good in ["20Gi", "1.5T", "100", "5e9", "512Mi", "1E+3"] {
        assert!(is_quantity(good), "{good}");
    }
    for bad in ["", "lots", "0", "Gi", "1.2.3Gi", "20GB", "-1Gi", "1e"] {
        assert!(!is_quantity(bad), "{bad}");
    }
}

#[test]
fn unknown_engine_is_a_parse_error() {
    let err = serde_yaml::from_str::<InferenceStack>(
        "metadata: {name: demo}\nspec:\n  applications:\n    a:\n      engine: ollama\n      readerConfig: {modelName: m}\n",
    )
    .expect_err("unknown engine");
    assert!(
        err.to_string().contains("unknown variant `ollama`"),
        "{err}"
    );
}

#[test]
fn shared_consumer_groups_must_serve_one_model() {
    let yaml = |second_model: &str| {
        format!(
            "metadata: {{name: demo}}\nspec:\n  applications:\n    a:\n      engine: vllm\n      consumerGroups: [g]\n      readerConfig: {{modelName: org/m, servedModelName: m}}\n    b:\n      engine: tgi\n      consumerGroups: [g]\n      readerConfig: {{modelName: org/m, servedModelName: {second_model}}}\n"
        )
    };
    assert_eq!(paths(&stack(&yaml("m"))), Vec::<String>::new());
    let errors = validate(&stack(&yaml("other"))).expect_err("two models in one queue");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "spec.applications.b.consumerGroups");
    assert!(
        errors[0]
            .message
            .contains("\"g\" is also used by application \"a\""),
        "{}",
        errors[0].message
    );
    // The default group is the application's name, so an application named
    // like another's explicit group joins it.
    let implicit = "metadata: {name: demo}\nspec:\n  applications:\n    a:\n      engine: vllm\n      readerConfig: {modelName: x}\n    b:\n      engine: vllm\n      consumerGroups: [a]\n      readerConfig: {modelName: y}\n";
    assert_eq!(
        paths(&stack(implicit)),
        vec!["spec.applications.b.consumerGroups"]
    );
}

#[test]
fn new_reader_fields_default_and_drain_follows_the_request_timeout() {
    let stack = stack(MINIMAL);
    let reader = &stack.spec.applications["llama-1b"].reader_config;
    assert_eq!(reader.task, crate::v1alpha1::Task::Generate);
    assert_eq!(reader.startup_timeout_seconds, 1800);
    assert_eq!(reader.drain_timeout_seconds, None);
    assert_eq!(
        reader.effective_drain_timeout_seconds(&stack.spec.gateway),
        300
    );
    assert_eq!(stack.spec.gateway.effective_drain_timeout_seconds(), 300);
}

#[test]
fn startup_and_drain_windows_are_bounded() {
    let stack = stack(
        r#"
metadata: {name: demo}
spec:
  gateway: {drainTimeoutSeconds: -1}
  applications:
    a:
      engine: vllm
      readerConfig: {modelName: m, startupTimeoutSeconds: 59, drainTimeoutSeconds: 86401}
"#,
    );
    let errors = validate(&stack).expect_err("out of range");
    let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        vec![
            "spec.gateway.drainTimeoutSeconds: must be between 0 and 86400, got -1",
            "spec.applications.a.readerConfig.startupTimeoutSeconds: must be between 60 and 86400, got 59",
            "spec.applications.a.readerConfig.drainTimeoutSeconds: must be between 0 and 86400, got 86401",
        ]
    );
}

#[test]
fn tgi_serves_no_embeddings() {
    let yaml = |engine: &str| {
        format!(
            "metadata: {{name: demo}}\nspec:\n  applications:\n    e:\n      engine: {engine}\n      readerConfig: {{modelName: m, task: embed}}\n"
        )
    };
    assert_eq!(
        paths(&stack(&yaml("tgi"))),
        vec!["spec.applications.e.readerConfig.task"]
    );
    for engine in ["vllm", "sglang", "llamacpp"] {
        assert_eq!(
            paths(&stack(&yaml(engine))),
            Vec::<String>::new(),
            "{engine}"
        );
    }
}

#[test]
fn one_served_name_has_one_task() {
    let stack = stack(
        r#"
metadata: {name: demo}
spec:
  applications:
    chat:
      engine: vllm
      readerConfig: {modelName: org/m, servedModelName: m}
    embed:
      engine: vllm
      consumerGroups: [other]
      readerConfig: {modelName: org/m, servedModelName: m, task: embed}
"#,
    );
    let errors = validate(&stack).expect_err("two tasks for one name");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "spec.applications.embed.readerConfig.task");
    assert!(errors[0].message.contains("\"chat\""), "{}", errors[0]);
}

/// A cuda application with `resources` as given (YAML flow mapping).
fn gpu_stack(tensor_parallel_size: i32, device: &str, resources: &str) -> InferenceStack {
    stack(&format!(
        "metadata: {{name: demo}}\nspec:\n  applications:\n    big:\n      engine: vllm\n      image: example.com/vllm:1\n      resources: {resources}\n      readerConfig: {{modelName: m, device: {device}, tensorParallelSize: {tensor_parallel_size}}}\n"
    ))
}

#[test]
fn gpus_must_cover_tensor_parallelism() {
    const LIMIT: &str = r#"spec.applications.big.resources.limits["nvidia.com/gpu"]"#;
    const REQUEST: &str = r#"spec.applications.big.resources.requests["nvidia.com/gpu"]"#;
    // None written: fine, the builder requests them.
    assert!(paths(&gpu_stack(4, "cuda", "{limits: {memory: 1Gi}}")).is_empty());
    assert!(paths(&gpu_stack(4, "cuda", "{limits: {nvidia.com/gpu: 4}}")).is_empty());
    assert!(paths(&gpu_stack(2, "cuda", "{limits: {nvidia.com/gpu: 8}}")).is_empty());

    let errors =
        validate(&gpu_stack(4, "cuda", "{limits: {nvidia.com/gpu: 2}}")).expect_err("2 < 4");
    assert_eq!(errors[0].path, LIMIT);
    assert!(
        errors[0]
            .message
            .contains("at least readerConfig.tensorParallelSize (4), got 2"),
        "{}",
        errors[0]
    );
    assert_eq!(
        paths(&gpu_stack(2, "cuda", "{requests: {nvidia.com/gpu: 1}}")),
        vec![REQUEST]
    );
    assert_eq!(
        paths(&gpu_stack(1, "cuda", "{limits: {nvidia.com/gpu: 500m}}")),
        vec![LIMIT]
    );
    let errors = validate(&gpu_stack(
        2,
        "cuda",
        "{limits: {nvidia.com/gpu: 4}, requests: {nvidia.com/gpu: 2}}",
    ))
    .expect_err("request != limit");
    assert_eq!(errors[0].path, REQUEST);
    assert!(
        errors[0].message.contains("must equal the limit (4)"),
        "{}",
        errors[0]
    );
    // On CPU the GPU entries are the user's business.
    assert!(paths(&gpu_stack(1, "cpu", "{limits: {nvidia.com/gpu: 0}}")).is_empty());
}
