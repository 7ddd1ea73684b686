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
  agent-router route [--config FILE] [--explain] QUERY...
      Print the routing decision for one query as JSON (no server, no network for fast-path hits);
      --explain adds, for a person, every agent's keyword evidence and the thresholds.
  agent-router check [--config FILE]
      Validate a routes file and print a summary of its agents.
  agent-router eval [--config FILE] --data LABELLED.jsonl [--json]
                    [--price-per-mtok-in USD] [--price-per-mtok-out USD]
      Run only the fast path of a routes file over labelled queries (one JSON object a line,
      {\"query\": ..., \"agent\": NAME or \"none\"}) and report coverage, precision, per-agent
      figures, confusions, the LLM call rate and its estimated Bedrock cost (default prices:
      Claude Haiku 4.5, $1 in / $5 out per million tokens). No network. --routes is the same
      as --config; without either, the routes of every command (ROUTER_CONFIG, else the
      embedded catalogue).
  agent-router keywords --data LABELLED.jsonl [--out FILE [--force]] [--min-precision P]
                        [--min-support N]
      Fit a linear fast-path model to labelled queries and write a complete routes file (to FILE,
      which must not exist unless --force is given; else stdout), thresholds chosen by
      cross-validation for precision P (default 0.985) on the fast path; N (default 3) is the
      fewest examples of a label an n-gram needs.

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
        /// Also print the fast path's evidence.
        explain: bool,
    },
    /// Validate a routes file.
    Check {
        /// Routes file override.
        config: Option<PathBuf>,
    },
    /// Measure a routes file's fast path on labelled queries.
    Eval {
        /// The routes file to evaluate (default: `ROUTER_CONFIG`, else the embedded catalogue).
        routes: Option<PathBuf>,
        /// The labelled JSON-lines file.
        data: PathBuf,
        /// Print one JSON object instead of the text report.
        json: bool,
        /// USD per million LLM input tokens (default: Claude Haiku 4.5 on Bedrock).
        price_per_mtok_in: Option<crate::tune::Number>,
        /// USD per million LLM output tokens (default: Claude Haiku 4.5 on Bedrock).
        price_per_mtok_out: Option<crate::tune::Number>,
    },
    /// Mine a routes file from labelled queries.
    Keywords {
        /// The labelled JSON-lines file.
        data: PathBuf,
        /// Where to write the routes file (default: stdout).
        out: Option<PathBuf>,
        /// Overwrite `out` if it exists.
        force: bool,
        /// Precision the fast path must keep on the internal hold-out.
        min_precision: Option<crate::tune::Number>,
        /// Fewest examples of a label an n-gram needs.
        min_support: Option<usize>,
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
    // eval / keywords options
    let (mut routes, mut data, mut out, mut json, mut force) = (None, None, None, false, false);
    let mut explain = false;
    let (mut price_in, mut price_out, mut min_precision, mut min_support) =
        (None, None, None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("config") => config = Some(PathBuf::from(parser.value()?)),
            Long("host") => host = Some(parser.value()?.parse()?),
            Long("port") => port = Some(parser.value()?.parse()?),
            Long("routes") => routes = Some(PathBuf::from(parser.value()?)),
            Long("data") => data = Some(PathBuf::from(parser.value()?)),
            Long("out") => out = Some(PathBuf::from(parser.value()?)),
            Long("json") => json = true,
            Long("force") => force = true,
            Long("explain") => explain = true,
            Long("price-per-mtok-in") => price_in = Some(parser.value()?.parse()?),
            Long("price-per-mtok-out") => price_out = Some(parser.value()?.parse()?),
            Long("min-precision") => min_precision = Some(parser.value()?.parse()?),
            Long("min-support") => min_support = Some(parser.value()?.parse()?),
            Value(v) if sub.is_none() => sub = Some(v.string()?),
            Value(v) if sub.as_deref() == Some("route") => words.push(v.string()?),
            _ => return Err(arg.unexpected()),
        }
    }
    let tune_flag = routes.is_some() || data.is_some() || out.is_some() || json || force;
    let tune_flag = tune_flag || price_in.is_some() || price_out.is_some();
    if (tune_flag || min_precision.is_some() || min_support.is_some())
        && !matches!(sub.as_deref(), Some("eval" | "keywords"))
    {
        return Err(
            "--routes, --data, --out, --force, --json, --price-*, --min-* are for eval and keywords"
                .into(),
        );
    }
    // Flags a command would ignore are refused, so a typo'd invocation does not run on defaults.
    if (host.is_some() || port.is_some()) && !matches!(sub.as_deref(), None | Some("serve")) {
        return Err("--host and --port are for serve".into());
    }
    if config.is_some() && sub.as_deref() == Some("keywords") {
        return Err("keywords takes no --config: it writes a routes file (--out)".into());
    }
    if config.is_some() && routes.is_some() {
        return Err(
            "give the routes file once: --config FILE (or its synonym --routes FILE)".into(),
        );
    }
    match sub.as_deref() {
        Some("eval") => {
            if out.is_some() || force || min_precision.is_some() || min_support.is_some() {
                return Err("eval takes --config, --data, --json and --price-per-mtok-*".into());
            }
            Ok(Command::Eval {
                routes: routes.or(config),
                data: data.ok_or("eval needs --data LABELLED.jsonl")?,
                json,
                price_per_mtok_in: price_in,
                price_per_mtok_out: price_out,
            })
        }
        Some("keywords") => {
            if routes.is_some() || json || price_in.is_some() || price_out.is_some() {
                return Err(
                    "keywords takes --data, --out, --force, --min-precision and --min-support"
                        .into(),
                );
            }
            if force && out.is_none() {
                return Err("--force goes with --out FILE".into());
            }
            Ok(Command::Keywords {
                data: data.ok_or("keywords needs --data LABELLED.jsonl")?,
                out,
                force,
                min_precision,
                min_support,
            })
        }
        _ if explain && sub.as_deref() != Some("route") => Err("--explain is for route".into()),
        None | Some("serve") => Ok(Command::Serve { config, host, port }),
        Some("route") if !words.is_empty() => Ok(Command::Route {
            config,
            query: words.join(" "),
            explain,
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
                    explain: false,
                }),
            ),
            (
                &["route", "--explain", "my", "bill"],
                Ok(Command::Route {
                    config: None,
                    query: "my bill".into(),
                    explain: true,
                }),
            ),
            (&["check", "--explain"], Err(())),
            (&["route"], Err(())),
            (&["check"], Ok(Command::Check { config: None })),
            (&["check", "--port", "80"], Err(())),
            (&["route", "--host", "0.0.0.0", "hi"], Err(())),
            (&["keywords", "--data", "d", "--config", "c"], Err(())),
            (
                &["eval", "--routes", "r", "--data", "d", "--config", "c"],
                Err(()),
            ),
            (&["frobnicate"], Err(())),
            (&["serve", "extra"], Err(())),
            (
                &["eval", "--routes", "r.toml", "--data", "d.jsonl", "--json"],
                Ok(Command::Eval {
                    routes: Some("r.toml".into()),
                    data: "d.jsonl".into(),
                    json: true,
                    price_per_mtok_in: None,
                    price_per_mtok_out: None,
                }),
            ),
            (
                &[
                    "eval",
                    "--data",
                    "d.jsonl",
                    "--routes",
                    "r.toml",
                    "--price-per-mtok-in",
                    "0.8",
                    "--price-per-mtok-out",
                    "4",
                ],
                Ok(Command::Eval {
                    routes: Some("r.toml".into()),
                    data: "d.jsonl".into(),
                    json: false,
                    price_per_mtok_in: Some(crate::tune::Number(0.8)),
                    price_per_mtok_out: Some(crate::tune::Number(4.0)),
                }),
            ),
            // Without a routes file: ROUTER_CONFIG, else the embedded catalogue.
            (
                &["eval", "--data", "d.jsonl"],
                Ok(Command::Eval {
                    routes: None,
                    data: "d.jsonl".into(),
                    json: false,
                    price_per_mtok_in: None,
                    price_per_mtok_out: None,
                }),
            ),
            (&["eval", "--routes", "r.toml"], Err(())),
            (
                &[
                    "eval",
                    "--routes",
                    "r",
                    "--data",
                    "d",
                    "--price-per-mtok-in",
                    "-1",
                ],
                Err(()),
            ),
            (
                &["eval", "--routes", "r", "--data", "d", "--out", "o"],
                Err(()),
            ),
            (
                &["keywords", "--data", "d.jsonl"],
                Ok(Command::Keywords {
                    data: "d.jsonl".into(),
                    out: None,
                    force: false,
                    min_precision: None,
                    min_support: None,
                }),
            ),
            (
                &[
                    "keywords",
                    "--data",
                    "d.jsonl",
                    "--out",
                    "r.toml",
                    "--force",
                    "--min-precision",
                    "0.98",
                    "--min-support",
                    "5",
                ],
                Ok(Command::Keywords {
                    data: "d.jsonl".into(),
                    out: Some("r.toml".into()),
                    force: true,
                    min_precision: Some(crate::tune::Number(0.98)),
                    min_support: Some(5),
                }),
            ),
            (&["keywords"], Err(())),
            (&["keywords", "--data", "d", "--force"], Err(())),
            (
                &["eval", "--data", "d", "--force", "--config", "r"],
                Err(()),
            ),
            (
                &["eval", "--config", "r.toml", "--data", "d.jsonl"],
                Ok(Command::Eval {
                    routes: Some("r.toml".into()),
                    data: "d.jsonl".into(),
                    json: false,
                    price_per_mtok_in: None,
                    price_per_mtok_out: None,
                }),
            ),
            (&["keywords", "--data", "d", "--min-support", "x"], Err(())),
            (&["keywords", "--data", "d", "--json"], Err(())),
            (&["check", "--data", "d"], Err(())),
        ];
        for (args, want) in cases {
            let got = parse(args.iter().copied()).map_err(|_| ());
            assert_eq!(got, want, "args {args:?}");
        }
    }
}
