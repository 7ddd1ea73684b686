//! Operations: what the router tells its operators. [`metrics`] writes CloudWatch metrics (EMF);
//! [`logging`] sets up structured logs under Lambda's logging controls; [`decision_log`] writes
//! the opt-in decision log that `keywords` learns from; [`stats`] keeps the local server's
//! `/stats`.

pub mod decision_log;
pub mod logging;
pub mod metrics;
pub mod stats;
