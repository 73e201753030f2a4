//! What the reader reports on its admin port (`flightdeck_runtime::admin`
//! serves it): ready when the engine answers, at least one gateway took our
//! pulls, and we are not draining.

use std::sync::Arc;

use flightdeck_runtime::admin::Health;

use crate::Context;

pub struct ReaderHealth(pub Arc<Context>);

impl Health for ReaderHealth {
    fn readiness(&self) -> Result<(), String> {
        let ctx = &self.0;
        if ctx.is_ready() {
            Ok(())
        } else if ctx.is_draining() {
            Err("draining".into())
        } else if !ctx.engine.is_ready() {
            Err("engine not ready".into())
        } else {
            Err("no gateway connected".into())
        }
    }

    fn metrics(&self) -> Vec<u8> {
        self.0.metrics.render()
    }
}
