//! The `agent-router` binary: parse arguments, set up logging, run on a single-threaded runtime.

use std::process::ExitCode;

fn main() -> ExitCode {
    let command = match agent_router::cli::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("agent-router: {e}\n\n{}", agent_router::cli::USAGE);
            return ExitCode::from(2);
        }
    };
    agent_router::telemetry::init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match runtime
        .map_err(Into::into)
        .and_then(|rt| rt.block_on(agent_router::app::run(command)))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "agent-router failed");
            eprintln!("agent-router: {e}");
            ExitCode::FAILURE
        }
    }
}
