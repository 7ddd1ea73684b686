//! Process configuration read from the environment, and loading of the catalogue it names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ops::metrics::{
    DEFAULT_NAMESPACE, MetricsConfig, NAMESPACE_ENV, SWITCH_ENV, valid_namespace,
};

use crate::aws::BedrockSettings;
use crate::routing::{Catalogue, CatalogueError, LlmSettings};

/// Environment variable naming a routes file to use instead of the embedded one.
pub const CONFIG_ENV: &str = "ROUTER_CONFIG";
/// Prefix of the per-agent target overrides, e.g. `ROUTER_TARGET_COST`.
pub const TARGET_ENV_PREFIX: &str = "ROUTER_TARGET_";

/// Where the catalogue came from, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutesSource {
    /// The compiled-in `prompts/routes.toml`.
    Embedded,
    /// A file given by `--config` or `ROUTER_CONFIG`.
    File(PathBuf),
}

impl std::fmt::Display for RoutesSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoutesSource::Embedded => f.write_str("embedded default"),
            RoutesSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Picks the routes file: `--config` first, then `ROUTER_CONFIG`, else the embedded default.
pub fn routes_source(flag: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> RoutesSource {
    match flag {
        Some(p) => RoutesSource::File(p.to_owned()),
        None => match env(CONFIG_ENV).filter(|v| !v.trim().is_empty()) {
            Some(p) => RoutesSource::File(PathBuf::from(p)),
            None => RoutesSource::Embedded,
        },
    }
}

/// The environment variable that overrides `agent`'s target: upper-cased, `-` becomes `_`.
pub fn target_env_name(agent: &str) -> String {
    format!(
        "{TARGET_ENV_PREFIX}{}",
        agent.to_ascii_uppercase().replace('-', "_")
    )
}

/// Loads and validates the catalogue from `source`, then applies `ROUTER_TARGET_<AGENT>` overrides
/// looked up through `env` (an empty value makes the agent route-only).
pub fn load_catalogue(
    source: &RoutesSource,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Catalogue, CatalogueError> {
    let mut catalogue = match source {
        RoutesSource::Embedded => Catalogue::embedded_default()?,
        RoutesSource::File(p) => Catalogue::from_path(p)?,
    };
    let overrides = catalogue
        .agents()
        .iter()
        .filter_map(|a| env(&target_env_name(&a.name)).map(|t| (a.name.clone(), t)))
        .collect();
    catalogue.override_targets(&overrides);
    Ok(catalogue)
}

/// The `ROUTER_TARGET_*` variables in `targets` that name no agent of `catalogue` (a typo, or an
/// agent renamed in the routes file): start-up warns about each, since it retargets nothing.
pub fn unknown_target_vars(
    catalogue: &Catalogue,
    targets: &BTreeMap<String, String>,
) -> Vec<String> {
    let known: Vec<String> = catalogue
        .agents()
        .iter()
        .map(|a| target_env_name(&a.name))
        .collect();
    targets
        .keys()
        .filter(|var| !known.contains(var))
        .cloned()
        .collect()
}

/// Everything the process reads from its environment, read once at start-up and passed to what
/// needs it. A malformed value fails the start with a [`SettingsError`] naming the variable.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `ROUTER_CONFIG`: the routes file, unless `--config` overrides it.
    pub routes: RoutesSource,
    /// Every `ROUTER_TARGET_*` variable, by name.
    pub targets: BTreeMap<String, String>,
    /// The LLM tier.
    pub llm: LlmConfig,
    /// `POST /query`'s dispatch.
    pub dispatch: DispatchConfig,
    /// CloudWatch metrics (`ROUTER_METRICS`, `ROUTER_METRICS_NAMESPACE`).
    pub metrics: MetricsConfig,
    /// Conversations: the session store and policy (`ROUTER_SESSION_*`).
    pub sessions: SessionConfig,
    /// Share of fast and session decisions that get a second opinion from the LLM
    /// (`ROUTER_SHADOW_RATE`, 0 to 1, default 0).
    pub shadow_rate: f64,
    /// Most second opinions a second per process (`ROUTER_SHADOW_MAX_PER_SEC`, default 10).
    pub shadow_max_per_sec: f64,
    /// `ROUTER_DECISION_LOG`: one JSON line per decision on stdout (default off).
    pub decision_log: bool,
    /// `ROUTER_LOG_LEVEL`, checked here (logging read it already, to report start-up).
    pub log_level: Option<String>,
    /// Where AWS region and credentials come from (see [`aws_configured`]), `None` if nowhere.
    pub aws: Option<&'static str>,
    /// Whether the process runs under the Lambda runtime (`AWS_LAMBDA_RUNTIME_API` set).
    pub in_lambda: bool,
    /// `PORT`, for the local server.
    pub port: Option<u16>,
    /// `ROUTER_LAMBDA_STREAMING` (`off`, `query`, `all`): which Lambda invocations answer with
    /// the streaming response.
    pub lambda_streaming: crate::api::LambdaStreaming,
}

impl Settings {
    /// Reads every setting through `env`; `targets` are the `ROUTER_TARGET_*` variables (which
    /// cannot be looked up by name before the catalogue is known) and `file_exists` answers for
    /// the AWS profile files.
    pub fn read(
        env: impl Fn(&str) -> Option<String>,
        targets: BTreeMap<String, String>,
        file_exists: impl Fn(&Path) -> bool,
    ) -> Result<Settings, SettingsError> {
        let port = parse_var::<u16>(&env, "PORT", "a port number, 0 to 65535", |_| true)?;
        Ok(Settings {
            routes: routes_source(None, &env),
            targets,
            llm: llm_config(&env)?,
            dispatch: dispatch_config(&env)?,
            metrics: metrics_config(&env)?,
            sessions: session_config(&env)?,
            shadow_rate: parse_var::<f64>(
                &env,
                "ROUTER_SHADOW_RATE",
                "a number from 0 to 1",
                |r| (0.0..=1.0).contains(r),
            )?
            .unwrap_or(0.0),
            shadow_max_per_sec: parse_var::<f64>(
                &env,
                "ROUTER_SHADOW_MAX_PER_SEC",
                "a number of calls a second, above 0 and at most 1000",
                |r| *r > 0.0 && *r <= 1000.0,
            )?
            .unwrap_or(10.0),
            decision_log: switch(&env, "ROUTER_DECISION_LOG")? == Switch::On,
            log_level: log_level_setting(&env)?,
            aws: aws_configured(&env, file_exists),
            in_lambda: env("AWS_LAMBDA_RUNTIME_API").is_some_and(|v| !v.trim().is_empty()),
            port,
            lambda_streaming: lambda_streaming(&env)?,
        })
    }

    /// Reads the process's own environment.
    pub fn from_process() -> Result<Settings, SettingsError> {
        let targets = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with(TARGET_ENV_PREFIX))
            .collect();
        Settings::read(process_env, targets, |p| p.is_file())
    }

    /// The catalogue `--config` (else `ROUTER_CONFIG`, else the embedded one) names, with the
    /// `ROUTER_TARGET_*` overrides applied.
    pub fn catalogue(
        &self,
        flag: Option<&Path>,
    ) -> Result<(RoutesSource, Catalogue), CatalogueError> {
        let source = match flag {
            Some(p) => RoutesSource::File(p.to_owned()),
            None => self.routes.clone(),
        };
        let catalogue = load_catalogue(&source, |k| self.targets.get(k).cloned())?;
        Ok((source, catalogue))
    }
}

