//! Local processes of a stack: start, wait until ready, stop in order.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::UpError;

/// Stop order: readers first (they finish in-flight work and stop pulling),
/// then the gateway, then the engines the readers were calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Reader,
    Gateway,
    Engine,
}

struct Managed {
    name: String,
    role: Role,
    child: Child,
    log: PathBuf,
}

pub struct Supervisor {
    log_dir: PathBuf,
    processes: Vec<Managed>,
}

/// How long a process gets to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(15);

impl Supervisor {
    pub fn new(log_dir: PathBuf) -> Self {
        Self {
            log_dir,
            processes: Vec::new(),
        }
    }

    pub fn spawn(
        &mut self,
        name: &str,
        role: Role,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<(), UpError> {
        let log = self.log_dir.join(format!("{name}.log"));
        let open = |log: &Path| {
            std::fs::File::create(log).map_err(|source| UpError::Io {
                context: format!("creating {}", log.display()),
                source,
            })
        };
        let stdout = open(&log)?;
        let stderr = stdout.try_clone().map_err(|source| UpError::Io {
            context: format!("duplicating {}", log.display()),
            source,
        })?;
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| UpError::Io {
                context: format!("starting {name} ({})", program.display()),
                source,
            })?;
        self.processes.push(Managed {
            name: name.to_owned(),
            role,
            child,
            log,
        });
        Ok(())
    }

    /// Waits until `GET http://{addr}{path}` answers 200, failing early if the
    /// process exits. Prints a line every few seconds so a slow engine start
    /// does not look like a hang.
    pub async fn wait_ready(
        &mut self,
        name: &str,
        addr: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<(), UpError> {
        let started = Instant::now();
        let mut last_note = Instant::now();
        loop {
            if http_get_ok(addr, path).await {
                println!("  ✓ {name} ready ({:.1}s)", started.elapsed().as_secs_f64());
                return Ok(());
            }
            if let Some(process) = self.processes.iter_mut().find(|p| p.name == name) {
                if let Ok(Some(status)) = process.child.try_wait() {
                    return Err(UpError::ProcessExited {
                        name: name.to_owned(),
                        status: status.to_string(),
                        log: process.log.clone(),
                        tail: log_tail(&process.log),
                    });
                }
            }
            if started.elapsed() > timeout {
                return Err(UpError::NotReady {
                    name: name.to_owned(),
                    seconds: timeout.as_secs(),
                    log: self.log_dir.join(format!("{name}.log")),
                });
            }
            if last_note.elapsed() > Duration::from_secs(5) {
                println!("    waiting for {name} ({}s)", started.elapsed().as_secs());
                last_note = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Resolves when any process exits on its own: a running stack has lost
    /// a part and should not pretend otherwise.
    pub async fn first_exit(&mut self) -> UpError {
        loop {
            for process in &mut self.processes {
                if let Ok(Some(status)) = process.child.try_wait() {
                    return UpError::ProcessExited {
                        name: process.name.clone(),
                        status: status.to_string(),
                        log: process.log.clone(),
                        tail: log_tail(&process.log),
                    };
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// SIGTERM by role, waiting for each role to exit before the next.
    pub async fn shutdown(mut self) {
        for role in [Role::Reader, Role::Gateway, Role::Engine] {
            let group: Vec<&mut Managed> = self
                .processes
                .iter_mut()
                .filter(|p| p.role == role)
                .collect();
            for process in &group {
                if let Some(pid) = process.child.id() {
                    terminate(pid);
                }
            }
            for process in group {
                match tokio::time::timeout(GRACE, process.child.wait()).await {
                    Ok(_) => println!("  stopped {}", process.name),
                    Err(_) => {
                        let _ = process.child.kill().await;
                        println!(
                            "  killed {} (no exit within {}s)",
                            process.name,
                            GRACE.as_secs()
                        );
                    }
                }
            }
        }
    }
}

fn terminate(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet
        // reaped), so it cannot hit an unrelated process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// A bare HTTP/1.1 GET: readiness needs the status line only.
pub async fn http_get_ok(addr: &str, path: &str) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 16];
        let mut read = 0;
        while read < head.len() {
            let n = stream.read(&mut head[read..]).await.ok()?;
            if n == 0 {
                break;
            }
            read += n;
        }
        let line = String::from_utf8_lossy(&head[..read]).to_string();
        Some(line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(true))
    )
}

/// A free loopback port (bound and released: good enough for local runs).
pub fn free_port() -> Result<u16, UpError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| UpError::Io {
            context: "finding a free port on 127.0.0.1".to_owned(),
            source,
        })
}
