//! flightdeck-gateway library (being built).