/// A malformed environment variable; the process refuses to start with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?} is not valid: {expected}")]
pub struct SettingsError {
    /// The variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// What it should be.
    pub expected: &'static str,
}

/// Whether an AWS-backed feature runs (`ROUTER_LLM`, `ROUTER_DISPATCH`): `auto` (default), `on`
/// or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// On in Lambda, and locally when AWS region and credentials are configured.
    Auto,
    /// Always on (calls fail if AWS is not reachable).
    On,
    /// Always off.
    Off,
}

fn switch(
    env: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Switch, SettingsError> {
    match env(name).map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("auto") => Ok(Switch::Auto),
        Some("on" | "true" | "1") => Ok(Switch::On),
        Some("off" | "false" | "0") => Ok(Switch::Off),
        Some(_) => Err(SettingsError {
            name,
            value: env(name).unwrap_or_default(),
            expected: "auto, on or off",
        }),
    }
}

/// How `POST /query` invokes agents, read from `ROUTER_DISPATCH` (`auto`, `on`, `off`),
/// `ROUTER_AGENT_TIMEOUT_MS` (default 25000) and `ROUTER_AGENT_SAFETY_MARGIN_MS` (default 200,
/// kept free of the Lambda deadline to answer the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchConfig {
    /// On, off or auto.
    pub mode: Switch,
    /// Time an agent gets.
    pub timeout: Duration,
    /// Kept free of the caller's remaining time.
    pub safety_margin: Duration,
}

