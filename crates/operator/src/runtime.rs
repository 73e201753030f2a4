//! Start-up and shutdown of the operator process.

use std::{
    path::Path,
    sync::{atomic::AtomicBool, atomic::Ordering, Arc},
    time::Duration,
};

use flightdeck_api::v1alpha1::InferenceStack;
use kube::{
    api::ApiResource,
    runtime::events::{Recorder, Reporter},
    Client,
};
use tokio::sync::watch;

use flightdeck_runtime::{admin, LogHandle};

use crate::{
    cli::Cli,
    controller,
    error::{Error, Result},
    leader::{self, LeaderElection, Timing},
    metrics::Metrics,
    reconcile::{backoff::Backoff, Context, Images},
    watches::{Served, Watch},
};

/// watches.yaml built into the binary, used when `--watches` is not given.
const EMBEDDED_WATCHES: &str = include_str!("../../../watches.yaml");

/// The group/version/kind this binary's types serve.
pub fn served() -> Served<'static> {
    Served {
        group: "flightdeck.dev",
        version: "v1alpha1",
        kind: "InferenceStack",
    }
}

/// What the admin port reports: ready once the API server was reached and
/// the watched kind listed (a standby replica waiting for the Lease is ready
/// too: it is healthy, just not the leader; `flightdeck_operator_leader`
/// tells them apart).
struct OperatorHealth {
    metrics: Metrics,
    ready: Arc<AtomicBool>,
}

impl admin::Health for OperatorHealth {
    fn readiness(&self) -> std::result::Result<(), String> {
        if self.ready.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("not connected to the API server yet".into())
        }
    }

    fn metrics(&self) -> Vec<u8> {
        self.metrics.render().into_bytes()
    }
}

/// Runs the operator until SIGTERM/SIGINT (Ok) or a fatal error. `log`
/// is served on the admin port, so the filter can change at run time.
pub async fn run(cli: Cli, log: LogHandle) -> Result<()> {
    let watch = load_watch(cli.watches.as_deref())?;
    tracing::info!(
        group = %watch.group, version = %watch.version, kind = %watch.kind,
        selector = watch.label_selector.as_deref().unwrap_or(""),
        "flightdeck-operator {} starting", env!("CARGO_PKG_VERSION")
    );
    let client = Client::try_default()
        .await
        .map_err(|e| Error::ClientConfig {
            message: e.to_string(),
        })?;
    let metrics = Metrics::new()?;
    let ready = Arc::new(AtomicBool::new(false));
    let listener = admin::bind(&cli.admin_listen).await?;
    let health = Arc::new(OperatorHealth {
        metrics: metrics.clone(),
        ready: ready.clone(),
    });
    tokio::spawn(admin::serve(listener, health, Some(log)));

    let identity = leader::identity();
    let ctx = Arc::new(Context {
        client: client.clone(),
        resource: ApiResource::erase::<InferenceStack>(&()),
        images: Images {
            gateway: cli.gateway_image.clone(),
            reader: cli.reader_image.clone(),
        },
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "flightdeck-operator".into(),
                instance: Some(identity.clone()),
            },
        ),
        metrics: metrics.clone(),
        backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
        reconcile_period: watch.reconcile_period,
    });
    controller::check_access(&ctx, &watch).await?;
    ready.store(true, Ordering::Relaxed);

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        flightdeck_runtime::shutdown::signal().await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });

    if cli.no_leader_election {
        metrics.leader.set(1);
        controller::run(ctx, &watch, stopped(stop_rx)).await;
        return Ok(());
    }

    let namespace = match cli.leader_election_namespace.clone() {
        Some(namespace) => namespace,
        None => default_namespace(&client),
    };
    let election = LeaderElection::new(
        client,
        &namespace,
        &cli.lease_name,
        identity,
        Timing::from_lease_duration(cli.lease_duration),
        metrics,
    );
    tokio::select! {
        () = election.acquire() => {}
        () = stopped(stop_rx.clone()) => return Ok(()),
    }
    let outcome = tokio::select! {
        () = controller::run(ctx, &watch, stopped(stop_rx)) => Ok(()),
        lost = election.hold() => Err(lost),
    };
    if outcome.is_ok() {
        election.release().await;
    }
    outcome
}

fn load_watch(path: Option<&Path>) -> Result<Watch> {
    match path {
        Some(path) => Watch::load(path, served()),
        None => Watch::parse(EMBEDDED_WATCHES, served()).map_err(|message| Error::WatchesInvalid {
            path: "(embedded watches.yaml)".into(),
            message,
        }),
    }
}

/// Resolves when the stop flag turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

fn default_namespace(client: &Client) -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok()
        })
        .map(|namespace| namespace.trim().to_owned())
        .filter(|namespace| !namespace.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_owned())
}

#[cfg(test)]
mod tests {
    use kube::Resource;

    use super::*;

    #[test]
    fn the_embedded_watches_file_matches_the_served_kind() {
        let watch = load_watch(None).expect("embedded watches.yaml is valid");
        assert_eq!(watch.kind, InferenceStack::kind(&()));
        assert_eq!(watch.version, InferenceStack::version(&()));
        assert_eq!(watch.group, InferenceStack::group(&()));
    }
}
