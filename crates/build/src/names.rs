//! Names of the objects the operator creates for stack `S`.
//!
//! Deterministic, so server-side apply updates the same objects on every
//! pass and other tools (the reader's Service lookup, dashboards) can rely
//! on them. `flightdeck_api::v1alpha1::validate` keeps them valid.

use flightdeck_protocol::reader_env::GATEWAY_READER_PORT;

/// Key of the reader token in the `S-reader-token` Secret.
pub const READER_TOKEN_KEY: &str = "token";

/// `S-flightdeck`: the pods' ServiceAccount.
pub fn service_account(stack: &str) -> String {
    format!("{stack}-flightdeck")
}

/// `S-reader-token`: the Secret with the reader token.
pub fn reader_token_secret(stack: &str) -> String {
    format!("{stack}-reader-token")
}

/// `S-gateway`: ConfigMap, Deployment, client Service and Ingress share it.
pub fn gateway(stack: &str) -> String {
    format!("{stack}-gateway")
}

/// `S-gateway-readers`: the headless Service readers resolve to find every
/// gateway pod.
pub fn gateway_readers_service(stack: &str) -> String {
    format!("{stack}-gateway-readers")
}

/// `S-A`: the application's Deployment.
pub fn application_deployment(stack: &str, application: &str) -> String {
    format!("{stack}-{application}")
}

/// `S-A-model-cache`: the application's model cache claim.
pub fn model_cache_claim(stack: &str, application: &str) -> String {
    format!("{stack}-{application}-model-cache")
}

/// `http://S-gateway.N:PORT`: the in-cluster client endpoint for status.
pub fn gateway_endpoint(stack: &str, namespace: &str, port: i32) -> String {
    format!("http://{}.{namespace}:{port}", gateway(stack))
}

/// `S-gateway-readers.N.svc:8081`: what readers resolve to find the gateway
/// pods (all A/AAAA records of the headless Service).
pub fn gateway_readers_address(stack: &str, namespace: &str) -> String {
    format!(
        "{}.{namespace}.svc:{GATEWAY_READER_PORT}",
        gateway_readers_service(stack)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_names() {
        assert_eq!(service_account("demo"), "demo-flightdeck");
        assert_eq!(reader_token_secret("demo"), "demo-reader-token");
        assert_eq!(gateway("demo"), "demo-gateway");
        assert_eq!(gateway_readers_service("demo"), "demo-gateway-readers");
        assert_eq!(application_deployment("demo", "llama-1b"), "demo-llama-1b");
        assert_eq!(
            model_cache_claim("demo", "llama-1b"),
            "demo-llama-1b-model-cache"
        );
        assert_eq!(
            gateway_endpoint("demo", "llm", 8080),
            "http://demo-gateway.llm:8080"
        );
        assert_eq!(
            gateway_readers_address("demo", "llm"),
            "demo-gateway-readers.llm.svc:8081"
        );
    }
}
