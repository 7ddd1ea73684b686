//! The `agent-router` binary: everything is in [`agent_router::app::main`].

fn main() -> std::process::ExitCode {
    agent_router::app::main()
}
