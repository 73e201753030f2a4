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
mod supervisor;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use thiserror::Error;

use crate::error::CliError;
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
    /// llama.cpp's llama-server binary; default: `llama-server` on PATH.
    /// `tests/lib/llama.sh server-path` builds one (`make up` passes it).
    #[arg(long, env = "FLIGHTDECK_LLAMA_SERVER")]
    pub llama_server: Option<PathBuf>,
    /// GGUF file served for applications whose modelName is a model hub
    /// repository (local mode downloads nothing); `make up` passes SmolLM2's
    /// (`tests/lib/llama.sh model-path`) for the quickstart.
    #[arg(long, env = "FLIGHTDECK_MODEL_FILE")]
    pub model_file: Option<PathBuf>,
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
    #[error(
        "llama.cpp's llama-server is needed to run the engine, and {0}: pass --llama-server PATH \
             (or set FLIGHTDECK_LLAMA_SERVER), or put llama-server on PATH; \
             `tests/lib/llama.sh server-path` builds one from source (`make up` does this for you)"
    )]
    NoLlamaServer(String),
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

    // Everything that can be refused is refused before anything starts.
    let mut model_files = Vec::new();
    for app in &plan.applications {
        model_files.push(local_engine::resolve(
            &app.name,
            app.engine,
            app.device,
            &app.model_name,
            args.model_file.as_deref(),
        )?);
    }
    let llama_server = local_engine::find_llama_server(args.llama_server.as_deref())?;

    let binaries = Binaries::locate()?;
    let run_dir = cache_dir()?
        .join("up")
        .join(stack_name(&stack).replace('/', "-"));
    let log_dir = run_dir.join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|source| UpError::Io {
        context: format!("creating {}", log_dir.display()),
        source,
    })?;
    let config_path = run_dir.join(flightdeck_protocol::gateway_config::GATEWAY_CONFIG_FILE);
    plan.write_gateway_config(&config_path)?;

    println!(
        "[1/4] engine: llama.cpp's llama-server ({})",
        llama_server.display()
    );

    let mut supervisor = Supervisor::new(log_dir.clone());
    let outcome = start_and_serve(
        &plan,
        &model_files,
        &llama_server,
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
    model_files: &[PathBuf],
    llama_server: &std::path::Path,
    binaries: &Binaries,
    config_path: &std::path::Path,
    supervisor: &mut Supervisor,
    args: &UpArgs,
) -> Result<(), UpError> {
    println!("[2/4] starting engines");
    let mut engine_ports = Vec::new();
    for (app, model_file) in plan.applications.iter().zip(model_files) {
        let mut ports = Vec::new();
        for replica in 0..app.replicas {
            let port = supervisor::free_port()?;
            let name = format!("engine-{}-{replica}", app.name);
            let engine_args = local_engine::llama_server_args(&app.spec, model_file, port);
            supervisor.spawn(&name, Role::Engine, llama_server, &engine_args, &[])?;
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
                    // llama-server answers 503 here until the model is loaded.
                    "/health",
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

/// `$FLIGHTDECK_CACHE`, else `$XDG_CACHE_HOME/flightdeck`, else `~/.cache/flightdeck`.
fn cache_dir() -> Result<PathBuf, UpError> {
    if let Some(dir) = std::env::var_os("FLIGHTDECK_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("flightdeck"));
    }
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache").join("flightdeck"))
        .ok_or(UpError::NoCacheDir)
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
