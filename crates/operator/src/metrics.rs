//! Prometheus metrics of the reconcile loop, served on the admin port.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::error::{Category, StartError};

/// Every metric the operator exports, registered in its own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reconcile runs, by outcome (`success` / `failure`).
    pub reconciles: IntCounterVec,
    /// Failed reconciles by error category.
    pub failures: IntCounterVec,
    /// Wall time of one reconcile.
    pub reconcile_duration: Histogram,
    /// Stacks this process currently watches (matching its selector).
    pub stacks_managed: IntGauge,
    /// Writes this process made to the API server that changed (or could
    /// change) stored state, by verb and kind: status patches, deletes,
    /// token creation. Server-side applies are counted under `apply`; the API
    /// server turns an unchanged apply into a no-op.
    pub writes: IntCounterVec,
    /// 1 while this replica holds the leader lease.
    pub leader: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, StartError> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "flightdeck_operator_reconciles_total",
                "Reconcile runs, by result",
            ),
            &["result"],
        )
        .map_err(|source| StartError::Metrics {
            name: "reconciles_total",
            source,
        })?;
        let failures = IntCounterVec::new(
            Opts::new(
                "flightdeck_operator_reconcile_failures_total",
                "Failed reconciles, by error category",
            ),
            &["category"],
        )
        .map_err(|source| StartError::Metrics {
            name: "reconcile_failures_total",
            source,
        })?;
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new(
                "flightdeck_operator_reconcile_duration_seconds",
                "Wall time of one reconcile",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )
        .map_err(|source| StartError::Metrics {
            name: "reconcile_duration_seconds",
            source,
        })?;
        let stacks_managed = IntGauge::new(
            "flightdeck_operator_stacks_managed",
            "InferenceStacks watched by this operator process",
        )
        .map_err(|source| StartError::Metrics {
            name: "stacks_managed",
            source,
        })?;
        let writes = IntCounterVec::new(
            Opts::new(
                "flightdeck_operator_api_writes_total",
                "Write requests sent to the API server, by verb and kind",
            ),
            &["verb", "kind"],
        )
        .map_err(|source| StartError::Metrics {
            name: "api_writes_total",
            source,
        })?;
        let leader = IntGauge::new(
            "flightdeck_operator_leader",
            "1 while this replica holds the leader lease",
        )
        .map_err(|source| StartError::Metrics {
            name: "leader",
            source,
        })?;
        let metrics = Metrics {
            registry,
            reconciles,
            failures,
            reconcile_duration,
            stacks_managed,
            writes,
            leader,
        };
        metrics.register_all()?;
        for result in ["success", "failure"] {
            metrics.reconciles.with_label_values(&[result]);
        }
        for category in Category::ALL {
            metrics.failures.with_label_values(&[category.as_str()]);
        }
        Ok(metrics)
    }

    fn register_all(&self) -> Result<(), StartError> {
        let collectors: [(&'static str, Box<dyn prometheus::core::Collector>); 6] = [
            ("reconciles_total", Box::new(self.reconciles.clone())),
            ("reconcile_failures_total", Box::new(self.failures.clone())),
            (
                "reconcile_duration_seconds",
                Box::new(self.reconcile_duration.clone()),
            ),
            ("stacks_managed", Box::new(self.stacks_managed.clone())),
            ("api_writes_total", Box::new(self.writes.clone())),
            ("leader", Box::new(self.leader.clone())),
        ];
        for (name, collector) in collectors {
            self.registry
                .register(collector)
                .map_err(|source| StartError::Metrics { name, source })?;
        }
        Ok(())
    }

    /// Counts one write request.
    pub fn count_write(&self, verb: &str, kind: &str) {
        self.writes.with_label_values(&[verb, kind]).inc();
    }

    /// Counts one reconcile's outcome.
    pub fn count_reconcile(&self, outcome: Result<(), Category>) {
        match outcome {
            Ok(()) => self.reconciles.with_label_values(&["success"]).inc(),
            Err(category) => {
                self.reconciles.with_label_values(&["failure"]).inc();
                self.failures.with_label_values(&[category.as_str()]).inc();
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which
        // the fixed set above cannot produce; an empty page is the fallback.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            buffer.clear();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_every_metric_with_zeroed_categories() {
        let metrics = Metrics::new().expect("metrics register");
        metrics.count_reconcile(Err(Category::Transient));
        metrics.count_reconcile(Ok(()));
        metrics.count_write("patch", "InferenceStack/status");
        metrics.reconcile_duration.observe(0.02);
        let text = metrics.render();
        assert!(text.contains("flightdeck_operator_reconciles_total{result=\"success\"} 1"));
        assert!(
            text.contains("flightdeck_operator_reconcile_failures_total{category=\"transient\"} 1")
        );
        assert!(text
            .contains("flightdeck_operator_reconcile_failures_total{category=\"invalid_spec\"} 0"));
        assert!(text.contains("flightdeck_operator_reconcile_duration_seconds_count 1"));
        assert!(text.contains("flightdeck_operator_stacks_managed 0"));
        assert!(text.contains(
            "flightdeck_operator_api_writes_total{kind=\"InferenceStack/status\",verb=\"patch\"} 1"
        ));
    }
}
