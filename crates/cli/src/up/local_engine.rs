//! Engines that `flightdeck up` can run as local processes.
//!
//! In a cluster the operator's engine map starts each engine from its
//! container image. On a laptop there are no images, so local mode runs what
//! a CPU machine can run offline: llama.cpp's `llama-server`, with the
//! operator's own llama.cpp command line (`flightdeck_build::engines`), on a
//! GGUF file of this machine. Anything else gets an error that names what is
//! missing instead of a process that fails later.

use std::path::{Path, PathBuf};

use flightdeck_api::v1alpha1::{ApplicationSpec, Device, Engine};

use super::UpError;

/// Where `up` looks for llama-server when neither `--llama-server` nor
/// `FLIGHTDECK_LLAMA_SERVER` names one.
pub const LLAMA_SERVER: &str = "llama-server";

/// Checks that local mode can run `engine` on `device` and finds the weights:
/// `modelName` itself when it is an absolute path (as the operator passes it
/// to llama-server with `--model`), else `model_file`, the GGUF the operator
/// of `up` gave for hub models (which local mode does not download).
pub fn resolve(
    application: &str,
    engine: Engine,
    device: Device,
    model_name: &str,
    model_file: Option<&Path>,
) -> Result<PathBuf, UpError> {
    if engine != Engine::Llamacpp || device != Device::Cpu {
        return Err(UpError::UnsupportedEngine {
            application: application.to_owned(),
            engine: engine.to_string(),
            device: device.as_str().to_owned(),
            missing: missing_for(engine, device),
        });
    }
    let path = Path::new(model_name);
    let (path, what) = if path.is_absolute() {
        (path, "readerConfig.modelName")
    } else if let Some(file) = model_file {
        (file, "--model-file")
    } else {
        return Err(UpError::ModelNotFound {
            application: application.to_owned(),
            model: model_name.to_owned(),
            hint: "local mode does not download from model hubs; pass --model-file PATH \
                   (or FLIGHTDECK_MODEL_FILE) with a GGUF of this model, or set \
                   readerConfig.modelName to the absolute path of a GGUF file \
                   (`make up` passes SmolLM2's, from tests/lib/llama.sh model-path)"
                .to_owned(),
        });
    };
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(UpError::ModelNotFound {
            application: application.to_owned(),
            model: path.display().to_string(),
            hint: format!("{what} names no file on this machine"),
        })
    }
}

/// The llama-server binary: `explicit` (`--llama-server` or
/// `FLIGHTDECK_LLAMA_SERVER`), else `llama-server` on `PATH`.
pub fn find_llama_server(explicit: Option<&Path>) -> Result<PathBuf, UpError> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(UpError::NoLlamaServer(format!(
                "{} does not exist",
                path.display()
            )))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(LLAMA_SERVER))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| UpError::NoLlamaServer(format!("no {LLAMA_SERVER} on PATH")))
}

/// The operator's llama.cpp command line for `app`, on 127.0.0.1:`port`,
/// serving `model_file`: the same arguments a pod's engine gets (including
/// the application's `extraArgs`), only the address and the weights are
/// this machine's.
pub fn llama_server_args(app: &ApplicationSpec, model_file: &Path, port: u16) -> Vec<String> {
    let mut local = app.clone();
    // Keep the name clients use: it defaults to modelName, which changes here.
    let served = local.reader_config.served_model_name().to_owned();
    local.reader_config.served_model_name = Some(served);
    local.reader_config.model_name = model_file.display().to_string();
    // The engine env (LLAMA_CACHE on the pod's cache volume) is for hub
    // downloads inside a container; a local file needs none of it.
    flightdeck_build::engines::launch_on(&local, "127.0.0.1", port).args
}

fn missing_for(engine: Engine, device: Device) -> String {
    let gpu = std::process::Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    match (engine, device) {
        (Engine::Llamacpp, Device::Cuda) if !gpu => {
            "an NVIDIA GPU (nvidia-smi finds none); set readerConfig.device: cpu to run llama.cpp on the CPU".to_owned()
        }
        (Engine::Llamacpp, Device::Cuda) => {
            "a CUDA build of llama.cpp; local mode runs the CPU build, so set readerConfig.device: cpu".to_owned()
        }
        (other, Device::Cuda) if !gpu => format!(
            "an NVIDIA GPU (nvidia-smi finds none) and a local {other} install; deploy this stack to a GPU cluster with the operator instead"
        ),
        (other, _) => format!(
            "a local {other} install, which flightdeck up does not manage; it runs the llamacpp engine on CPU, or deploy this stack with the operator"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("flightdeck-up-{}-{name}", std::process::id()));
        std::fs::write(&path, b"GGUF").expect("write temp file");
        path
    }

    #[test]
    fn hub_models_use_the_given_model_file() {
        let file = temp_file("smollm2.gguf");
        let resolved = resolve(
            "chat",
            Engine::Llamacpp,
            Device::Cpu,
            "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
            Some(&file),
        )
        .expect("model file");
        assert_eq!(resolved, file);
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn hub_models_without_a_model_file_are_refused_with_a_hint() {
        let err = resolve(
            "x",
            Engine::Llamacpp,
            Device::Cpu,
            "org/other-model-GGUF",
            None,
        )
        .expect_err("no model file");
        assert!(err.to_string().contains("--model-file"), "{err}");
    }

    #[test]
    fn gpu_engines_name_what_is_missing() {
        let err = resolve("big", Engine::Vllm, Device::Cuda, "meta/llama", None).expect_err("vllm");
        let message = err.to_string();
        assert!(message.contains("big"), "{message}");
        assert!(message.contains("vllm"), "{message}");
        assert!(
            message.contains("GPU") || message.contains("install"),
            "{message}"
        );
    }

    #[test]
    fn missing_absolute_path_is_reported() {
        let err = resolve(
            "x",
            Engine::Llamacpp,
            Device::Cpu,
            "/nonexistent/model.gguf",
            None,
        )
        .expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/model.gguf"), "{err}");
    }

    #[test]
    fn a_missing_explicit_llama_server_is_reported() {
        let err =
            find_llama_server(Some(Path::new("/nonexistent/llama-server"))).expect_err("missing");
        assert!(
            err.to_string().contains("/nonexistent/llama-server"),
            "{err}"
        );
        assert!(err.to_string().contains("tests/lib/llama.sh"), "{err}");
    }

    #[test]
    fn the_operators_arguments_with_the_local_file_and_port() {
        let app: ApplicationSpec = serde_json::from_value(serde_json::json!({
            "engine": "llamacpp",
            "extraArgs": ["--threads", "2"],
            "readerConfig": {
                "modelName": "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
                "device": "cpu",
                "maxBatchSize": 4,
            },
        }))
        .expect("application");
        let args = llama_server_args(&app, Path::new("/m/smol.gguf"), 9000);
        let pair = |flag: &str, value: &str| args.windows(2).any(|w| w[0] == flag && w[1] == value);
        assert!(pair("--model", "/m/smol.gguf"), "{args:?}");
        assert!(!args.iter().any(|a| a == "--hf-repo"), "{args:?}");
        assert!(
            pair("--alias", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"),
            "{args:?}"
        );
        assert!(
            pair("--host", "127.0.0.1") && pair("--port", "9000"),
            "{args:?}"
        );
        assert!(pair("--parallel", "4"), "{args:?}");
        assert!(pair("--threads", "2"), "{args:?}");
    }
}
