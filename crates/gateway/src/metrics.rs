//! The gateway's Prometheus metrics. `queue_depth` per consumer group is the
//! autoscaling signal (readers scale on it); the rest explain latency and loss.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::error::GatewayError;

/// Buckets from 1 ms to ~2 min: queue waits and first-byte times of LLM calls
/// span both ends.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

pub struct Metrics {
    registry: Registry,
    pub queue_depth: IntGaugeVec,
    pub in_flight: IntGaugeVec,
    pub connected_readers: IntGaugeVec,
    pub queue_wait: HistogramVec,
    pub time_to_first_byte: HistogramVec,
    pub requests: IntCounterVec,
    pub queue_full: IntCounterVec,
    pub redeliveries: IntCounterVec,
    pub abandoned: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub prompt_tokens: IntCounterVec,
    pub completion_tokens: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, GatewayError> {
        let registry = Registry::new();
        let gauge =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, GatewayError> {
                let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, GatewayError> {
                let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let histogram = |name: &str, help: &str| -> Result<HistogramVec, GatewayError> {
            let metric = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                &["group"],
            )?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        Ok(Self {
            queue_depth: gauge(
                "flightdeck_gateway_queue_depth",
                "Requests waiting for a reader, per consumer group (the autoscaling signal).",
                &["group"],
            )?,
            in_flight: gauge(
                "flightdeck_gateway_in_flight",
                "Requests leased to a reader and not yet finished, per consumer group.",
                &["group"],
            )?,
            connected_readers: gauge(
                "flightdeck_gateway_connected_readers",
                "Readers that pulled for the group within the last minute.",
                &["group"],
            )?,
            queue_wait: histogram(
                "flightdeck_gateway_queue_wait_seconds",
                "Time from enqueue to the first lease of a request.",
            )?,
            time_to_first_byte: histogram(
                "flightdeck_gateway_time_to_first_byte_seconds",
                "Time from enqueue to the engine's first answer byte reaching the gateway.",
            )?,
            requests: counter(
                "flightdeck_gateway_requests_total",
                "Client requests by route template and status code.",
                &["route", "code"],
            )?,
            queue_full: counter(
                "flightdeck_gateway_queue_full_total",
                "Requests refused with 429 because the group's queue was full.",
                &["group"],
            )?,
            redeliveries: counter(
                "flightdeck_gateway_redeliveries_total",
                "Leased requests put back at the head of their queue because the reader went away.",
                &["group"],
            )?,
            abandoned: counter(
                "flightdeck_gateway_abandoned_total",
                "Requests whose client went away before a reader answered.",
                &["group"],
            )?,
            config_reloads: counter(
                "flightdeck_gateway_config_reloads_total",
                "Configuration loads by result (ok, error).",
                &["result"],
            )?,
            prompt_tokens: counter(
                "flightdeck_gateway_prompt_tokens_total",
                "Prompt tokens by model and consumer group, from the usage object of the engine's \
                 answer: JSON answers, and streams whose client set stream_options.include_usage \
                 (streams without usage add none).",
                &["model", "group"],
            )?,
            completion_tokens: counter(
                "flightdeck_gateway_completion_tokens_total",
                "Completion tokens by model and consumer group: the usage object of the engine's \
                 answer when it carries one; otherwise, for streams, one per generated piece the \
                 engine sent (a non-empty delta content, reasoning or tool-call arguments, or \
                 completions text): exact for engines that stream token by token, an undercount \
                 for engines that send several tokens per event.",
                &["model", "group"],
            )?,
            registry,
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8192);
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
