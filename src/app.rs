//! Wiring for the binary: load the catalogue, build the router, and serve or answer a command.
//!
//! Everything that can fail on configuration fails here, before the Lambda runtime starts
//! polling, so a bad routes file fails the init phase and never a request.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use crate::api::Api;
use crate::cli::{Command, USAGE};
use crate::router::Router;
use crate::settings::{load_catalogue, process_env, routes_source};

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
        Command::Route { config, query } => {
            let router = build_router(config.as_deref())?;
            let decision = router.route(&query).await;
            println!("{}", serde_json::to_string_pretty(&decision)?);
            Ok(())
        }
        Command::Serve { config, host, port } => {
            let api = Arc::new(Api::new(Arc::new(build_router(config.as_deref())?)));
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

/// Loads the catalogue (flag, then `ROUTER_CONFIG`, else embedded) and compiles the router.
pub fn build_router(config: Option<&std::path::Path>) -> Result<Router, AppError> {
    let source = routes_source(config, process_env);
    let catalogue = load_catalogue(&source, process_env)?;
    for a in catalogue.agents() {
        if a.keywords.is_empty() && a.name != catalogue.default_agent().name {
            tracing::warn!(agent = %a.name, "agent has no keywords: only the LLM tier can choose it");
        }
    }
    let router = Router::new(catalogue)?;
    tracing::info!(
        routes = %source,
        agents = router.catalogue().agents().len(),
        keywords = router.fast_path().pattern_count(),
        default_agent = %router.catalogue().default_agent().name,
        "router ready"
    );
    Ok(router)
}
