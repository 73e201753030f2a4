//! `watches.yaml`: which custom resources an operator process reconciles.
//!
//! The one parser of the file: the operator reads it at start (what to
//! watch), and `flightdeck bundle` reads it to describe the watched CRD
//! version in the ClusterServiceVersion, so the two can never disagree about
//! what the file means.
//!
//! One operator major version reconciles one CRD version. The file names the
//! group/version/kind (which must be the one this build serves: a mismatch is
//! refused rather than reconciled with the wrong types) and an optional label
//! selector, so two operator majors can run side by side on disjoint sets of
//! stacks.
//!
//! ```yaml
//! - group: flightdeck.dev
//!   version: v1alpha1
//!   kind: InferenceStack
//!   labelSelector: "flightdeck.dev/operator-major in (1)"   # optional
//!   reconcilePeriod: 10m                                      # optional
//!   maxConcurrentReconciles: 4                                # optional
//! ```

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::v1alpha1::InferenceStack;

/// Default drift-correction period when watches.yaml names none.
pub const DEFAULT_RECONCILE_PERIOD: Duration = Duration::from_secs(600);
/// Default concurrency when watches.yaml names none.
pub const DEFAULT_MAX_CONCURRENT_RECONCILES: u16 = 4;

/// A group/version/kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    /// The group/version/kind of a Rust type.
    pub fn of<K: kube::Resource<DynamicType = ()>>() -> Self {
        Self {
            group: K::group(&()).into_owned(),
            version: K::version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
        }
    }
}

impl fmt::Display for Gvk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} {}", self.group, self.version, self.kind)
    }
}

/// The kind this build's types serve: the only one a watches.yaml may name.
pub fn served() -> Gvk {
    Gvk::of::<InferenceStack>()
}

/// What an operator process watches, checked against what the build serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    /// The watched kind (always the served one).
    pub gvk: Gvk,
    /// Kubernetes label selector syntax; `None` watches every object.
    pub label_selector: Option<String>,
    /// How often an unchanged, healthy stack is reconciled anyway (drift).
    pub reconcile_period: Duration,
    /// Stacks reconciled at once (never the same stack twice at once).
    pub max_concurrent_reconciles: u16,
}

/// watches.yaml could not be read, or does not say what this build serves.
#[derive(Debug, thiserror::Error)]
pub enum WatchesError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid watches.yaml for this build.
    #[error("{origin}: {source}")]
    Invalid {
        /// The file's path, or where the text came from.
        origin: String,
        #[source]
        source: InvalidWatches,
    },
}

/// What is wrong with a watches.yaml text.
#[derive(Debug, thiserror::Error)]
pub enum InvalidWatches {
    /// Not YAML, not a list, or an entry with a missing or unknown field.
    #[error("not a list of watches: {0}")]
    Syntax(#[source] serde_yaml::Error),
    /// One operator process reconciles exactly one kind.
    #[error(
        "expected exactly one watch (one operator process reconciles one kind), found {found}"
    )]
    Count { found: usize },
    /// The entry names a kind (or version) this build does not serve.
    #[error(
        "watches {watched}, but this operator binary serves {served}; \
         run the operator major version that serves it"
    )]
    NotServed {
        // Boxed: the other variants are small, and a Result carries the
        // largest.
        watched: Box<Gvk>,
        served: Box<Gvk>,
    },
    /// `reconcilePeriod` is not a positive duration.
    #[error("reconcilePeriod: {0}")]
    ReconcilePeriod(#[source] DurationError),
    /// `maxConcurrentReconciles: 0` would never reconcile anything.
    #[error("maxConcurrentReconciles must be at least 1")]
    NoConcurrency,
}

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

impl Watch {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path, served: &Gvk) -> Result<Self, WatchesError> {
        let text = std::fs::read_to_string(path).map_err(|source| WatchesError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, served).map_err(|source| WatchesError::Invalid {
            origin: path.display().to_string(),
            source,
        })
    }

    /// Parses watches.yaml text: exactly one entry, for the served kind.
    pub fn parse(text: &str, served: &Gvk) -> Result<Self, InvalidWatches> {
        let entries: Vec<WatchEntry> =
            serde_yaml::from_str(text).map_err(InvalidWatches::Syntax)?;
        let [entry] =
            <[WatchEntry; 1]>::try_from(entries).map_err(|entries| InvalidWatches::Count {
                found: entries.len(),
            })?;
        let watched = Gvk {
            group: entry.group,
            version: entry.version,
            kind: entry.kind,
        };
        if watched != *served {
            return Err(InvalidWatches::NotServed {
                watched: Box::new(watched),
                served: Box::new(served.clone()),
            });
        }
        let label_selector = entry
            .label_selector
            .map(|selector| selector.trim().to_owned())
            // Syntax is checked by the API server: the operator lists once
            // with it at start and refuses to run if the server rejects it.
            .filter(|selector| !selector.is_empty());
        let reconcile_period = match entry.reconcile_period {
            Some(text) => parse_duration(&text).map_err(InvalidWatches::ReconcilePeriod)?,
            None => DEFAULT_RECONCILE_PERIOD,
        };
        let max_concurrent_reconciles = match entry.max_concurrent_reconciles {
            Some(0) => return Err(InvalidWatches::NoConcurrency),
            Some(n) => n,
            None => DEFAULT_MAX_CONCURRENT_RECONCILES,
        };
        Ok(Watch {
            gvk: watched,
            label_selector,
            reconcile_period,
            max_concurrent_reconciles,
        })
    }
}

