//! The gateway's two Services: `S-gateway` for clients and the headless
//! `S-gateway-readers` through which readers find every gateway pod.

use flightdeck_api::v1alpha1::GatewaySpec;
use flightdeck_protocol::reader_env::GATEWAY_READER_PORT;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::gateway_deployment::{HTTP_PORT_NAME, READERS_PORT_NAME};
use crate::labels::{selector_labels, Component};
use crate::meta::StackRef;
use crate::names;

/// The client Service: `spec.gateway.service.port` to the gateway's `http`
/// port. Only the client API is exposed.
pub fn gateway_service(owner: &StackRef, gateway: &GatewaySpec) -> Service {
    Service {
        metadata: owner.metadata(names::gateway(&owner.name), Component::Gateway, None),
        spec: Some(ServiceSpec {
            type_: Some(gateway.service.type_.as_str().to_owned()),
            selector: Some(selector_labels(&owner.name, Component::Gateway, None)),
            ports: Some(vec![ServicePort {
                name: Some(HTTP_PORT_NAME.to_owned()),
                port: gateway.service.port,
                target_port: Some(IntOrString::String(HTTP_PORT_NAME.to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The headless Service of the reader pull API: its DNS name resolves to
/// every gateway pod (ready, starting or draining), and each reader pulls
/// from all of them.
pub fn gateway_readers_service(owner: &StackRef) -> Service {
    Service {
        metadata: owner.metadata(
            names::gateway_readers_service(&owner.name),
            Component::Gateway,
            None,
        ),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            // Every gateway pod that has an address, ready or not, and above
            // all a stopping one: the endpoints controller drops a
            // terminating pod from a Service's addresses (and so from DNS)
            // at once unless this is set, and readers would then stop
            // pulling the requests still queued in the draining gateway,
            // which would wait for their timeout. A gateway not yet ready
            // refuses or answers no work; readers retry it.
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&owner.name, Component::Gateway, None)),
            ports: Some(vec![ServicePort {
                name: Some(READERS_PORT_NAME.to_owned()),
                port: i32::from(GATEWAY_READER_PORT),
                target_port: Some(IntOrString::String(READERS_PORT_NAME.to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}
