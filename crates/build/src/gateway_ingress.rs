//! `S-gateway` Ingress, when `spec.gateway.ingress` is set. It routes to the
//! client Service only; the reader pull API is never exposed.

use flightdeck_api::v1alpha1::GatewaySpec;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use crate::labels::Component;
use crate::meta::StackRef;
use crate::names;

/// The Ingress for the client API, or `None` without an ingress spec.
pub fn gateway_ingress(owner: &StackRef, gateway: &GatewaySpec) -> Option<Ingress> {
    let ingress = gateway.ingress.as_ref()?;
    let mut metadata = owner.metadata(names::gateway(&owner.name), Component::Gateway, None);
    if !ingress.annotations.is_empty() {
        metadata.annotations = Some(ingress.annotations.clone());
    }
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: ingress.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(ingress.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".to_owned()),
                        path_type: "Prefix".to_owned(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: names::gateway(&owner.name),
                                port: Some(ServiceBackendPort {
                                    number: Some(gateway.service.port),
                                    name: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            tls: ingress.tls.as_ref().map(|tls| {
                vec![IngressTLS {
                    hosts: Some(vec![ingress.host.clone()]),
                    secret_name: Some(tls.secret_name.clone()),
                }]
            }),
            default_backend: None,
        }),
        status: None,
    })
}