/// Reads the metrics switch `ROUTER_METRICS` (`auto`, the default, means on under Lambda) and
/// the namespace `ROUTER_METRICS_NAMESPACE` (default `AgentRouter`; checked even when metrics are
/// off, so a bad value is found before it matters).
pub fn metrics_config(
    env: impl Fn(&str) -> Option<String>,
) -> Result<MetricsConfig, SettingsError> {
    let namespace = match env(NAMESPACE_ENV).map(|v| v.trim().to_owned()) {
        None => DEFAULT_NAMESPACE.to_owned(),
        Some(ns) if ns.is_empty() => DEFAULT_NAMESPACE.to_owned(),
        Some(ns) if valid_namespace(&ns) => ns,
        Some(ns) => {
            return Err(SettingsError {
                name: NAMESPACE_ENV,
                value: ns,
                expected: "a CloudWatch namespace: 1-255 of A-Z a-z 0-9 . - _ / # :, not AWS/...",
            });
        }
    };
    let in_lambda = env("AWS_LAMBDA_RUNTIME_API").is_some_and(|v| !v.trim().is_empty());
    let on = match switch(&env, SWITCH_ENV)? {
        Switch::Auto => in_lambda,
        Switch::On => true,
        Switch::Off => false,
    };
    let function_version = env("AWS_LAMBDA_FUNCTION_VERSION").filter(|v| !v.trim().is_empty());
    Ok(if on {
        MetricsConfig::On {
            namespace,
            function_version,
        }
    } else {
        MetricsConfig::Off
    })
}

/// Reads `ROUTER_LAMBDA_STREAMING`: `off` (default), `query` or `all`.
pub fn lambda_streaming(
    env: impl Fn(&str) -> Option<String>,
) -> Result<crate::api::LambdaStreaming, SettingsError> {
    const NAME: &str = "ROUTER_LAMBDA_STREAMING";
    let value = env(NAME).unwrap_or_default();
    crate::api::LambdaStreaming::parse(&value).ok_or(SettingsError {
        name: NAME,
        value,
        expected: "off, query (POST /query streamed) or all (every answer streamed)",
    })
}

/// `ROUTER_LOG_LEVEL`: `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR` or `FATAL` (any case), or unset.
/// Logging is set up before the settings are read, so that start-up can report; a value it
/// could not use fails the start here instead of being taken as INFO.
pub fn log_level_setting(
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, SettingsError> {
    const NAME: &str = crate::ops::logging::LEVEL_ENV;
    match env(NAME).map(|v| v.trim().to_ascii_uppercase()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"].contains(&v.as_str()) => {
            Ok(Some(v))
        }
        Some(_) => Err(SettingsError {
            name: NAME,
            value: env(NAME).unwrap_or_default(),
            expected: "TRACE, DEBUG, INFO, WARN, ERROR or FATAL",
        }),
    }
}

/// Where conversations are kept (`ROUTER_SESSION_STORE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStoreKind {
    /// In the process (the default): bounded, expiring; one instance's turns only.
    Memory,
    /// A DynamoDB table shared by every instance (`ROUTER_SESSION_TABLE`).
    DynamoDb {
        /// The table's name.
        table: String,
    },
    /// Sessions off: `session_id` is passed to the agent and not used for routing.
    Off,
}

