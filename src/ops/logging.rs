//! Structured logging set-up, honouring Lambda's advanced logging controls.
//!
//! `AWS_LAMBDA_LOG_FORMAT` = `JSON` (default) or `Text`; `AWS_LAMBDA_LOG_LEVEL` = `TRACE`, `DEBUG`,
//! `INFO` (default), `WARN`, `ERROR` or `FATAL`. Outside Lambda, `RUST_LOG` may give per-target
//! directives such as `agent_router=debug,warn`. Raw query text is logged only at DEBUG.
//!
//! [`LEVEL_ENV`] (`ROUTER_LOG_LEVEL`, same values) wins over `AWS_LAMBDA_LOG_LEVEL`: the SAM
//! template keeps Lambda's own level at TRACE, because Lambda would drop the EMF metric lines (which
//! it reads as INFO) at WARN or above, and sets the router's level here instead.

pub use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The router's own log level; when set (not blank) it wins over `AWS_LAMBDA_LOG_LEVEL`.
pub const LEVEL_ENV: &str = "ROUTER_LOG_LEVEL";

/// The level to filter at: [`LEVEL_ENV`] when set, else `AWS_LAMBDA_LOG_LEVEL`.
pub fn log_level(env: impl Fn(&str) -> Option<String>) -> Option<String> {
    env(LEVEL_ENV)
        .filter(|v| !v.trim().is_empty())
        .or_else(|| env("AWS_LAMBDA_LOG_LEVEL"))
}

/// Installs the global subscriber. Call once, before anything logs; later calls do nothing.
/// `default` is the level when neither `AWS_LAMBDA_LOG_LEVEL` nor `RUST_LOG` says otherwise:
/// INFO for the server, WARN for one-shot commands, whose output is their answer.
pub fn init(default: LevelFilter) {
    let filter = log_filter(
        log_level(|k| std::env::var(k).ok()).as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
        default,
    );
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    let registry = tracing_subscriber::registry().with(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = if text {
        registry.with(fmt.with_target(false)).try_init()
    } else {
        registry
            .with(
                fmt.json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            )
            .try_init()
    };
}

/// The filter for a Lambda log level and/or `RUST_LOG` directives; Lambda's level wins, and
/// `default` applies when neither is given (or `RUST_LOG` does not parse).
pub fn log_filter(
    lambda_level: Option<&str>,
    rust_log: Option<&str>,
    default: LevelFilter,
) -> Targets {
    if let Some(level) = lambda_level {
        let level = match level.to_ascii_uppercase().as_str() {
            "TRACE" => LevelFilter::TRACE,
            "DEBUG" => LevelFilter::DEBUG,
            "WARN" => LevelFilter::WARN,
            "ERROR" | "FATAL" => LevelFilter::ERROR,
            _ => LevelFilter::INFO,
        };
        return Targets::new().with_default(level);
    }
    rust_log
        .and_then(|s| s.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(default))
}
