//! Start-up and shutdown of the operator process.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use flightdeck_api::watches::{self, Watch, WatchesError};
use kube::Client;
use tokio::sync::watch;

use flightdeck_runtime::{admin, LogHandle};

use crate::{
    cli::Cli,
    controller::{self, NotYetWatchable},
    error::StartError,
    leader::{self, LeaderElection, Timing},
    metrics::Metrics,
    reconcile::{backoff::Backoff, Context, Images},
};

/// watches.yaml built into the binary, used when `--watches` is not given.
const EMBEDDED_WATCHES: &str = include_str!("../../../watches.yaml");

/// The first wait for the watched kind; doubles (with jitter) up to
/// [`WATCHABLE_MAX_DELAY`].
const WATCHABLE_FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest wait between two start-up lists of the watched kind.
const WATCHABLE_MAX_DELAY: Duration = Duration::from_secs(30);

/// What the admin port reports: ready once the API server listed the
/// watched kind (a standby replica waiting for the Lease is ready too: it is
/// healthy, just not the leader; `flightdeck_operator_leader` tells them
/// apart). Until then `/readyz` answers 503 with what the process waits for.
struct OperatorHealth {
    metrics: Metrics,
    /// Why the process is not ready; `None` once it is.
    not_ready: Mutex<Option<String>>,
}

impl OperatorHealth {
    fn set_not_ready(&self, reason: String) {
        *self.not_ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }

    fn set_ready(&self) {
        *self.not_ready.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl admin::Health for OperatorHealth {
    fn readiness(&self) -> Result<(), String> {
        match &*self.not_ready.lock().unwrap_or_else(|e| e.into_inner()) {
            None => Ok(()),
            Some(reason) => Err(reason.clone()),
        }
    }

    fn metrics(&self) -> Vec<u8> {
        self.metrics.render().into_bytes()
    }
}

/// Runs the operator until SIGTERM/SIGINT (Ok) or a fatal error. `log`
/// is served on the admin port, so the filter can change at run time.
pub async fn run(cli: Cli, log: LogHandle) -> Result<(), StartError> {
    let watch = load_watch(cli.watches.as_deref())?;
    tracing::info!(
        watched = %watch.gvk,
        selector = watch.label_selector.as_deref().unwrap_or(""),
        "flightdeck-operator {} starting", env!("CARGO_PKG_VERSION")
    );
    let config = kube::Config::infer()
        .await
        .map_err(|source| StartError::ClientConfig { source })?;
    let client = Client::try_from(config).map_err(|source| StartError::Client {
        source: Box::new(source),
    })?;
    let metrics = Metrics::new()?;
    let listener = admin::bind(&cli.admin_listen).await?;
    let health = Arc::new(OperatorHealth {
        metrics: metrics.clone(),
        not_ready: Mutex::new(Some("starting: the watched kind is not listed yet".into())),
    });
    tokio::spawn(admin::serve(listener, health.clone(), Some(log)));

    // From here on SIGTERM stops the process cleanly, whatever it waits for.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        flightdeck_runtime::shutdown::signal().await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });

    let identity = leader::identity();
    let ctx = Arc::new(Context::new(
        client.clone(),
        Images {
            gateway: cli.gateway_image.clone(),
            reader: cli.reader_image.clone(),
        },
        identity.clone(),
        metrics.clone(),
        watch.reconcile_period,
    ));
    if !wait_until_watchable(&ctx, &watch, &health, stop_rx.clone()).await? {
        return Ok(());
    }
    health.set_ready();

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

/// Lists the watched kind until the API server serves it. An operator
/// installed before its CRD (or its RBAC, or while the API server restarts)
/// waits, with backoff, saying what it waits for in the log and on
/// `/readyz`, rather than exiting into a crash loop. Returns `Ok(false)`
/// when stopped while waiting; fails only when the API server refuses the
/// list in a way waiting cannot fix.
async fn wait_until_watchable(
    ctx: &Context,
    watch: &Watch,
    health: &OperatorHealth,
    stop: watch::Receiver<bool>,
) -> Result<bool, StartError> {
    let backoff = Backoff::new(WATCHABLE_FIRST_DELAY, WATCHABLE_MAX_DELAY);
    let mut waited = false;
    loop {
        let listed = tokio::select! {
            listed = controller::list_watched(ctx, watch) => listed,
            () = stopped(stop.clone()) => return Ok(false),
        };
        let error = match listed {
            Ok(()) => {
                if waited {
                    tracing::info!(watched = %watch.gvk, "the watched kind is served: starting");
                }
                return Ok(true);
            }
            Err(error) => error,
        };
        let Some(reason) = NotYetWatchable::of(&error) else {
            return Err(StartError::WatchRefused {
                kind: ctx.resource.kind.clone(),
                selector: watch.label_selector.clone().unwrap_or_default(),
                source: Box::new(error),
            });
        };
        let waiting = reason.describe(&ctx.resource);
        let delay = backoff.next_delay("watched kind");
        tracing::warn!(%error, retry_in = ?delay, "{waiting}");
        health.set_not_ready(waiting);
        waited = true;
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopped(stop.clone()) => {
                tracing::info!("stopped while waiting for the watched kind");
                return Ok(false);
            }
        }
    }
}

fn load_watch(path: Option<&Path>) -> Result<Watch, WatchesError> {
    match path {
        Some(path) => Watch::load(path, &watches::served()),
        None => Watch::parse(EMBEDDED_WATCHES, &watches::served()).map_err(|source| {
            WatchesError::Invalid {
                origin: "(embedded watches.yaml)".into(),
                source,
            }
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
    use flightdeck_api::v1alpha1::InferenceStack;
    use flightdeck_runtime::admin::Health;
    use kube::Resource;

    use super::*;

    #[test]
    fn the_embedded_watches_file_matches_the_served_kind() {
        let watch = load_watch(None).expect("embedded watches.yaml is valid");
        assert_eq!(watch.gvk.kind, InferenceStack::kind(&()));
        assert_eq!(watch.gvk.version, InferenceStack::version(&()));
        assert_eq!(watch.gvk.group, InferenceStack::group(&()));
    }

    #[test]
    fn readiness_says_what_it_waits_for_until_ready() {
        let health = OperatorHealth {
            metrics: Metrics::new().expect("metrics"),
            not_ready: Mutex::new(None),
        };
        health.set_not_ready("waiting for the CRD".into());
        assert_eq!(health.readiness(), Err("waiting for the CRD".into()));
        health.set_ready();
        assert_eq!(health.readiness(), Ok(()));
    }
}