/// Conversation settings, read from `ROUTER_SESSION_STORE` (`memory`, the default; `dynamodb`,
/// which needs `ROUTER_SESSION_TABLE`; `off`), `ROUTER_SESSION_TTL_SECS` (idle expiry, default
/// 1800), `ROUTER_SESSION_TIMEOUT_MS` (the store's deadline per call, default 50),
/// `ROUTER_SESSION_CONTEXT` (`on` keeps the previous user turn for the LLM; default `off`),
/// `ROUTER_SESSION_CAPACITY` (the in-process store's bound, default 100000) and
/// `ROUTER_SESSION_SWITCH_CONFIDENCE` (the fast path's confidence a decision for another agent
/// needs to leave the conversation's agent, default 0) and `ROUTER_SESSION_CONTEST_EVIDENCE` (the
/// share of a decision's evidence another agent needs to contest a turn the session would
/// otherwise keep, default 0.3); see [`crate::routing::SessionPolicy`].
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// The store.
    pub store: SessionStoreKind,
    /// Idle time after which a conversation is forgotten.
    pub ttl: Duration,
    /// The store's deadline for one call; past it the turn is routed without the session.
    pub timeout: Duration,
    /// Whether the previous user turn is kept, for the LLM's context.
    pub context: bool,
    /// Most sessions the in-process store holds.
    pub capacity: usize,
    /// How conversations hold their agent.
    pub policy: crate::routing::SessionPolicy,
}

/// Reads [`SessionConfig`] from the environment.
pub fn session_config(
    env: impl Fn(&str) -> Option<String>,
) -> Result<SessionConfig, SettingsError> {
    let table = env("ROUTER_SESSION_TABLE")
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let dynamodb =
        env("ROUTER_SESSION_STORE").is_some_and(|v| v.trim().eq_ignore_ascii_case("dynamodb"));
    if table.is_some() && !dynamodb {
        tracing::warn!(
            "ROUTER_SESSION_TABLE is set but ROUTER_SESSION_STORE is not dynamodb: the table is not used"
        );
    }
    let store = match env("ROUTER_SESSION_STORE")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "memory") => SessionStoreKind::Memory,
        Some("off") => SessionStoreKind::Off,
        Some("dynamodb") => match table {
            Some(table) => SessionStoreKind::DynamoDb { table },
            None => {
                return Err(SettingsError {
                    name: "ROUTER_SESSION_TABLE",
                    value: String::new(),
                    expected: "the DynamoDB table's name (ROUTER_SESSION_STORE=dynamodb needs it)",
                });
            }
        },
        Some(_) => {
            return Err(SettingsError {
                name: "ROUTER_SESSION_STORE",
                value: env("ROUTER_SESSION_STORE").unwrap_or_default(),
                expected: "memory, dynamodb or off",
            });
        }
    };
    let ttl = parse_var::<u64>(
        &env,
        "ROUTER_SESSION_TTL_SECS",
        "seconds, 60 to 604800",
        |s| (60..=604_800).contains(s),
    )?
    .map_or(Duration::from_secs(1800), Duration::from_secs);
    let timeout = parse_var::<u64>(
        &env,
        "ROUTER_SESSION_TIMEOUT_MS",
        "milliseconds, 1 to 5000",
        |ms| (1..=5000).contains(ms),
    )?
    .map_or(Duration::from_millis(50), Duration::from_millis);
    let context = match switch(&env, "ROUTER_SESSION_CONTEXT")? {
        Switch::On => true,
        Switch::Off | Switch::Auto => false,
    };
    let capacity = parse_var::<usize>(
        &env,
        "ROUTER_SESSION_CAPACITY",
        "a number of sessions, 1 to 10000000",
        |n| (1..=10_000_000).contains(n),
    )?
    .unwrap_or(100_000);
    let mut policy = crate::routing::SessionPolicy::default();
    if let Some(c) = parse_var::<f32>(
        &env,
        "ROUTER_SESSION_SWITCH_CONFIDENCE",
        "a number from 0 to 1",
        |c| (0.0..=1.0).contains(c),
    )? {
        policy.switch_confidence = c;
    }
    if let Some(e) = parse_var::<f32>(
        &env,
        "ROUTER_SESSION_CONTEST_EVIDENCE",
        "a number from 0 to 10",
        |e| (0.0..=10.0).contains(e),
    )? {
        policy.contest_evidence = e;
    }
    Ok(SessionConfig {
        store,
        ttl,
        timeout,
        context,
        capacity,
        policy,
    })
}

