//! Command-line parsing (with `lexopt`) for the `agent-router` binary.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

/// Usage text printed by `--help` and on argument errors.
pub const USAGE: &str = "\
agent-router: routes natural-language queries to the right AI agent

USAGE:
  agent-router [serve] [--config FILE] [--host ADDR] [--port N]
      Serve the HTTP API. Under AWS Lambda (AWS_LAMBDA_RUNTIME_API set) runs the Lambda
      runtime instead; otherwise listens on 127.0.0.1:3000 (PORT or --port to change).
  agent-router route [--config FILE] QUERY...
      Print the routing decision for one query as JSON (no server, no network for fast-path hits).
  agent-router check [--config FILE]
      Validate a routes file and print a summary of its agents.

OPTIONS:
  --config FILE   routes file (default: ROUTER_CONFIG, else the embedded catalogue)
  --host ADDR     address to listen on (default 127.0.0.1)
  --port N        port to listen on (default: PORT, else 3000)
  -h, --help      print this help
  -V, --version   print the version
";

/// What the binary was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve the API (Lambda runtime or local HTTP).
    Serve {
        /// Routes file override.
        config: Option<PathBuf>,
        /// Listen address override.
        host: Option<IpAddr>,
        /// Listen port override.
        port: Option<u16>,
    },
    /// Route one query and print the decision.
    Route {
        /// Routes file override.
        config: Option<PathBuf>,
        /// The query (arguments joined by spaces).
        query: String,
    },
    /// Validate a routes file.
    Check {
        /// Routes file override.
        config: Option<PathBuf>,
    },
    /// Print usage.
    Help,
    /// Print the version.
    Version,
}

/// Parses arguments (without the program name).
pub fn parse<I>(args: I) -> Result<Command, lexopt::Error>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut sub: Option<String> = None;
    let (mut config, mut host, mut port) = (None, None, None);
    let mut words: Vec<String> = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("config") => config = Some(PathBuf::from(parser.value()?)),
            Long("host") => host = Some(parser.value()?.parse()?),
            Long("port") => port = Some(parser.value()?.parse()?),
            Value(v) if sub.is_none() => sub = Some(v.string()?),
            Value(v) if sub.as_deref() == Some("route") => words.push(v.string()?),
            _ => return Err(arg.unexpected()),
        }
    }
    match sub.as_deref() {
        None | Some("serve") => Ok(Command::Serve { config, host, port }),
        Some("route") if !words.is_empty() => Ok(Command::Route {
            config,
            query: words.join(" "),
        }),
        Some("route") => {
            Err("route needs a query, e.g. agent-router route \"what did we spend?\"".into())
        }
        Some("check") => Ok(Command::Check { config }),
        Some(other) => Err(format!("unknown command {other:?}").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let serve = |port| Command::Serve {
            config: None,
            host: None,
            port,
        };
        let cases: Vec<(&[&str], Result<Command, ()>)> = vec![
            (&[], Ok(serve(None))),
            (&["serve", "--port", "8080"], Ok(serve(Some(8080)))),
            (&["--port", "99999"], Err(())),
            (&["--help"], Ok(Command::Help)),
            (&["-V"], Ok(Command::Version)),
            (
                &["route", "--config", "r.toml", "my", "bill"],
                Ok(Command::Route {
                    config: Some("r.toml".into()),
                    query: "my bill".into(),
                }),
            ),
            (&["route"], Err(())),
            (&["check"], Ok(Command::Check { config: None })),
            (&["frobnicate"], Err(())),
            (&["serve", "extra"], Err(())),
        ];
        for (args, want) in cases {
            let got = parse(args.iter().copied()).map_err(|_| ());
            assert_eq!(got, want, "args {args:?}");
        }
    }
}
