//! `watches.yaml`: which custom resources this operator process reconciles.
//!
//! One operator major version reconciles one CRD version. The file names the
//! group/version/kind (which must be the one this binary serves: a mismatch is
//! refused at start rather than reconciled with the wrong types) and an
//! optional label selector, so two operator majors can run side by side on
//! disjoint sets of stacks.
//!
//! ```yaml
//! - group: flightdeck.dev
//!   version: v1alpha1
//!   kind: InferenceStack
//!   labelSelector: "flightdeck.dev/operator-major in (1)"   # optional
//!   reconcilePeriod: 10m                                      # optional
//!   maxConcurrentReconciles: 4                                # optional
//! ```

use std::{path::Path, time::Duration};

use serde::Deserialize;

use crate::error::{Error, Result};

/// One entry of watches.yaml, as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WatchEntry {
    group: String,
    version: String,
    kind: String,
    #[serde(default)]
    label_selector: Option<String>,
    #[serde(default)]
    reconcile_period: Option<String>,
    #[serde(default)]
    max_concurrent_reconciles: Option<u16>,
}

/// What the operator watches, checked against what the binary serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    pub group: String,
    pub version: String,
    pub kind: String,
    /// Kubernetes label selector syntax; `None` watches every object.
    pub label_selector: Option<String>,
    /// How often an unchanged, healthy stack is reconciled anyway (drift).
    pub reconcile_period: Duration,
    /// Stacks reconciled at once (never the same stack twice at once).
    pub max_concurrent_reconciles: u16,
}

/// Default drift-correction period when watches.yaml names none.
pub const DEFAULT_RECONCILE_PERIOD: Duration = Duration::from_secs(600);
/// Default concurrency when watches.yaml names none.
pub const DEFAULT_MAX_CONCURRENT_RECONCILES: u16 = 4;

/// The group/version/kind this binary's types serve.
#[derive(Clone, Copy, Debug)]
pub struct Served<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
}

impl Watch {
    /// Reads and checks `path`.
    pub fn load(path: &Path, served: Served<'_>) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::WatchesRead {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, served).map_err(|message| Error::WatchesInvalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses watches.yaml text: exactly one entry, for the served kind.
    pub fn parse(text: &str, served: Served<'_>) -> Result<Self, String> {
        let entries: Vec<WatchEntry> =
            serde_yaml::from_str(text).map_err(|e| format!("not a list of watches: {e}"))?;
        let [entry] = <[WatchEntry; 1]>::try_from(entries).map_err(|entries| {
            format!(
                "expected exactly one watch (one operator process reconciles one kind), found {}",
                entries.len()
            )
        })?;
        if (
            entry.group.as_str(),
            entry.version.as_str(),
            entry.kind.as_str(),
        ) != (served.group, served.version, served.kind)
        {
            return Err(format!(
                "watches {}/{} {}, but this operator binary serves {}/{} {}; \
                 run the operator major version that serves it",
                entry.group, entry.version, entry.kind, served.group, served.version, served.kind
            ));
        }
        let label_selector = match entry.label_selector {
            Some(selector) if selector.trim().is_empty() => None,
            // Syntax is checked by the API server: the operator lists once
            // with it at start and refuses to run if that fails.
            Some(selector) => Some(selector.trim().to_owned()),
            None => None,
        };
        let reconcile_period = match entry.reconcile_period {
            Some(text) => parse_duration(&text)?,
            None => DEFAULT_RECONCILE_PERIOD,
        };
        let max_concurrent_reconciles = match entry.max_concurrent_reconciles {
            Some(0) => return Err("maxConcurrentReconciles must be at least 1".into()),
            Some(n) => n,
            None => DEFAULT_MAX_CONCURRENT_RECONCILES,
        };
        Ok(Watch {
            group: entry.group,
            version: entry.version,
            kind: entry.kind,
            label_selector,
            reconcile_period,
            max_concurrent_reconciles,
        })
    }
}

/// Parses durations like `30s`, `10m`, `1h`, `1h30m`, `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (e.g. 30s, 10m, 1h30m)");
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(unit);
        rest = &rest[unit_len..];
    }
    if total.is_zero() {
        return Err(format!("{text:?}: the reconcile period must be positive"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVED: Served<'static> = Served {
        group: "flightdeck.dev",
        version: "v1alpha1",
        kind: "InferenceStack",
    };

    #[test]
    fn reads_a_full_entry() {
        let watch = Watch::parse(
            "- group: flightdeck.dev\n  version: v1alpha1\n  kind: InferenceStack\n  \
             labelSelector: 'flightdeck.dev/operator-major in (1)'\n  reconcilePeriod: 1h30m\n  \
             maxConcurrentReconciles: 8\n",
            SERVED,
        )
        .expect("valid watches");
        assert_eq!(
            watch.label_selector.as_deref(),
            Some("flightdeck.dev/operator-major in (1)")
        );
        assert_eq!(watch.reconcile_period, Duration::from_secs(5400));
        assert_eq!(watch.max_concurrent_reconciles, 8);
    }

    #[test]
    fn defaults_apply_when_optional_fields_are_absent() {
        let watch = Watch::parse(
            "- {group: flightdeck.dev, version: v1alpha1, kind: InferenceStack}",
            SERVED,
        )
        .expect("valid watches");
        assert_eq!(watch.label_selector, None);
        assert_eq!(watch.reconcile_period, DEFAULT_RECONCILE_PERIOD);
        assert_eq!(
            watch.max_concurrent_reconciles,
            DEFAULT_MAX_CONCURRENT_RECONCILES
        );
    }

    #[test]
    fn refuses_a_version_this_binary_does_not_serve() {
        let err = Watch::parse(
            "- {group: flightdeck.dev, version: v1beta1, kind: InferenceStack}",
            SERVED,
        )
        .expect_err("wrong version");
        assert!(err.contains("v1beta1"), "{err}");
        assert!(err.contains("serves flightdeck.dev/v1alpha1"), "{err}");
    }

    #[test]
    fn refuses_several_watches_and_unknown_fields() {
        let two = "- {group: flightdeck.dev, version: v1alpha1, kind: InferenceStack}\n\
                   - {group: flightdeck.dev, version: v1alpha1, kind: InferenceStack}";
        assert!(Watch::parse(two, SERVED)
            .expect_err("two")
            .contains("found 2"));
        let unknown = "- {group: flightdeck.dev, version: v1alpha1, kind: InferenceStack, role: x}";
        assert!(Watch::parse(unknown, SERVED)
            .expect_err("unknown")
            .contains("role"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
