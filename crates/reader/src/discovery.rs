//! Finds the gateways: a fixed list, or every address of the gateways'
//! headless Service, re-resolved so scaled or replaced gateway pods are
//! picked up (and gone ones dropped).

use std::sync::Arc;
use std::time::Duration;

use crate::gateways::Gateways;

pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(5);

/// Normalizes `--gateway-urls` entries (no trailing slash, default scheme).
pub fn normalize_urls(urls: &[String]) -> Vec<String> {
    urls.iter()
        .map(|url| url.trim().trim_end_matches('/'))
        .filter(|url| !url.is_empty())
        .map(|url| {
            if url.contains("://") {
                url.to_string()
            } else {
                format!("http://{url}")
            }
        })
        .collect()
}

/// Resolves `host:port` to one base URL per address.
pub async fn resolve(service: &str) -> std::io::Result<Vec<String>> {
    let mut bases: Vec<String> = tokio::net::lookup_host(service)
        .await?
        .map(|addr| format!("http://{addr}"))
        .collect();
    bases.sort();
    bases.dedup();
    Ok(bases)
}

/// Keeps `gateways` in step with the Service's addresses.
pub async fn watch_service(service: String, gateways: Arc<Gateways>) {
    loop {
        match resolve(&service).await {
            Ok(bases) if !bases.is_empty() => gateways.set(&bases),
            Ok(_) => tracing::warn!(%service, "gateway service resolves to no address"),
            // Keep the last known gateways: a DNS hiccup is not a gateway outage.
            Err(error) => tracing::warn!(%service, %error, "resolving the gateway service failed"),
        }
        tokio::time::sleep(RESOLVE_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized() {
        let urls = normalize_urls(&["http://a:8081/".into(), " b:8081".into(), "".into()]);
        assert_eq!(urls, vec!["http://a:8081", "http://b:8081"]);
    }

    #[tokio::test]
    async fn loopback_resolves_to_an_address() {
        let bases = resolve("127.0.0.1:8081").await.expect("resolve");
        assert_eq!(bases, vec!["http://127.0.0.1:8081"]);
    }
}
