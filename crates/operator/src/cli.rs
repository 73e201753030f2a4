//! Command-line flags of `flightdeck-operator` (each has an env equivalent).

use std::path::PathBuf;

use clap::Parser;

use flightdeck_api::watches::parse_duration;
use flightdeck_build::{DEFAULT_GATEWAY_IMAGE, DEFAULT_READER_IMAGE};
use flightdeck_runtime::LogArgs;

/// The Flightdeck operator: turns InferenceStacks into gateways and model
/// servers.
#[derive(Debug, Parser)]
#[command(name = "flightdeck-operator", version)]
pub struct Cli {
    /// watches.yaml naming the group/version/kind (and optional label
    /// selector) to reconcile. Default: the file built into the binary
    /// (flightdeck.dev/v1alpha1 InferenceStack, every stack).
    #[arg(long, env = "FLIGHTDECK_WATCHES")]
    pub watches: Option<PathBuf>,

    /// Gateway container image.
    #[arg(long, env = "FLIGHTDECK_GATEWAY_IMAGE", default_value = DEFAULT_GATEWAY_IMAGE)]
    pub gateway_image: String,

    /// Reader sidecar container image.
    #[arg(long, env = "FLIGHTDECK_READER_IMAGE", default_value = DEFAULT_READER_IMAGE)]
    pub reader_image: String,

    /// Address of /metrics, /healthz, /readyz and /log-level.
    #[arg(long, env = "FLIGHTDECK_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    pub admin_listen: String,

    /// Run without leader election (one replica only: local development).
    #[arg(long, env = "FLIGHTDECK_NO_LEADER_ELECTION")]
    pub no_leader_election: bool,

    /// Namespace of the leader-election Lease. Default: POD_NAMESPACE, then
    /// the pod's service-account namespace, then the kubeconfig's namespace.
    #[arg(long, env = "FLIGHTDECK_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// Name of the leader-election Lease. Replicas sharing it elect one leader.
    #[arg(
        long,
        env = "FLIGHTDECK_LEASE_NAME",
        default_value = "flightdeck-operator"
    )]
    pub lease_name: String,

    /// How long the Lease holds without renewal (e.g. 15s).
    #[arg(long, env = "FLIGHTDECK_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: std::time::Duration,

    #[command(flatten)]
    pub log: LogArgs,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_name_this_release() {
        let cli = Cli::try_parse_from(["flightdeck-operator"]).expect("defaults parse");
        assert!(cli.gateway_image.ends_with(env!("CARGO_PKG_VERSION")));
        assert_eq!(cli.lease_duration, std::time::Duration::from_secs(15));
        assert!(!cli.no_leader_election);
    }
}
