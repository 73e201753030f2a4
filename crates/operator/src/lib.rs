//! flightdeck-operator library (being built).