/// Reads [`DispatchConfig`] from the environment.
pub fn dispatch_config(
    env: impl Fn(&str) -> Option<String>,
) -> Result<DispatchConfig, SettingsError> {
    let mode = switch(&env, "ROUTER_DISPATCH")?;
    let timeout = parse_var::<u64>(
        &env,
        "ROUTER_AGENT_TIMEOUT_MS",
        "milliseconds, 1 to 900000",
        |ms| (1..=900_000).contains(ms),
    )?
    .map_or(
        crate::dispatch::DEFAULT_AGENT_TIMEOUT,
        Duration::from_millis,
    );
    let safety_margin = parse_var::<u64>(
        &env,
        "ROUTER_AGENT_SAFETY_MARGIN_MS",
        "milliseconds, at most 10000",
        |ms| *ms <= 10_000,
    )?
    .map_or(Duration::from_millis(200), Duration::from_millis);
    Ok(DispatchConfig {
        mode,
        timeout,
        safety_margin,
    })
}

/// Everything the LLM tier needs, read from `ROUTER_*` variables.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// On, off or auto.
    pub mode: Switch,
    /// Bedrock call settings.
    pub bedrock: BedrockSettings,
    /// Deadline, cache and prompt settings.
    pub tier: LlmSettings,
    /// `ROUTER_SYSTEM_PROMPT_FILE`, if set (read by the caller).
    pub prompt_file: Option<PathBuf>,
}

fn parse_var<T: std::str::FromStr>(
    env: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    expected: &'static str,
    valid: impl Fn(&T) -> bool,
) -> Result<Option<T>, SettingsError> {
    match env(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<T>() {
            Ok(t) if valid(&t) => Ok(Some(t)),
            _ => Err(SettingsError {
                name,
                value: v,
                expected,
            }),
        },
    }
}

/// The LLM tier's system prompt template file, `ROUTER_SYSTEM_PROMPT_FILE` (unset or blank:
/// the embedded template). Read by the router's start-up and by `eval`'s cost estimate.
pub fn prompt_file(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("ROUTER_SYSTEM_PROMPT_FILE")
        .filter(|v| !v.trim().is_empty())
        .map(PathBuf::from)
}

