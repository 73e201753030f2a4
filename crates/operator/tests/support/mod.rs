//! Harness of the end-to-end tests: a real API server (KUBECONFIG, set by
//! tests/operator/run.sh), the real operator binary as a child process.
//!
//! Isolation: every test makes its own namespace and a label value of its
//! own; its operator watches only stacks carrying that label (the
//! watches.yaml label selector) and elects a leader on a Lease of its own,
//! so tests run in parallel without seeing each other's stacks.
//!
//! A scenario that removes the CRD runs alone ([`TestEnv::exclusive`]): the
//! others take the cluster shared and wait for it.
//!
//! When FLIGHTDECK_OPERATOR_KUBECONFIG is set (run.sh sets it), the operator
//! authenticates as the `flightdeck-operator` ServiceAccount bound to
//! config/rbac, so a permission missing there fails the tests.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::{
    collections::BTreeMap,
    future::Future,
    io::Write,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use flightdeck_api::v1alpha1::InferenceStack;
use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    core::{ApiResource, ObjectMeta},
    Api, Client, CustomResourceExt, ResourceExt,
};
use serde_json::Value;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Label that scopes a test's stacks to that test's operator.
pub const TEST_LABEL: &str = "flightdeck.dev/e2e";
/// Namespace of the leader-election Leases (config/rbac grants it there).
pub const LEASE_NAMESPACE: &str = "flightdeck-system";

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The scenarios of one test binary share one cluster: most take it shared;
/// one that removes the CRD (which deletes every stack) takes it alone.
static CLUSTER: RwLock<()> = RwLock::const_new(());

/// How a scenario holds the cluster, for as long as its [`TestEnv`] lives.
enum ClusterUse {
    Shared(RwLockReadGuard<'static, ()>),
    Exclusive(RwLockWriteGuard<'static, ()>),
}

/// The CRD of the stack kind, as the API server names it.
pub const CRD_NAME: &str = "inferencestacks.flightdeck.dev";

/// Admin client (KUBECONFIG) and a namespace of this test's own.
pub struct TestEnv {
    pub client: Client,
    pub namespace: String,
    /// Value of [`TEST_LABEL`] on this test's stacks.
    pub id: String,
    _cluster: ClusterUse,
}

impl TestEnv {
    /// A scenario sharing the cluster with the others; the CRD is installed.
    pub async fn new(test: &str) -> Self {
        let cluster = ClusterUse::Shared(CLUSTER.read().await);
        let env = Self::with(test, cluster).await;
        ensure_crd(&env.client).await;
        env
    }

    /// A scenario alone on the cluster (the others wait), which may remove
    /// the CRD ([`Self::remove_crd`]); it must install it again before it
    /// ends ([`Self::install_crd`]).
    pub async fn exclusive(test: &str) -> Self {
        let cluster = ClusterUse::Exclusive(CLUSTER.write().await);
        Self::with(test, cluster).await
    }

    /// Deletes the stack kind's CRD (and so every stack) and waits until the
    /// API server no longer has it.
    pub async fn remove_crd(&self) {
        assert!(
            matches!(self._cluster, ClusterUse::Exclusive(_)),
            "only an exclusive scenario may remove the CRD"
        );
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        match crds.delete(CRD_NAME, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => panic!("delete CRD: {error}"),
        }
        wait_for("CRD removed", Duration::from_secs(120), || async {
            crds.get_opt(CRD_NAME).await.ok()?.is_none().then_some(())
        })
        .await;
    }

    /// Installs the CRD (if absent) and waits until it is established.
    pub async fn install_crd(&self) {
        ensure_crd(&self.client).await;
    }

    async fn with(test: &str, cluster: ClusterUse) -> Self {
        let client = Client::try_default()
            .await
            .expect("KUBECONFIG must point at a running API server (run tests/operator/run.sh)");
        ensure_namespace(&client, LEASE_NAMESPACE).await;
        let id = format!(
            "{test}-{:06x}",
            getrandom::u32().expect("random") & 0xff_ffff
        );
        let namespace = format!("e2e-{id}");
        ensure_namespace(&client, &namespace).await;
        TestEnv {
            client,
            namespace,
            id,
            _cluster: cluster,
        }
    }

    pub fn stacks(&self) -> Api<InferenceStack> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Starts an operator that watches this test's stacks.
    pub fn operator(&self) -> Operator {
        Operator::start(OperatorOptions::new(&self.id))
    }

    /// Creates a stack from YAML (labelled for this test's operator).
    pub async fn create_stack(&self, yaml: &str) -> InferenceStack {
        self.create_stack_for(&self.id, yaml).await
    }

    /// Creates a stack for the operator watching `TEST_LABEL=label`.
    pub async fn create_stack_for(&self, label: &str, yaml: &str) -> InferenceStack {
        let mut stack: InferenceStack = serde_yaml::from_str(yaml).expect("stack YAML");
        stack
            .labels_mut()
            .insert(TEST_LABEL.to_owned(), label.to_owned());
        self.stacks()
            .create(&PostParams::default(), &stack)
            .await
            .expect("create stack")
    }

    /// Creates an arbitrary (possibly invalid) object of the stack kind.
    pub async fn create_raw_stack(&self, mut object: Value) -> Result<DynamicObject, kube::Error> {
        object["metadata"]["labels"][TEST_LABEL] = Value::String(self.id.clone());
        let resource = ApiResource::erase::<InferenceStack>(&());
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
        let object: DynamicObject = serde_json::from_value(object).expect("object JSON");
        api.create(&PostParams::default(), &object).await
    }

    /// Merge-patches a stack's spec.
    pub async fn patch_stack(&self, name: &str, patch: Value) {
        self.stacks()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch stack");
    }

    /// Deletes the namespace (best effort: the cluster is thrown away anyway).
    pub async fn cleanup(self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.namespace, &DeleteParams::background())
            .await;
    }
}

async fn ensure_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = InferenceStack::crd();
    let name = crd.name_any();
    if crds.get_opt(&name).await.expect("read CRD").is_none() {
        // run.sh installs it; this keeps `cargo test -- --ignored` against
        // any cluster self-contained. A create, not an apply: 1.20 refuses to
        // apply a schema with CEL rules (x-kubernetes-validations) but drops
        // them on create.
        match crds.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => panic!("install CRD: {error}"),
        }
    }
    wait_for("CRD established", Duration::from_secs(30), || async {
        let crd = crds.get(&name).await.ok()?;
        crd.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
}

async fn ensure_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match namespaces.create(&PostParams::default(), &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => panic!("create namespace {name}: {error}"),
    }
}

