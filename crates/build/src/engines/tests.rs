use flightdeck_api::v1alpha1::ApplicationSpec;

use super::*;

fn app(yaml: &str) -> ApplicationSpec {
    serde_yaml::from_str(yaml).expect("application parses")
}

fn has(args: &[String], flag: &str, value: &str) -> bool {
    args.windows(2).any(|w| w[0] == flag && w[1] == value)
}

#[test]
fn vllm_command_line() {
    let launch = launch(&app(
        "engine: vllm\nextraArgs: [--enable-prefix-caching]\nreaderConfig: {modelName: org/m, servedModelName: m, maxBatchSize: 8, maxSequenceLength: 2048, quantization: awq, tensorParallelSize: 2}",
    ));
    assert_eq!(launch.image, VLLM_IMAGE);
    assert_eq!(launch.command, vec!["vllm", "serve"]);
    assert_eq!(launch.args[0], "org/m");
    for (flag, value) in [
        ("--host", "127.0.0.1"),
        ("--port", "8000"),
        ("--served-model-name", "m"),
        ("--max-num-seqs", "8"),
        ("--max-model-len", "2048"),
        ("--quantization", "awq"),
        ("--tensor-parallel-size", "2"),
    ] {
        assert!(
            has(&launch.args, flag, value),
            "{flag} {value} in {:?}",
            launch.args
        );
    }
    assert_eq!(
        launch.args.last().map(String::as_str),
        Some("--enable-prefix-caching")
    );
    assert!(launch.needs_shared_memory);
    assert_eq!(launch.probe_command[0], "python3");
    assert!(launch.probe_command[2].contains("http://127.0.0.1:8000/health"));
}

#[test]
fn sglang_command_line() {
    let launch = launch(&app(
        "engine: sglang\nimage: example.com/sglang-cpu:1\nreaderConfig: {modelName: org/m, device: cpu, maxBatchSize: 4, maxSequenceLength: 1024}",
    ));
    assert_eq!(launch.image, "example.com/sglang-cpu:1");
    assert_eq!(
        launch.command,
        vec!["python3", "-m", "sglang.launch_server"]
    );
    for (flag, value) in [
        ("--model-path", "org/m"),
        ("--served-model-name", "org/m"),
        ("--max-running-requests", "4"),
        ("--context-length", "1024"),
        ("--tp-size", "1"),
        ("--device", "cpu"),
        ("--host", "127.0.0.1"),
        ("--port", "8000"),
    ] {
        assert!(
            has(&launch.args, flag, value),
            "{flag} {value} in {:?}",
            launch.args
        );
    }
    assert!(!launch.args.contains(&"--quantization".to_owned()));
}

#[test]
fn llama_cpp_command_line() {
    let gpu = launch(&app("engine: llamacpp\nreaderConfig: {modelName: org/m-GGUF:Q4_K_M, servedModelName: m, maxBatchSize: 2}"));
    assert_eq!(gpu.image, LLAMACPP_CUDA_IMAGE);
    assert!(gpu.command.is_empty());
    assert!(has(&gpu.args, "--hf-repo", "org/m-GGUF:Q4_K_M"));
    assert!(has(&gpu.args, "--alias", "m"));
    assert!(has(&gpu.args, "--parallel", "2"));
    assert!(has(&gpu.args, "--n-gpu-layers", "999"));
    assert!(!gpu.args.contains(&"--ctx-size".to_owned()));
    assert!(!gpu.needs_shared_memory);
    assert_eq!(gpu.probe_command[0], "curl");

    let cpu = launch_on(
        &app("engine: llamacpp\nreaderConfig: {modelName: /models/m.gguf, device: cpu, maxBatchSize: 3, maxSequenceLength: 1000}"),
        "127.0.0.1",
        9001,
    );
    assert_eq!(cpu.image, LLAMACPP_CPU_IMAGE);
    assert!(has(&cpu.args, "--model", "/models/m.gguf"));
    assert!(has(&cpu.args, "--n-gpu-layers", "0"));
    assert!(has(&cpu.args, "--ctx-size", "3000"));
    assert!(has(&cpu.args, "--port", "9001"));
    assert_eq!(
        cpu.env,
        vec![
            ("HF_HOME".to_owned(), "/model-cache/huggingface".to_owned()),
            (
                "LLAMA_CACHE".to_owned(),
                "/model-cache/llama.cpp".to_owned()
            ),
        ]
    );
}

