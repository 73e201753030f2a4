//! The reader's Prometheus metrics.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::error::ReaderError;

pub struct Metrics {
    registry: Registry,
    pub in_flight: IntGauge,
    pub capacity: IntGauge,
    pub engine_ready: IntGauge,
    pub gateway_connected: IntGaugeVec,
    pub requests: IntCounterVec,
    pub lease_errors: IntCounterVec,
    pub engine_first_byte: Histogram,
}

impl Metrics {
    pub fn new() -> Result<Self, ReaderError> {
        let registry = Registry::new();
        let in_flight = IntGauge::new(
            "flightdeck_reader_in_flight",
            "Requests running on the engine.",
        )?;
        let capacity = IntGauge::new(
            "flightdeck_reader_capacity",
            "Requests the reader runs at once.",
        )?;
        let engine_ready = IntGauge::new(
            "flightdeck_reader_engine_ready",
            "1 when the engine answers its health check.",
        )?;
        let gateway_connected = IntGaugeVec::new(
            Opts::new(
                "flightdeck_reader_gateway_connected",
                "1 while the last pull from the gateway succeeded.",
            ),
            &["gateway"],
        )?;
        let requests = IntCounterVec::new(
            Opts::new(
                "flightdeck_reader_requests_total",
                "Leased requests by outcome.",
            ),
            &["outcome"],
        )?;
        let lease_errors = IntCounterVec::new(
            Opts::new(
                "flightdeck_reader_lease_errors_total",
                "Failed pulls by gateway.",
            ),
            &["gateway"],
        )?;
        let engine_first_byte = Histogram::with_opts(
            HistogramOpts::new(
                "flightdeck_reader_engine_first_byte_seconds",
                "Time from lease to the engine's response head.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
        )?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(capacity.clone()))?;
        registry.register(Box::new(engine_ready.clone()))?;
        registry.register(Box::new(gateway_connected.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(lease_errors.clone()))?;
        registry.register(Box::new(engine_first_byte.clone()))?;
        Ok(Self {
            registry,
            in_flight,
            capacity,
            engine_ready,
            gateway_connected,
            requests,
            lease_errors,
            engine_first_byte,
        })
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
