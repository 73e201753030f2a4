//! `S-gateway` Deployment: the OpenAI-compatible gateway.
//!
//! A roll loses nothing: a new pod is ready before an old one stops
//! (`maxSurge: 1`, `maxUnavailable: 0`), and a stopping gateway first keeps
//! serving for [`SHUTDOWN_DELAY_SECONDS`] while failing `/readyz`, so the
//! endpoints controller, kube-proxy and Ingress controllers stop sending it
//! new connections before it stops accepting them; then it drains its
//! accepted requests for `gateway.drainTimeoutSeconds`. The delay is in the
//! gateway process, not a preStop hook: the image is FROM scratch (no
//! `sleep` to exec; the `sleep` hook action needs Kubernetes 1.29), and an
//! HTTP hook would need a sleeping endpoint on a port the Ingress exposes.

use std::collections::BTreeMap;

use flightdeck_api::v1alpha1::ValidStack;
use flightdeck_protocol::gateway_config::GATEWAY_CONFIG_FILE;
use flightdeck_protocol::reader_env::{GATEWAY_CLIENT_PORT, GATEWAY_READER_PORT, READER_TOKEN};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, EnvVar, HTTPGetAction, PodSpec,
    PodTemplateSpec, Probe, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use crate::config_hash::{config_hash, sha256_hex};
use crate::labels::{selector_labels, Component, CONFIG_HASH_ANNOTATION};
use crate::meta::StackRef;
use crate::reader_deployment::{
    no_loss_rolling_update, secret_env, DRAIN_MARGIN_SECONDS, SHUTDOWN_GRACE_SECONDS,
};
use crate::security::{restricted_container, restricted_pod};
use crate::{names, BuildContext, BuildError};

/// Where the gateway ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/flightdeck";
/// Where the client API key Secret is mounted when `apiKeys` is set.
pub const API_KEYS_DIR: &str = "/var/run/flightdeck/api-keys";
/// Name of the client port (Service targetPort, probes).
pub const HTTP_PORT_NAME: &str = "http";
/// Name of the reader pull port.
pub const READERS_PORT_NAME: &str = "readers";
/// Seconds a stopping gateway keeps accepting while `/readyz` fails, before
/// it stops accepting and drains: time for the endpoints controller,
/// kube-proxy (1 s minimum sync) and Ingress controllers to drop the pod.
pub const SHUTDOWN_DELAY_SECONDS: i64 = 5;
/// The gateway's `--shutdown-delay-seconds`: on SIGTERM, fail `/readyz`
/// but keep serving new requests this long, then stop accepting and drain.
pub const SHUTDOWN_DELAY: &str = "FLIGHTDECK_SHUTDOWN_DELAY_SECONDS";

/// The gateway Deployment. Its pod template hash covers `gateway.json`, the
/// gateway spec and the reader token: the gateway's whole configuration.
pub fn gateway_deployment(
    owner: &StackRef,
    stack: &ValidStack,
    config_json: &str,
    ctx: &BuildContext,
) -> Result<Deployment, BuildError> {
    let gateway = &stack.spec().gateway;
    let selector = selector_labels(&owner.name, Component::Gateway, None);
    // Replicas are not configuration: scaling must not roll the pods.
    let mut configuration = gateway.clone();
    configuration.replicas = 0;
    let hash = config_hash(
        "the gateway configuration hash",
        &json!({
            "gatewayJson": config_json,
            "gateway": configuration,
            "readerTokenSha256": sha256_hex(ctx.reader_token.as_bytes()),
        }),
    )?;

    let drain_seconds = i64::from(gateway.effective_drain_timeout_seconds().max(0));
    let mut env = vec![
        env_value(
            "FLIGHTDECK_LISTEN",
            format!("0.0.0.0:{GATEWAY_CLIENT_PORT}"),
        ),
        env_value(
            "FLIGHTDECK_READER_LISTEN",
            format!("0.0.0.0:{GATEWAY_READER_PORT}"),
        ),
        env_value(
            "FLIGHTDECK_GATEWAY_CONFIG",
            format!("{CONFIG_DIR}/{GATEWAY_CONFIG_FILE}"),
        ),
        env_value(SHUTDOWN_DELAY, SHUTDOWN_DELAY_SECONDS.to_string()),
        env_value(SHUTDOWN_GRACE_SECONDS, drain_seconds.to_string()),
        secret_env(
            READER_TOKEN,
            &names::reader_token_secret(&owner.name),
            names::READER_TOKEN_KEY,
        ),
    ];
    let mut mounts = vec![VolumeMount {
        name: "config".to_owned(),
        mount_path: CONFIG_DIR.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    let mut volumes = vec![Volume {
        name: "config".to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: names::gateway(&owner.name),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    if let Some(keys) = &gateway.api_keys {
        env.push(env_value(
            "FLIGHTDECK_API_KEYS_DIR",
            API_KEYS_DIR.to_owned(),
        ));
        mounts.push(VolumeMount {
            name: "api-keys".to_owned(),
            mount_path: API_KEYS_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        volumes.push(Volume {
            name: "api-keys".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(keys.secret_name.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }

    let container = Container {
        name: "gateway".to_owned(),
        image: Some(
            gateway
                .image
                .clone()
                .unwrap_or_else(|| ctx.gateway_image.clone()),
        ),
        ports: Some(vec![
            container_port(HTTP_PORT_NAME, GATEWAY_CLIENT_PORT),
            container_port(READERS_PORT_NAME, GATEWAY_READER_PORT),
        ]),
        env: Some(env),
        volume_mounts: Some(mounts),
        resources: gateway.resources.clone(),
        readiness_probe: Some(http_probe("/readyz", HTTP_PORT_NAME, 5, 3)),
        liveness_probe: Some(http_probe("/healthz", HTTP_PORT_NAME, 10, 3)),
        security_context: Some(restricted_container()),
        ..Container::default()
    };

    Ok(Deployment {
        metadata: owner.metadata(names::gateway(&owner.name), Component::Gateway, None),
        spec: Some(DeploymentSpec {
            replicas: Some(gateway.replicas),
            strategy: Some(no_loss_rolling_update()),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(selector),
                    annotations: Some(BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_owned(), hash)])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    termination_grace_period_seconds: Some(
                        SHUTDOWN_DELAY_SECONDS + drain_seconds + DRAIN_MARGIN_SECONDS,
                    ),
                    volumes: Some(volumes),
                    service_account_name: Some(names::service_account(&owner.name)),
                    automount_service_account_token: Some(false),
                    security_context: Some(restricted_pod()),
                    image_pull_secrets: non_empty(stack.spec().image_pull_secrets.clone()),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

/// A plain `name=value` environment variable.
pub(super) fn env_value(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value),
        value_from: None,
    }
}

/// A TCP container port (server-side apply needs the protocol spelled out).
pub(super) fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(port),
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

/// An HTTP GET probe on a named port.
pub(super) fn http_probe(
    path: &str,
    port: &str,
    period_seconds: i32,
    failure_threshold: i32,
) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(port.to_owned()),
            scheme: Some("HTTP".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(3),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// `None` for an empty list, so applied objects carry no empty fields.
pub(super) fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    if items.is_empty() {
        None
    } else {
        Some(items)
    }
}
