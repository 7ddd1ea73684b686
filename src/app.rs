//! Wiring for the binary: load the catalogue, build the router, and serve or answer a command.
//!
//! Everything that can fail on configuration fails here, before the Lambda runtime starts
//! polling, so a bad routes file fails the init phase and never a request.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use crate::api::Api;
use crate::bedrock::BedrockClassifier;
use crate::cli::{Command, USAGE};
use crate::dispatch::Dispatcher;
use crate::lambda_invoker::LambdaInvoker;
use crate::router::Router;
use crate::settings::{
    Switch, aws_configured, dispatch_config, llm_config, load_catalogue, process_env, prompt_file,
    routes_source,
};

/// Default local port when neither `--port` nor `PORT` is given.
pub const DEFAULT_PORT: u16 = 3000;

/// A start-up or command failure, printed by `main` and turned into a non-zero exit.
pub type AppError = Box<dyn std::error::Error + Send + Sync>;

/// Runs a parsed command to completion.
pub async fn run(command: Command) -> Result<(), AppError> {
    match command {
        Command::Help => {
            print!("{USAGE}");
            Ok(())
        }
        Command::Version => {
            println!("agent-router {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Check { config } => {
            let source = routes_source(config.as_deref(), process_env);
            let catalogue = load_catalogue(&source, process_env)?;
            let router = Router::new(catalogue)?;
            let c = router.catalogue();
            println!(
                "routes file OK ({source}): {} agents, {} keywords, default agent {:?}",
                c.agents().len(),
                router.fast_path().pattern_count(),
                c.default_agent().name
            );
            for a in c.agents() {
                let target = a.target.as_deref().unwrap_or("(route-only)");
                println!(
                    "  {:<16} {:>4} keywords  target {target}",
                    a.name,
                    a.keywords.len()
                );
            }
            Ok(())
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
            let prompt_template = match prompt_file(process_env) {
                Some(path) => read_prompt_file(&path)?,
                None => defaults.prompt_template,
            };
            let options = crate::tune::EvalOptions {
                price_per_mtok_in: price_per_mtok_in.map_or(defaults.price_per_mtok_in, |p| p.0),
                price_per_mtok_out: price_per_mtok_out.map_or(defaults.price_per_mtok_out, |p| p.0),
                prompt_template,
            };
            let (report, warnings) = crate::tune::eval_command(&routes, &data, json, &options)?;
            warnings.iter().for_each(|w| eprintln!("{w}"));
            print!("{report}");
            Ok(())
        }
        Command::Keywords {
            data,
            out,
            min_precision,
            min_support,
        } => {
            let defaults = crate::tune::MineOptions::default();
            let options = crate::tune::MineOptions {
                min_precision: min_precision.map_or(defaults.min_precision, |p| p.0),
                min_support: min_support.unwrap_or(defaults.min_support),
                ..defaults
            };
            let (toml, report) = crate::tune::keywords_command(&data, &options)?;
            match out {
                Some(path) => std::fs::write(&path, toml)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
                None => print!("{toml}"),
            }
            report.iter().for_each(|line| eprintln!("{line}"));
            Ok(())
        }
        Command::Route { config, query } => {
            let router = build_router(config.as_deref(), detect_aws())?;
            let decision = router.route(&query).await;
            println!("{}", serde_json::to_string_pretty(&decision)?);
            Ok(())
        }
        Command::Serve { config, host, port } => {
            let api = Arc::new(build_api(config.as_deref())?);
            if process_env("AWS_LAMBDA_RUNTIME_API").is_some() {
                return crate::lambda::run(api)
                    .await
                    .map_err(|e| e.to_string().into());
            }
            let port = match port {
                Some(p) => p,
                None => match process_env("PORT") {
                    Some(p) => p
                        .trim()
                        .parse()
                        .map_err(|_| format!("PORT={p:?} is not a port number"))?,
                    None => DEFAULT_PORT,
                },
            };
            let addr = SocketAddr::new(host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), port);
            let listener = crate::server::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let url = format!("http://{}", listener.local_addr()?);
            tracing::info!(%url, "listening; try: curl -s {url}/route -d '{{\"query\":\"What are my AWS costs?\"}}'");
            crate::server::serve(api, listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
            Ok(())
        }
    }
}

/// Builds the router and, when dispatch is on, the Lambda dispatcher behind `POST /query`.
pub fn build_api(config: Option<&std::path::Path>) -> Result<Api, AppError> {
    let aws = detect_aws();
    let api = Api::new(Arc::new(build_router(config, aws)?));
    let dispatch = dispatch_config(process_env)?;
    if !switched_on(
        dispatch.mode,
        aws,
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

/// Reads the `ROUTER_SYSTEM_PROMPT_FILE` template.
fn read_prompt_file(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read ROUTER_SYSTEM_PROMPT_FILE {}: {e}",
            path.display()
        )
    })
}

/// Where AWS region and credentials would come from (`None`: not configured), looked up once per
/// start-up and shared by the LLM tier and dispatch.
fn detect_aws() -> Option<&'static str> {
    aws_configured(process_env, |p| p.is_file())
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

/// Loads the catalogue (flag, then `ROUTER_CONFIG`, else embedded) and compiles the router.
/// `aws` is what [`aws_configured`] found, for the `auto` mode of `ROUTER_LLM`.
pub fn build_router(
    config: Option<&std::path::Path>,
    aws: Option<&'static str>,
) -> Result<Router, AppError> {
    let source = routes_source(config, process_env);
    let catalogue = load_catalogue(&source, process_env)?;
    for a in catalogue.agents() {
        if a.keywords.is_empty() && a.name != catalogue.default_agent().name {
            tracing::warn!(agent = %a.name, "agent has no keywords: only the LLM tier can choose it");
        }
    }
    let mut router = Router::new(catalogue)?;
    let llm = llm_config(process_env)?;
    let llm_on = switched_on(
        llm.mode,
        aws,
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
            aws = aws.unwrap_or("forced"),
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