/// Polls `check` until it returns Some, or panics after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How to start one operator process.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    pub label_selector: String,
    pub lease_name: String,
    pub lease_duration: &'static str,
    pub reconcile_period: &'static str,
    pub gateway_image: String,
}

impl OperatorOptions {
    pub fn new(id: &str) -> Self {
        Self {
            label_selector: format!("{TEST_LABEL}={id}"),
            lease_name: format!("e2e-{id}"),
            lease_duration: "6s",
            reconcile_period: "10m",
            gateway_image: GATEWAY_IMAGE.to_owned(),
        }
    }
}

/// Images the test operators put in stacks (never pulled: no kubelet).
pub const GATEWAY_IMAGE: &str = "flightdeck-gateway:e2e";
pub const READER_IMAGE: &str = "flightdeck-reader:e2e";

/// A running `flightdeck-operator`, killed when dropped.
pub struct Operator {
    child: Child,
    pub admin: String,
    pub log: PathBuf,
}

impl Operator {
    pub fn start(options: OperatorOptions) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e");
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let tag = format!(
            "{}-{:08x}",
            options.lease_name,
            getrandom::u32().expect("random")
        );
        let watches = dir.join(format!("{tag}-watches.yaml"));
        let mut file = std::fs::File::create(&watches).expect("watches file");
        write!(
            file,
            "- group: flightdeck.dev\n  version: v1alpha1\n  kind: InferenceStack\n  \
             labelSelector: \"{}\"\n  reconcilePeriod: {}\n  maxConcurrentReconciles: 4\n",
            options.label_selector, options.reconcile_period
        )
        .expect("write watches");
        let admin = format!("127.0.0.1:{}", free_port());
        let log = dir.join(format!("{tag}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_flightdeck-operator"));
        command
            .arg("--watches")
            .arg(&watches)
            .args(["--admin-listen", &admin])
            .args(["--leader-election-namespace", LEASE_NAMESPACE])
            .args(["--lease-name", &options.lease_name])
            .args(["--lease-duration", options.lease_duration])
            .args(["--gateway-image", &options.gateway_image])
            .args(["--reader-image", READER_IMAGE])
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info,flightdeck_operator=debug,kube=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file));
        if let Ok(kubeconfig) = std::env::var("FLIGHTDECK_OPERATOR_KUBECONFIG") {
            command.env("KUBECONFIG", kubeconfig);
        }
        let child = command.spawn().expect("spawn flightdeck-operator");
        Operator { child, admin, log }
    }

    /// The operator's /metrics page (None while it is not up).
    pub async fn metrics(&self) -> Option<String> {
        http_get(&self.admin, "/metrics").await
    }

    /// Value of one metric line (exact name and labels), e.g.
    /// `flightdeck_operator_leader`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let page = self.metrics().await?;
        page.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
    }

    /// /readyz's status code and body (None while the admin port is down).
    pub async fn readyz(&self) -> Option<(u16, String)> {
        http_request(&self.admin, "/readyz").await
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until /readyz answers 200.
    pub async fn wait_ready(&self) {
        wait_for("operator /readyz", Duration::from_secs(60), || async {
            http_get(&self.admin, "/readyz").await.map(|_| ())
        })
        .await;
    }

    /// The operator's log so far (for assertion messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops with SIGTERM (graceful: releases the lease) and waits.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().expect("wait for operator");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// Minimal HTTP/1.0 GET on loopback: 200 body or None.
async fn http_get(address: &str, path: &str) -> Option<String> {
    let (status, body) = http_request(address, path).await?;
    (status == 200).then_some(body)
}

/// Minimal HTTP/1.0 GET on loopback: status code and body, or None when
/// nothing answers.
async fn http_request(address: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, body.to_owned()))
}

/// Labels of the stack's children, per the contract.
pub fn child_labels(stack: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name", "flightdeck".to_owned()),
        ("app.kubernetes.io/instance", stack.to_owned()),
        (
            "app.kubernetes.io/managed-by",
            "flightdeck-operator".to_owned(),
        ),
        ("flightdeck.dev/stack", stack.to_owned()),
    ])
}
