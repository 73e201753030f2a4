//! Operator scale benchmark against a real API server (prints figures; no
//! assertions on timing). Driven by tests/operator/bench.sh.
//!
//! For each N: starts the operator binary, creates N small stacks at once,
//! and reports
//! - time from a stack's creation to all its children existing (p50, p99):
//!   the reconciler applies a stack's application Deployment after every
//!   other child succeeded, so its appearance (seen through a watch) marks
//!   the stack complete; a final listing checks every child is there;
//! - reconciles per second over that period (the operator's own counter);
//! - the operator's peak RSS (VmHWM);
//! - writes during an idle window afterwards: objects the operator changed
//!   (its managedFields time moved) and its status patches (target 0).
//!
//! Usage: scale --operator PATH [--stacks 100,500] [--idle-seconds 60]

use std::{
    collections::{BTreeMap, HashMap},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use flightdeck_api::v1alpha1::InferenceStack;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    api::{DeleteParams, ListParams, PostParams},
    core::ObjectMeta,
    runtime::{watcher, WatchStreamExt},
    Api, Client, CustomResourceExt, ResourceExt,
};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Options {
    operator: String,
    stacks: Vec<usize>,
    idle: Duration,
}

fn options() -> BenchResult<Options> {
    let mut options = Options {
        operator: String::new(),
        stacks: vec![100, 500],
        idle: Duration::from_secs(60),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--operator" => options.operator = args.next().ok_or("--operator PATH")?,
            "--stacks" => {
                options.stacks = args
                    .next()
                    .ok_or("--stacks N[,N...]")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--idle-seconds" => {
                options.idle = Duration::from_secs(args.next().ok_or("--idle-seconds S")?.parse()?);
            }
            // cargo bench passes --bench.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if options.operator.is_empty() {
        return Err("--operator PATH of the flightdeck-operator binary is required".into());
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let options = options()?;
    let client = Client::try_default().await?;
    install_crd(&client).await?;
    println!("| stacks | children ready p50 | p99 | max | reconciles/s | operator peak RSS | idle writes ({}s) |", options.idle.as_secs());
    println!("|---|---|---|---|---|---|---|");
    for &n in &options.stacks {
        let figures = run_one(&client, &options, n).await?;
        println!(
            "| {n} | {:.2} s | {:.2} s | {:.2} s | {:.1} | {:.1} MiB | {} objects rewritten, {} status patches |",
            figures.p50, figures.p99, figures.max, figures.reconciles_per_second,
            figures.peak_rss_kib as f64 / 1024.0, figures.idle_version_changes, figures.idle_status_patches
        );
    }
    Ok(())
}

struct Figures {
    p50: f64,
    p99: f64,
    max: f64,
    reconciles_per_second: f64,
    peak_rss_kib: u64,
    idle_version_changes: usize,
    idle_status_patches: f64,
}

async fn run_one(client: &Client, options: &Options, n: usize) -> BenchResult<Figures> {
    let run = format!(
        "bench-{n}-{:06x}",
        getrandom::u32().map_err(|e| e.to_string())? & 0xff_ffff
    );
    let namespace = run.clone();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(namespace.clone()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await?;
    let operator = OperatorProcess::start(&options.operator, &run)?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Watch application Deployments: the last child applied per stack.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watch = tokio::spawn({
        let deployments = deployments.clone();
        async move {
            let stream = watcher(
                deployments,
                watcher::Config::default().labels("app.kubernetes.io/component=reader"),
            )
            .applied_objects();
            futures::pin_mut!(stream);
            while let Ok(Some(deployment)) = stream.try_next().await {
                let stack = deployment
                    .labels()
                    .get("flightdeck.dev/stack")
                    .cloned()
                    .unwrap_or_default();
                if done_tx.send((stack, Instant::now())).is_err() {
                    break;
                }
            }
        }
    });

    let stacks: Api<InferenceStack> = Api::namespaced(client.clone(), &namespace);
    let reconciles_before = operator
        .metric("flightdeck_operator_reconciles_total{result=\"success\"}")
        .await
        .unwrap_or(0.0);
    let started = Instant::now();
    let created: HashMap<String, Instant> = futures::stream::iter(0..n)
        .map(|i| {
            let stacks = stacks.clone();
            let run = run.clone();
            async move {
                let name = format!("s{i:04}");
                let stack = stack(&name, &run)?;
                let at = Instant::now();
                stacks.create(&PostParams::default(), &stack).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((name, at))
            }
        })
        .buffer_unordered(32)
        .try_collect()
        .await?;

    let mut latencies: BTreeMap<String, f64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while latencies.len() < n {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((stack, at))) = tokio::time::timeout(remaining, done_rx.recv()).await else {
            return Err(format!(
                "only {}/{n} stacks complete after 10 minutes",
                latencies.len()
            )
            .into());
        };
        if let Some(created_at) = created.get(&stack) {
            latencies
                .entry(stack)
                .or_insert_with(|| at.saturating_duration_since(*created_at).as_secs_f64());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    watch.abort();
    let reconciles = operator
        .metric("flightdeck_operator_reconciles_total{result=\"success\"}")
        .await
        .unwrap_or(0.0)
        - reconciles_before;
    verify_children(client, &namespace, n).await?;

    // Idle window: let status writes of the last reconciles land, then count.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = versions(client, &namespace).await?;
    let patches_before = status_patches(&operator).await;
    tokio::time::sleep(options.idle).await;
    let after = versions(client, &namespace).await?;
    let idle_version_changes = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .count()
        + after.keys().filter(|k| !before.contains_key(*k)).count();
    let idle_status_patches = status_patches(&operator).await - patches_before;
    let peak_rss_kib = operator.peak_rss_kib();
    drop(operator);

    let _ = Api::<Namespace>::all(client.clone())
        .delete(&namespace, &DeleteParams::background())
        .await;
    let mut sorted: Vec<f64> = latencies.into_values().collect();
    sorted.sort_by(f64::total_cmp);
    let pick =
        |q: f64| sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1];
    Ok(Figures {
        p50: pick(0.50),
        p99: pick(0.99),
        max: pick(1.0),
        reconciles_per_second: reconciles / elapsed,
        peak_rss_kib,
        idle_version_changes,
        idle_status_patches,
    })
}

fn stack(name: &str, run: &str) -> BenchResult<InferenceStack> {
    let mut stack: InferenceStack = serde_yaml::from_str(&format!(
        "apiVersion: flightdeck.dev/v1alpha1\nkind: InferenceStack\nmetadata: {{name: {name}}}\n\
         spec:\n  applications:\n    smol:\n      engine: llamacpp\n      \
         readerConfig: {{modelName: HuggingFaceTB/SmolLM2-135M-Instruct-GGUF, device: cpu}}\n"
    ))?;
    stack
        .labels_mut()
        .insert("flightdeck.dev/bench".into(), run.into());
    Ok(stack)
}

/// Every stack has all its children (per kind, counted by label).
async fn verify_children(client: &Client, namespace: &str, n: usize) -> BenchResult<()> {
    let params = ListParams::default().labels("app.kubernetes.io/managed-by=flightdeck-operator");
    let counts = [
        (
            "Deployment",
            Api::<Deployment>::namespaced(client.clone(), namespace)
                .list(&params)
                .await?
                .items
                .len(),
            2 * n,
        ),
        (
            "Service",
            Api::<Service>::namespaced(client.clone(), namespace)
                .list(&params)
                .await?
                .items
                .len(),
            2 * n,
        ),
        (
            "ConfigMap",
            Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .list(&params)
                .await?
                .items
                .len(),
            n,
        ),
        (
            "Secret",
            Api::<Secret>::namespaced(client.clone(), namespace)
                .list(&params)
                .await?
                .items
                .len(),
            n,
        ),
        (
            "ServiceAccount",
            Api::<ServiceAccount>::namespaced(client.clone(), namespace)
                .list(&params)
                .await?
                .items
                .len(),
            n,
        ),
    ];
    for (kind, found, expected) in counts {
        if found != expected {
            return Err(format!("{kind}: {found} of {expected} children exist").into());
        }
    }
    Ok(())
}

/// For every object in the namespace: when the operator last changed it
/// (its field manager's managedFields time). A no-op apply leaves it alone,
/// and other controllers' writes (Deployment status, ServiceAccount tokens)
/// do not count against the operator.
async fn versions(client: &Client, namespace: &str) -> BenchResult<BTreeMap<String, String>> {
    fn ours<K: kube::Resource>(object: &K) -> String {
        object
            .meta()
            .managed_fields
            .iter()
            .flatten()
            .filter(|entry| entry.manager.as_deref() == Some("flightdeck-operator"))
            .map(|entry| format!("{:?}", entry.time))
            .collect::<Vec<_>>()
            .join(",")
    }
    let mut versions = BTreeMap::new();
    let params = ListParams::default();
    for d in Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&params)
        .await?
    {
        versions.insert(format!("Deployment/{}", d.name_any()), ours(&d));
    }
    for s in Api::<Service>::namespaced(client.clone(), namespace)
        .list(&params)
        .await?
    {
        versions.insert(format!("Service/{}", s.name_any()), ours(&s));
    }
    for c in Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .list(&params)
        .await?
    {
        versions.insert(format!("ConfigMap/{}", c.name_any()), ours(&c));
    }
    for s in Api::<InferenceStack>::namespaced(client.clone(), namespace)
        .list(&params)
        .await?
    {
        versions.insert(format!("InferenceStack/{}", s.name_any()), ours(&s));
    }
    Ok(versions)
}

async fn status_patches(operator: &OperatorProcess) -> f64 {
    operator
        .metric(
            "flightdeck_operator_api_writes_total{kind=\"InferenceStack/status\",verb=\"patch\"}",
        )
        .await
        .unwrap_or(0.0)
}

async fn install_crd(client: &Client) -> BenchResult<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = InferenceStack::crd();
    if crds.get_opt(&crd.name_any()).await?.is_none() {
        // A create, not an apply: 1.20 refuses to apply a schema with CEL
        // rules (x-kubernetes-validations) but drops them on create.
        crds.create(&PostParams::default(), &crd).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}

struct OperatorProcess {
    child: Child,
    admin: String,
}

impl OperatorProcess {
    fn start(binary: &str, run: &str) -> BenchResult<Self> {
        let dir = std::env::temp_dir().join(format!("flightdeck-{run}"));
        std::fs::create_dir_all(&dir)?;
        let watches = dir.join("watches.yaml");
        std::fs::write(
            &watches,
            format!(
                "- group: flightdeck.dev\n  version: v1alpha1\n  kind: InferenceStack\n  \
                 labelSelector: flightdeck.dev/bench={run}\n  reconcilePeriod: 10m\n  maxConcurrentReconciles: 8\n"
            ),
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let admin = format!("127.0.0.1:{port}");
        let child = Command::new(binary)
            .arg("--watches")
            .arg(&watches)
            .args([
                "--admin-listen",
                &admin,
                "--no-leader-election",
                "--log-format",
                "json",
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(
                dir.join("operator.log"),
            )?))
            .spawn()?;
        Ok(Self { child, admin })
    }

    async fn metric(&self, series: &str) -> Option<f64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&self.admin).await.ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .await
            .ok()?;
        let mut page = String::new();
        stream.read_to_string(&mut page).await.ok()?;
        page.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
    }

    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status.lines().find_map(|line| {
                    line.strip_prefix("VmHWM:")?
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse()
                        .ok()
                })
            })
            .unwrap_or(0)
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