/// Reads the LLM tier's configuration:
/// `ROUTER_LLM`, `ROUTER_MODEL_ID`, `ROUTER_LLM_RETRY_MODE` (`standard` or `adaptive`),
/// `ROUTER_LLM_TEMPERATURE` (a number, or `none` to send no
/// sampling parameter), `ROUTER_LLM_MAX_TOKENS` (1-16), `ROUTER_LLM_DEADLINE_MS`,
/// `ROUTER_LLM_SAFETY_MARGIN_MS`, `ROUTER_SYSTEM_PROMPT_FILE`, `ROUTER_CACHE_TTL_SECS` and
/// `ROUTER_CACHE_SIZE` (0 disables the cache).
pub fn llm_config(env: impl Fn(&str) -> Option<String>) -> Result<LlmConfig, SettingsError> {
    let mode = switch(&env, "ROUTER_LLM")?;
    let mut bedrock = BedrockSettings::default();
    let mut tier = LlmSettings::default();
    if let Some(m) = env("ROUTER_MODEL_ID").filter(|v| !v.trim().is_empty()) {
        bedrock.model_id = m.trim().to_owned();
    }
    match env("ROUTER_LLM_TEMPERATURE")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("none") => bedrock.temperature = None,
        _ => {
            if let Some(t) = parse_var::<f32>(
                &env,
                "ROUTER_LLM_TEMPERATURE",
                "a number from 0 to 1, or none",
                |t| (0.0..=1.0).contains(t),
            )? {
                bedrock.temperature = Some(t);
            }
        }
    }
    match env("ROUTER_LLM_RETRY_MODE")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("standard") => bedrock.aws.adaptive_retry = false,
        Some("adaptive") => bedrock.aws.adaptive_retry = true,
        Some(_) => {
            return Err(SettingsError {
                name: "ROUTER_LLM_RETRY_MODE",
                value: env("ROUTER_LLM_RETRY_MODE").unwrap_or_default(),
                expected: "standard or adaptive",
            });
        }
    }
    if let Some(n) = parse_var::<u16>(
        &env,
        "ROUTER_LLM_MAX_TOKENS",
        "a whole number from 1 to 16",
        |n| (1..=16).contains(n),
    )? {
        bedrock.max_tokens = n;
    }
    if let Some(ms) = parse_var::<u64>(
        &env,
        "ROUTER_LLM_DEADLINE_MS",
        "milliseconds, 50 to 60000",
        |ms| (50..=60_000).contains(ms),
    )? {
        tier.deadline = Duration::from_millis(ms);
    }
    if let Some(ms) = parse_var::<u64>(
        &env,
        "ROUTER_LLM_SAFETY_MARGIN_MS",
        "milliseconds, at most 10000",
        |ms| *ms <= 10_000,
    )? {
        tier.safety_margin = Duration::from_millis(ms);
    }
    if let Some(secs) = parse_var::<u64>(
        &env,
        "ROUTER_CACHE_TTL_SECS",
        "seconds, at most 86400",
        |s| *s <= 86_400,
    )? {
        tier.cache_ttl = Duration::from_secs(secs);
    }
    if let Some(n) = parse_var::<usize>(
        &env,
        "ROUTER_CACHE_SIZE",
        "a number of entries, at most 10000000",
        |n| *n <= 10_000_000,
    )? {
        tier.cache_capacity = n;
    }
    let prompt_file = prompt_file(&env);
    Ok(LlmConfig {
        mode,
        bedrock,
        tier,
        prompt_file,
    })
}

/// For `auto` mode outside Lambda: a short description of where AWS region and credentials
/// would come from, or `None` when neither is configured (then the tier stays off, and no AWS
/// call, not even to the instance metadata service, is ever made).
pub fn aws_configured(
    env: impl Fn(&str) -> Option<String>,
    file_exists: impl Fn(&Path) -> bool,
) -> Option<&'static str> {
    let set = |k: &str| env(k).is_some_and(|v| !v.trim().is_empty());
    if set("AWS_LAMBDA_RUNTIME_API") {
        return Some("lambda");
    }
    let region = set("AWS_REGION") || set("AWS_DEFAULT_REGION");
    let creds = set("AWS_ACCESS_KEY_ID")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_WEB_IDENTITY_TOKEN_FILE");
    if region && creds {
        return Some("environment");
    }
    let home = env("HOME").unwrap_or_default();
    let file = |var: &str, default: &str| {
        env(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(&home).join(".aws").join(default))
    };
    let profile_files = file_exists(&file("AWS_CONFIG_FILE", "config"))
        || file_exists(&file("AWS_SHARED_CREDENTIALS_FILE", "credentials"));
    ((region || set("AWS_PROFILE") || profile_files) && (creds || profile_files))
        .then_some("profile")
}