/// A duration that [`parse_duration`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not `<digits><unit>` repeated, with units ms, s, m or h.
    #[error("{text:?} is not a duration (e.g. 30s, 10m, 1h30m)")]
    Malformed { text: String },
    /// Zero: a period must be positive.
    #[error("{text:?} is zero; the duration must be positive")]
    Zero { text: String },
}

/// Parses durations like `30s`, `10m`, `1h`, `1h30m`, `500ms` (positive).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError::Malformed {
        text: text.to_owned(),
    };
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
        return Err(DurationError::Zero {
            text: text.to_owned(),
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_kind_is_the_crate_s_inference_stack() {
        assert_eq!(
            served().to_string(),
            "flightdeck.dev/v1alpha1 InferenceStack"
        );
    }

    #[test]
    fn the_repository_watches_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../watches.yaml");
        let watch = Watch::load(&path, &served()).expect("watches.yaml is valid");
        assert_eq!(watch.gvk, served());
    }

    #[test]
    fn reads_a_full_entry() {
        let watch = Watch::parse(
            "- group: flightdeck.dev\n  version: v1alpha1\n  kind: InferenceStack\n  \
             labelSelector: 'flightdeck.dev/operator-major in (1)'\n  reconcilePeriod: 1h30m\n  \
             maxConcurrentReconciles: 8\n",
            &served(),
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
            "- {group: flightdeck.dev, version: v1alpha1, kind: InferenceStack, labelSelector: ' '}",
            &served(),
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
    fn refuses_a_version_this_build_does_not_serve() {
        let err = Watch::parse(
            "- {group: flightdeck.dev, version: v1beta1, kind: InferenceStack}",
            &served(),
        )
        .expect_err("wrong version");
        assert!(
            matches!(&err, InvalidWatches::NotServed { watched, .. } if watched.version == "v1beta1"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("serves flightdeck.dev/v1alpha1 InferenceStack"),
            "{err}"
        );
    }

    #[test]
    fn refuses_several_watches_unknown_fields_and_a_mapping() {
        let two = "- {group: flightdeck.dev, version: v1alpha1, kind: InferenceStack}\n\
                   - {group: flightdeck.dev, version: v1alpha1, kind: InferenceStack}";
        assert!(matches!(
            Watch::parse(two, &served()),
            Err(InvalidWatches::Count { found: 2 })
        ));
        assert!(matches!(
            Watch::parse("[]", &served()),
            Err(InvalidWatches::Count { found: 0 })
        ));
        let unknown = "- {group: flightdeck.dev, version: v1alpha1, kind: InferenceStack, role: x}";
        let err = Watch::parse(unknown, &served()).expect_err("unknown field");
        assert!(matches!(err, InvalidWatches::Syntax(_)), "{err:?}");
        assert!(err.to_string().contains("role"), "{err}");
        let mapping = "{group: flightdeck.dev, version: v1alpha1, kind: InferenceStack}";
        assert!(matches!(
            Watch::parse(mapping, &served()),
            Err(InvalidWatches::Syntax(_))
        ));
    }

    #[test]
    fn refuses_a_bad_period_or_no_concurrency() {
        let period = "- {group: flightdeck.dev, version: v1alpha1, kind: InferenceStack, reconcilePeriod: 5d}";
        assert!(matches!(
            Watch::parse(period, &served()),
            Err(InvalidWatches::ReconcilePeriod(
                DurationError::Malformed { .. }
            ))
        ));
        let zero = "- {group: flightdeck.dev, version: v1alpha1, kind: InferenceStack, maxConcurrentReconciles: 0}";
        assert!(matches!(
            Watch::parse(zero, &served()),
            Err(InvalidWatches::NoConcurrency)
        ));
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = Watch::load(Path::new("/nonexistent/watches.yaml"), &served())
            .expect_err("missing file");
        assert!(matches!(err, WatchesError::Read { .. }));
        assert!(
            err.to_string().contains("/nonexistent/watches.yaml"),
            "{err}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(matches!(
            parse_duration("10"),
            Err(DurationError::Malformed { .. })
        ));
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("").is_err());
        assert!(matches!(
            parse_duration("0s"),
            Err(DurationError::Zero { .. })
        ));
        assert!(parse_duration("5d").is_err());
    }
}
