//! Operations: what the router tells its operators. [`metrics`] writes CloudWatch metrics (EMF);
//! [`logging`] sets up structured logs under Lambda's logging controls.

pub mod logging;
pub mod metrics;