/// Reads a variable from the process environment (the `env` argument of the functions above).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_level_table() {
        let level = |v: Option<&str>| {
            log_level_setting(|k| {
                (k == "ROUTER_LOG_LEVEL")
                    .then(|| v.map(str::to_owned))
                    .flatten()
            })
        };
        assert_eq!(level(None), Ok(None));
        assert_eq!(level(Some(" ")), Ok(None));
        assert_eq!(level(Some("warn")), Ok(Some("WARN".to_owned())));
        assert_eq!(level(Some("FATAL")), Ok(Some("FATAL".to_owned())));
        let err = level(Some("verbose")).unwrap_err();
        assert_eq!(err.name, "ROUTER_LOG_LEVEL");
        assert!(err.to_string().contains("TRACE, DEBUG"), "{err}");
    }

    #[test]
    fn metrics_config_table() {
        // (environment, namespace when on, whether the value is refused)
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, bool);
        let cases: &[Case] = &[
            (&[], None, false),
            (
                &[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")],
                Some(DEFAULT_NAMESPACE),
                false,
            ),
            (&[("ROUTER_METRICS", "on")], Some(DEFAULT_NAMESPACE), false),
            (
                &[
                    ("ROUTER_METRICS", "ON"),
                    ("ROUTER_METRICS_NAMESPACE", "Prod/Router"),
                ],
                Some("Prod/Router"),
                false,
            ),
            (
                &[("ROUTER_METRICS", "off"), ("AWS_LAMBDA_RUNTIME_API", "x")],
                None,
                false,
            ),
            (
                &[("ROUTER_METRICS", "auto"), ("AWS_LAMBDA_RUNTIME_API", "x")],
                Some(DEFAULT_NAMESPACE),
                false,
            ),
            (&[("ROUTER_METRICS", "sometimes")], None, true),
            (
                &[
                    ("ROUTER_METRICS", "on"),
                    ("ROUTER_METRICS_NAMESPACE", "bad namespace!"),
                ],
                Some(DEFAULT_NAMESPACE),
                true,
            ),
            (
                &[
                    ("ROUTER_METRICS", "on"),
                    ("ROUTER_METRICS_NAMESPACE", "AWS/Lambda"),
                ],
                Some(DEFAULT_NAMESPACE),
                true,
            ),
            (
                &[("ROUTER_METRICS", "on"), ("ROUTER_METRICS_NAMESPACE", " ")],
                Some(DEFAULT_NAMESPACE),
                false,
            ),
        ];
        for (pairs, want, warns) in cases {
            let map: HashMap<&str, &str> = pairs.iter().copied().collect();
            let got = metrics_config(|k| map.get(k).map(|v| v.to_string()));
            if *warns {
                assert!(got.is_err(), "{pairs:?}: {got:?}");
                continue;
            }
            let expected = match want {
                Some(ns) => MetricsConfig::On {
                    namespace: ns.to_string(),
                    function_version: None,
                },
                None => MetricsConfig::Off,
            };
            assert_eq!(got, Ok(expected), "{pairs:?}");
        }
    }
    use std::collections::HashMap;

    #[test]
    fn source_precedence() {
        let env = HashMap::from([(CONFIG_ENV.to_owned(), "/env.toml".to_owned())]);
        let lookup = |k: &str| env.get(k).cloned();
        assert_eq!(
            routes_source(Some(Path::new("/flag.toml")), lookup),
            RoutesSource::File("/flag.toml".into())
        );
        assert_eq!(
            routes_source(None, lookup),
            RoutesSource::File("/env.toml".into())
        );
        assert_eq!(routes_source(None, |_| None), RoutesSource::Embedded);
        assert_eq!(
            routes_source(None, |_| Some(" ".into())),
            RoutesSource::Embedded
        );
    }

    #[test]
    fn target_overrides_apply() {
        assert_eq!(target_env_name("cost"), "ROUTER_TARGET_COST");
        assert_eq!(target_env_name("on-call_x"), "ROUTER_TARGET_ON_CALL_X");
        let env = HashMap::from([(
            "ROUTER_TARGET_COST".to_owned(),
            "arn:aws:lambda:eu-west-1:1:function:c".to_owned(),
        )]);
        let c = load_catalogue(&RoutesSource::Embedded, |k| env.get(k).cloned()).unwrap();
        assert_eq!(
            c.agent("cost").unwrap().target.as_deref(),
            Some("arn:aws:lambda:eu-west-1:1:function:c")
        );
        assert_eq!(
            c.agent("security").unwrap().target.as_deref(),
            Some("security-agent")
        );
    }

    #[test]
    fn llm_config_table() {
        let cfg = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            llm_config(move |k| map.get(k).cloned())
        };
        let d = cfg(&[]).unwrap();
        assert_eq!(d.mode, Switch::Auto);
        assert_eq!(
            d.bedrock.model_id,
            "us.anthropic.claude-haiku-4-5-20251001-v1:0"
        );
        assert_eq!(d.tier.deadline, Duration::from_secs(2));
        let c = cfg(&[
            ("ROUTER_LLM", "off"),
            (
                "ROUTER_MODEL_ID",
                "global.anthropic.claude-haiku-4-5-20251001-v1:0",
            ),
            ("ROUTER_LLM_TEMPERATURE", "none"),
            ("ROUTER_LLM_DEADLINE_MS", "800"),
            ("ROUTER_CACHE_SIZE", "0"),
        ])
        .unwrap();
        assert_eq!(c.mode, Switch::Off);
        assert_eq!(
            c.bedrock.model_id,
            "global.anthropic.claude-haiku-4-5-20251001-v1:0"
        );
        assert_eq!(c.bedrock.temperature, None);
        assert_eq!(c.tier.deadline, Duration::from_millis(800));
        assert_eq!(c.tier.cache_capacity, 0);
        for (k, v) in [
            ("ROUTER_LLM", "maybe"),
            ("ROUTER_LLM_TEMPERATURE", "hot"),
            ("ROUTER_LLM_TEMPERATURE", "1.5"),
            ("ROUTER_LLM_MAX_TOKENS", "64"),
            ("ROUTER_LLM_DEADLINE_MS", "-1"),
            ("ROUTER_CACHE_TTL_SECS", "forever"),
            ("ROUTER_LLM_RETRY_MODE", "legacy"),
        ] {
            let err = cfg(&[(k, v)]).unwrap_err();
            assert_eq!(err.name, k);
            assert!(err.to_string().contains(v), "{err}");
        }
    }

    #[test]
    fn lambda_streaming_values() {
        use crate::api::LambdaStreaming;
        let read = |v: Option<&str>| lambda_streaming(|_| v.map(str::to_owned));
        assert_eq!(read(None), Ok(LambdaStreaming::Off));
        assert_eq!(read(Some("Query")), Ok(LambdaStreaming::Query));
        assert_eq!(read(Some("all")), Ok(LambdaStreaming::All));
        assert_eq!(
            read(Some("yes")).unwrap_err().name,
            "ROUTER_LAMBDA_STREAMING"
        );
    }

    #[test]
    fn dispatch_config_table() {
        let d = dispatch_config(|_| None).unwrap();
        assert_eq!((d.mode, d.timeout), (Switch::Auto, Duration::from_secs(25)));
        let env = HashMap::from([
            ("ROUTER_DISPATCH".to_owned(), "off".to_owned()),
            ("ROUTER_AGENT_TIMEOUT_MS".to_owned(), "1500".to_owned()),
        ]);
        let d = dispatch_config(|k| env.get(k).cloned()).unwrap();
        assert_eq!(
            (d.mode, d.timeout),
            (Switch::Off, Duration::from_millis(1500))
        );
        let bad = HashMap::from([("ROUTER_AGENT_TIMEOUT_MS".to_owned(), "0".to_owned())]);
        assert_eq!(
            dispatch_config(|k| bad.get(k).cloned()).unwrap_err().name,
            "ROUTER_AGENT_TIMEOUT_MS"
        );
    }

    #[test]
    fn aws_detection_table() {
        let detect = |pairs: &[(&str, &str)], files: bool| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            aws_configured(move |k| map.get(k).cloned(), |_| files)
        };
        assert_eq!(detect(&[], false), None);
        assert_eq!(detect(&[("AWS_REGION", "us-east-1")], false), None);
        assert_eq!(detect(&[("AWS_ACCESS_KEY_ID", "AKIA")], false), None);
        assert_eq!(
            detect(
                &[("AWS_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "AKIA")],
                false
            ),
            Some("environment")
        );
        assert_eq!(
            detect(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")], false),
            Some("lambda")
        );
        assert_eq!(detect(&[("HOME", "/home/me")], true), Some("profile"));
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = load_catalogue(&RoutesSource::File("/no/such/routes.toml".into()), |_| None)
            .unwrap_err();
        assert!(err.to_string().contains("/no/such/routes.toml"), "{err}");
    }
}
