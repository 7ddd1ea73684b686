//! Wiring for the binary: load the catalogue, build the router, and serve or answer a command.
//!
//! Everything that can fail on configuration fails here, before the Lambda runtime starts
//! polling, so a bad routes file fails the init phase and never a request.

pub mod cli;
pub mod settings;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use crate::api::Api;
use crate::aws::{BedrockClassifier, DynamoDbSessionStore, LambdaInvoker};
use crate::dispatch::Dispatcher;
use crate::ops::logging::LevelFilter;
use crate::ports::{MemorySessionStore, SessionStore};
use crate::routing::{Catalogue, Router};
use crate::sessions::Sessions;
use cli::{Command, USAGE};
use settings::{SessionConfig, SessionStoreKind, Settings, Switch, unknown_target_vars};

/// Default local port when neither `--port` nor `PORT` is given.
pub const DEFAULT_PORT: u16 = 3000;

/// A start-up or command failure, printed by `main` and turned into a non-zero exit.
pub type AppError = Box<dyn std::error::Error + Send + Sync>;

/// The binary's entry point: parses the arguments, sets up logging, and runs the command on a
/// single-threaded runtime (Lambda sends one event at a time per process, and a current-thread
/// runtime starts faster and uses less memory than a thread pool).
///
/// Exit codes: 0 done, 1 the command failed, 2 bad arguments. A failure is reported once: as a
/// structured log line under Lambda, where the logs are what an operator reads, and as one plain
/// line on stderr everywhere else.
pub fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("agent-router: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The server logs what it does; a one-shot command prints its answer and only warnings.
    let default_level = match command {
        Command::Serve { .. } => LevelFilter::INFO,
        _ => LevelFilter::WARN,
    };
    crate::ops::logging::init(default_level);
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AppError::from)
        .and_then(|rt| rt.block_on(run(command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() => {
            tracing::error!(error = %e, "agent-router failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("agent-router: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes a command's answer on stdout. A reader that stops early (`| head`) is not an error:
/// the rest of the answer is simply not wanted.
fn emit(text: &str) -> Result<(), AppError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Runs a parsed command to completion, with the process's settings read once here.
pub async fn run(command: Command) -> Result<(), AppError> {
    match command {
        Command::Help => return emit(USAGE),
        Command::Version => {
            return emit(&format!("agent-router {}\n", env!("CARGO_PKG_VERSION")));
        }
        _ => {}
    }
    let settings = Settings::from_process()?;
    match command {
        Command::Help | Command::Version => Ok(()),
        Command::Check { config } => {
            let (source, catalogue) = settings.catalogue(config.as_deref())?;
            let router = Router::new(catalogue)?;
            let c = router.catalogue();
            let mut out = format!(
                "routes file OK ({source}): {} agents, {} keywords, default agent {:?}\n",
                c.agents().len(),
                router.fast_path().pattern_count(),
                c.default_agent().name
            );
            for a in c.agents() {
                let target = a.target.as_deref().unwrap_or("(route-only)");
                out += &format!(
                    "  {:<16} {:>4} keywords  target {target}\n",
                    a.name,
                    a.keywords.len()
                );
            }
            for w in catalogue_warnings(c, &settings) {
                out += &format!("warning: {w}\n");
            }
            emit(&out)
        }
        Command::Eval {
            routes,
            data,
            json,
            price_per_mtok_in,
            price_per_mtok_out,
        } => {
            let defaults = crate::tune::EvalOptions::default();
            // The prompt the router would send: its own, or ROUTER_SYSTEM_PROMPT_FILE's.
            let prompt_template = match &settings.llm.prompt_file {
                Some(path) => read_prompt_file(path)?,
                None => defaults.prompt_template,
            };
            let options = crate::tune::EvalOptions {
                price_per_mtok_in: price_per_mtok_in.map_or(defaults.price_per_mtok_in, |p| p.0),
                price_per_mtok_out: price_per_mtok_out.map_or(defaults.price_per_mtok_out, |p| p.0),
                prompt_template,
                session_policy: settings.sessions.policy,
            };
            // Like every command: --config, else ROUTER_CONFIG, else the embedded catalogue.
            let (source, catalogue) = settings.catalogue(routes.as_deref())?;
            let (report, warnings) =
                crate::tune::eval_command(&catalogue, &source.to_string(), &data, json, &options)?;
            warnings.iter().for_each(|w| eprintln!("{w}"));
            emit(&report)
        }
        Command::Keywords {
            data,
            out,
            force,
            min_precision,
            min_support,
        } => {
            if let Some(path) = out.as_deref().filter(|p| p.exists() && !force) {
                return Err(format!(
                    "{} exists; pass --force to overwrite it, or choose another --out",
                    path.display()
                )
                .into());
            }
            let defaults = crate::tune::MineOptions::default();
            let options = crate::tune::MineOptions {
                min_precision: min_precision.map_or(defaults.min_precision, |p| p.0),
                min_support: min_support.unwrap_or(defaults.min_support),
                ..defaults
            };
            let (mut toml, report) = crate::tune::keywords_command(&data, &options)?;
            // `--out x.json` writes the JSON form, which loads faster and in less memory.
            if out
                .as_deref()
                .is_some_and(|p| p.extension().is_some_and(|e| e == "json"))
            {
                toml = crate::routing::Catalogue::from_toml_str(&toml)?.to_json_string();
            }
            match out {
                Some(path) => std::fs::write(&path, toml)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
                None => emit(&toml)?,
            }
            report.iter().for_each(|line| eprintln!("{line}"));
            Ok(())
        }
        Command::Route {
            config,
            query,
            explain,
        } => {
            let router = build_router(config.as_deref(), &settings)?;
            let decision = router.route(&query).await;
            let mut out = serde_json::to_string_pretty(&decision)? + "\n";
            if explain {
                out += &format!("\n{}", router.explain(&query).to_text());
            }
            emit(&out)
        }
        Command::Serve { config, host, port } => {
            let api = Arc::new(build_api(config.as_deref(), &settings)?);
            if settings.in_lambda {
                return crate::api::run_lambda(api, settings.lambda_streaming)
                    .await
                    .map_err(|e| e.to_string().into());
            }
            let port = port.or(settings.port).unwrap_or(DEFAULT_PORT);
            let addr = SocketAddr::new(host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), port);
            let listener = crate::api::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let url = format!("http://{}", listener.local_addr()?);
            tracing::info!(%url, "listening; try: curl -s {url}/route -d '{{\"query\":\"What are my AWS costs?\"}}'");
            crate::api::serve(api, listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
            Ok(())
        }
    }
}

/// What is legal in a routes file but probably a mistake: agents only the LLM can choose, and
/// `ROUTER_TARGET_*` variables that name no agent.
pub fn catalogue_warnings(catalogue: &Catalogue, settings: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    for a in catalogue.agents() {
        if a.keywords.is_empty() && a.name != catalogue.default_agent().name {
            out.push(format!(
                "agent {:?} has no keywords: only the LLM tier can choose it",
                a.name
            ));
        }
    }
    for var in unknown_target_vars(catalogue, &settings.targets) {
        out.push(format!(
            "{var} is set but names no agent in the routes file: it is ignored"
        ));
    }
    out
}

/// Builds the router and, when dispatch is on, the Lambda dispatcher behind `POST /query`.
pub fn build_api(config: Option<&std::path::Path>, settings: &Settings) -> Result<Api, AppError> {
    let router = Arc::new(build_router(config, settings)?);
    let llm_on = router.has_llm();
    let mut api = Api::new(router)
        .with_metrics(settings.metrics.clone())
        .with_decision_log(settings.decision_log);
    if !settings.in_lambda {
        api = api.with_stats(Arc::new(crate::ops::stats::Stats::new()));
    }
    if settings.shadow_rate > 0.0 {
        if llm_on {
            // In Lambda the process freezes once a response is sent, so /route (which has no
            // agent to wait for) gets no second opinions there; /query asks while the agent
            // answers.
            api = api.with_shadows(crate::shadow::Shadows::new(
                settings.shadow_rate,
                settings.shadow_max_per_sec,
                !settings.in_lambda,
            ));
            tracing::info!(
                rate = settings.shadow_rate,
                max_per_sec = settings.shadow_max_per_sec,
                on_route = !settings.in_lambda,
                "second opinions on"
            );
        } else {
            tracing::warn!("ROUTER_SHADOW_RATE is set but the LLM tier is off: no second opinions");
        }
    }
    let api = match session_store(&settings.sessions) {
        Some(store) => api.with_sessions(Sessions::new(
            store,
            settings.sessions.timeout,
            settings.sessions.ttl,
            settings.sessions.context,
        )),
        None => api,
    };
    let dispatch = &settings.dispatch;
    if !switched_on(
        dispatch.mode,
        settings.aws,
        "ROUTER_DISPATCH",
        "POST /query answers with the decision only",
    ) {
        return Ok(api);
    }
    let invoker = Arc::new(LambdaInvoker::new(
        LambdaInvoker::default_settings(),
        dispatch.timeout,
    ));
    let dispatcher = Dispatcher::new(invoker, dispatch.timeout, dispatch.safety_margin);
    tracing::info!(
        timeout_ms = dispatch.timeout.as_millis() as u64,
        "dispatch on (Lambda client created on first use)"
    );
    Ok(api.with_dispatcher(Arc::new(dispatcher)))
}

/// The session store `ROUTER_SESSION_STORE` names (`None`: sessions off). The DynamoDB client is
/// built on the first turn that carries a `session_id`.
fn session_store(config: &SessionConfig) -> Option<Arc<dyn SessionStore>> {
    let store: Arc<dyn SessionStore> = match &config.store {
        SessionStoreKind::Off => {
            tracing::info!(
                "ROUTER_SESSION_STORE=off: session_id is passed to agents, not used for routing"
            );
            return None;
        }
        SessionStoreKind::Memory => Arc::new(MemorySessionStore::new(config.capacity)),
        SessionStoreKind::DynamoDb { table } => Arc::new(DynamoDbSessionStore::new(
            table.clone(),
            DynamoDbSessionStore::default_settings(),
            config.timeout,
        )),
    };
    tracing::info!(
        store = match config.store {
            SessionStoreKind::Memory => "memory",
            _ => "dynamodb",
        },
        ttl_s = config.ttl.as_secs(),
        timeout_ms = config.timeout.as_millis() as u64,
        context = config.context,
        "sessions on"
    );
    Some(store)
}

/// Reads the `ROUTER_SYSTEM_PROMPT_FILE` template.
fn read_prompt_file(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read ROUTER_SYSTEM_PROMPT_FILE {}: {e}",
            path.display()
        )
    })
}

/// Whether an AWS-backed feature switched by `var` runs: `on`, or `auto` with AWS configured.
/// When it does not, logs why and what happens instead (`otherwise`).
fn switched_on(mode: Switch, aws: Option<&str>, var: &str, otherwise: &str) -> bool {
    match (mode, aws) {
        (Switch::Off, _) => {
            tracing::info!("{var}=off: {otherwise}");
            false
        }
        (Switch::Auto, None) => {
            tracing::info!(
                "{var}=auto and no AWS region and credentials found (set AWS_REGION and credentials, \
                 or {var}=on to force it): {otherwise}"
            );
            false
        }
        (Switch::On, _) | (Switch::Auto, Some(_)) => true,
    }
}

/// Loads the catalogue (flag, then `ROUTER_CONFIG`, else embedded) and compiles the router, with
/// the LLM tier when `ROUTER_LLM` and the AWS configuration say so.
pub fn build_router(
    config: Option<&std::path::Path>,
    settings: &Settings,
) -> Result<Router, AppError> {
    let (source, catalogue) = settings.catalogue(config)?;
    for w in catalogue_warnings(&catalogue, settings) {
        tracing::warn!("{w}");
    }
    let mut router = Router::new(catalogue)?.with_session_policy(settings.sessions.policy);
    let llm = &settings.llm;
    let llm_on = switched_on(
        llm.mode,
        settings.aws,
        "ROUTER_LLM",
        "unrouted queries go to the default agent",
    );
    if llm_on {
        let mut tier = llm.tier.clone();
        if let Some(path) = &llm.prompt_file {
            tier.prompt_template = read_prompt_file(path)?;
        }
        let classifier = Arc::new(BedrockClassifier::new(llm.bedrock.clone(), tier.deadline));
        router = router.with_llm(classifier, tier)?;
        tracing::info!(
            model_id = %llm.bedrock.model_id,
            deadline_ms = llm.tier.deadline.as_millis() as u64,
            cache_size = llm.tier.cache_capacity,
            cache_ttl_s = llm.tier.cache_ttl.as_secs(),
            aws = settings.aws.unwrap_or("forced"),
            "LLM tier on (AWS config loads on first use)"
        );
    }
    tracing::info!(
        routes = %source,
        agents = router.catalogue().agents().len(),
        keywords = router.fast_path().pattern_count(),
        default_agent = %router.catalogue().default_agent().name,
        "router ready"
    );
    Ok(router)
}