#[test]
fn tgi_command_line() {
    let gpu = launch(&app(
        "engine: tgi\nreaderConfig: {modelName: org/m, maxBatchSize: 12, maxSequenceLength: 4096, quantization: bitsandbytes-nf4, tensorParallelSize: 2}",
    ));
    assert_eq!(gpu.image, TGI_CUDA_IMAGE);
    for (flag, value) in [
        ("--model-id", "org/m"),
        ("--hostname", "127.0.0.1"),
        ("--port", "8000"),
        ("--max-concurrent-requests", "12"),
        ("--max-total-tokens", "4096"),
        ("--max-input-tokens", "4095"),
        ("--quantize", "bitsandbytes-nf4"),
        ("--num-shard", "2"),
    ] {
        assert!(
            has(&gpu.args, flag, value),
            "{flag} {value} in {:?}",
            gpu.args
        );
    }
    let cpu = launch(&app(
        "engine: tgi\nreaderConfig: {modelName: org/m, device: cpu}",
    ));
    assert_eq!(cpu.image, TGI_CPU_IMAGE);
    assert!(!cpu.args.contains(&"--num-shard".to_owned()));
    assert!(cpu
        .env
        .iter()
        .any(|(k, v)| k == "HUGGINGFACE_HUB_CACHE" && v == "/model-cache/huggingface/hub"));
}

#[test]
fn every_engine_probes_its_health_endpoint_on_loopback() {
    for engine in ["vllm", "sglang", "llamacpp", "tgi"] {
        let launch = launch(&app(&format!(
            "engine: {engine}\nreaderConfig: {{modelName: org/m}}"
        )));
        assert!(
            launch
                .probe_command
                .iter()
                .any(|part| part.contains("http://127.0.0.1:8000/health")),
            "{engine}: {:?}",
            launch.probe_command
        );
        assert!(launch.startup_period_seconds * launch.startup_failure_threshold >= 1800);
    }
}

#[test]
fn task_embed_starts_each_engine_for_embeddings() {
    let embed = |engine: &str| {
        launch(&app(&format!(
            "engine: {engine}\nreaderConfig: {{modelName: org/m, task: embed}}"
        )))
        .args
    };
    assert!(has(&embed("vllm"), "--runner", "pooling"));
    assert!(embed("sglang").contains(&"--is-embedding".to_owned()));
    assert!(embed("llamacpp").contains(&"--embeddings".to_owned()));
    let long = launch(&app(
        "engine: llamacpp\nreaderConfig: {modelName: org/m, task: embed, maxSequenceLength: 2048}",
    ))
    .args;
    assert!(has(&long, "--ubatch-size", "2048"), "{long:?}");
    assert!(has(&long, "--batch-size", "2048"), "{long:?}");
    // Generation (the default) passes none of them.
    for engine in ["vllm", "sglang", "llamacpp", "tgi"] {
        let args = launch(&app(&format!(
            "engine: {engine}\nreaderConfig: {{modelName: org/m}}"
        )))
        .args;
        for flag in ["--runner", "--is-embedding", "--embeddings"] {
            assert!(!args.contains(&flag.to_owned()), "{engine}: {args:?}");
        }
    }
}

#[test]
fn startup_window_sets_the_probe_threshold_rounded_up() {
    let threshold = |yaml: &str| {
        let launch = launch(&app(yaml));
        assert_eq!(launch.startup_period_seconds, 10);
        launch.startup_failure_threshold
    };
    assert_eq!(
        threshold("engine: vllm\nreaderConfig: {modelName: org/m}"),
        180,
        "default: 30 minutes"
    );
    assert_eq!(
        threshold("engine: vllm\nreaderConfig: {modelName: org/m, startupTimeoutSeconds: 7200}"),
        720
    );
    assert_eq!(
        threshold("engine: vllm\nreaderConfig: {modelName: org/m, startupTimeoutSeconds: 61}"),
        7,
        "61 s is 7 periods, never fewer seconds than asked"
    );
    assert_eq!(startup_failure_threshold(60), 6);
    assert_eq!(startup_failure_threshold(0), 1);
}
