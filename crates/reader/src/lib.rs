//! flightdeck-reader library (being built).
