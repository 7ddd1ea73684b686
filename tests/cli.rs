//! The command line as a person uses it: the real binary, its stdout, stderr and exit code.
//! A one-shot command prints its answer and, on failure, one error line; `check` warns about
//! what is legal but probably a mistake; `keywords` never overwrites a file unasked and says
//! when its data is too thin; a model that cannot be reached gives a short, stable reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_agent-router"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir());
    c
}

/// A fresh directory for one test, removed when the test ends.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh directory for one test.
fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("agent-router-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("the binary runs");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    (out, stdout, stderr)
}

#[test]
fn route_prints_its_answer_and_nothing_else() {
    let (out, stdout, stderr) = run(bin().args(["route", "What are my AWS costs?"]));
    assert!(out.status.success(), "{stderr}");
    let d: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is one JSON value");
    assert_eq!(d["agent"], "cost");
    assert_eq!(stderr, "", "no log lines around the answer");
}

#[test]
fn a_failure_is_one_plain_line() {
    let (out, stdout, stderr) = run(bin().args(["check", "--config", "/no/such/routes.toml"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with("agent-router: cannot read routes file /no/such/routes.toml"),
        "{stderr:?}"
    );
    // A bad setting fails the start with the variable's name, once.
    let (out, _, stderr) = run(bin()
        .args(["route", "hi"])
        .env("ROUTER_METRICS", "sometimes"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.contains("ROUTER_METRICS=\"sometimes\""),
        "{stderr:?}"
    );
}

#[test]
fn check_warns_about_agents_without_keywords_and_unknown_targets() {
    let dir = scratch("check");
    let routes = dir.join("routes.toml");
    std::fs::write(
        &routes,
        "default_agent = \"general\"\n[[agents]]\nname = \"cost\"\ndescription = \"d\"\nkeywords = [\"bill\"]\n[[agents]]\nname = \"legal\"\ndescription = \"contracts\"\n[[agents]]\nname = \"general\"\ndescription = \"d\"\n",
    )
    .unwrap();
    let (out, stdout, stderr) = run(bin()
        .args(["check", "--config"])
        .arg(&routes)
        .env("ROUTER_TARGET_COSTS", "cost-fn"));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("routes file OK"), "{stdout}");
    assert!(
        stdout.contains("warning: agent \"legal\" has no keywords"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: ROUTER_TARGET_COSTS is set but names no agent"),
        "{stdout}"
    );
    assert!(!stdout.contains("\"general\" has no keywords"), "{stdout}");
}

fn write_labelled(path: &Path, per_agent: usize) {
    let mut lines = String::new();
    for i in 0..per_agent {
        lines.push_str(&format!(
            "{{\"query\": \"what is my bill for month {i}\", \"agent\": \"cost\"}}\n"
        ));
        lines.push_str(&format!(
            "{{\"query\": \"show the alarm for host {i}\", \"agent\": \"monitoring\"}}\n"
        ));
    }
    std::fs::write(path, lines).unwrap();
}

#[test]
fn keywords_refuses_to_overwrite_and_warns_about_thin_data() {
    let dir = scratch("keywords");
    let data = dir.join("labelled.jsonl");
    write_labelled(&data, 24);
    let out_file = dir.join("routes.toml");
    std::fs::write(&out_file, "keep me").unwrap();
    let (out, _, stderr) = run(bin()
        .args(["keywords", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out_file));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "keep me");

    let (out, _, stderr) = run(bin()
        .args(["keywords", "--force", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out_file));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: cost has only 24 examples"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: monitoring has only 24 examples"),
        "{stderr}"
    );
    assert!(
        std::fs::read_to_string(&out_file)
            .unwrap()
            .contains("[[agents]]")
    );

    // Enough data: no warning. `eval` takes the file by --config (or --routes).
    write_labelled(&data, 40);
    let (out, _, stderr) = run(bin()
        .args(["keywords", "--force", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out_file));
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning:"), "{stderr}");
    let (out, stdout, stderr) = run(bin()
        .args(["eval", "--config"])
        .arg(&out_file)
        .arg("--data")
        .arg(&data));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("fast-path coverage"), "{stdout}");

    // `--out x.json` writes the same routes in JSON, which `eval` reads to the same report.
    let json_file = dir.join("routes.json");
    let (out, _, stderr) = run(bin()
        .args(["keywords", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&json_file));
    assert!(out.status.success(), "{stderr}");
    assert!(
        std::fs::read_to_string(&json_file)
            .unwrap()
            .starts_with('{')
    );
    let (out, json_stdout, stderr) = run(bin()
        .args(["eval", "--config"])
        .arg(&json_file)
        .arg("--data")
        .arg(&data));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        json_stdout.replace(&*json_file.to_string_lossy(), "ROUTES"),
        stdout.replace(&*out_file.to_string_lossy(), "ROUTES")
    );
}

#[test]
fn an_unreachable_model_gives_a_short_stable_reason_and_one_bounded_log_line() {
    // Nothing listens on port 9 of the loopback address: the connection is refused at once.
    let (out, stdout, stderr) = run(bin()
        .args(["route", "tell me something unrelated"])
        .env("ROUTER_LLM", "on")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://127.0.0.1:9")
        .env("AWS_LAMBDA_LOG_FORMAT", "Text"));
    assert!(out.status.success(), "{stderr}");
    let d: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(d["routing_method"], "default");
    assert_eq!(d["fallback_reason"], "llm_unavailable");
    let reason = d["reason"].as_str().unwrap();
    assert_eq!(
        reason,
        "the LLM tier failed open: the model service could not be reached (network, region or credentials)"
    );
    let warn: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("LLM tier failed open"))
        .collect();
    assert_eq!(warn.len(), 1, "{stderr}");
    assert!(warn[0].len() <= 600, "log line of {} bytes", warn[0].len());
    assert!(!warn[0].contains("ConnectorError"), "{}", warn[0]);
}

#[test]
fn route_explain_is_readable() {
    let (out, stdout, stderr) = run(bin().args([
        "route",
        "--explain",
        "how much are CloudWatch alarms and dashboards costing?",
    ]));
    assert!(out.status.success(), "{stderr}");
    let (json, text) = stdout
        .split_once("\n\n")
        .expect("decision, then the explanation");
    let d: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(d["routing_method"], "default");
    assert!(text.starts_with("fast path: ambiguous\n"), "{text}");
    assert!(
        text.contains("cost") && text.contains("monitoring"),
        "{text}"
    );
    assert!(text.contains("costing (+1.25)"), "{text}");
    assert!(text.contains("thresholds: min_score"), "{text}");
}

/// A reader that stops early (`agent-router check | head -1`) ends the command quietly: no
/// panic, no error line, exit 0.
#[test]
fn a_closed_stdout_is_not_a_failure() {
    use std::process::Stdio;
    for args in [
        &["check"][..],
        &["route", "What are my AWS costs?"],
        &["--help"],
    ] {
        let mut child = bin()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        // Closed before the command writes its answer (it first loads the catalogue).
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("it ends");
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

/// `eval` without a routes file measures the routes every other command uses: ROUTER_CONFIG's,
/// else the embedded catalogue, so the default can be judged on one's own questions.
#[test]
fn eval_defaults_to_the_routes_of_every_command() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data/awsops/extra.jsonl");
    let (out, stdout, stderr) = run(bin().args(["eval", "--data", data, "--json"]));
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(report["unknown_labels"], serde_json::json!({}), "{report}");
    let dir = scratch("eval-default");
    let routes = dir.join("routes.toml");
    std::fs::write(
        &routes,
        "default_agent = \"other\"\n[[agents]]\nname = \"cost\"\ndescription = \"Money.\"\n\
         keywords = [\"bill\"]\n[[agents]]\nname = \"other\"\ndescription = \"The rest.\"\n",
    )
    .unwrap();
    let (out, stdout, stderr) = run(bin()
        .env("ROUTER_CONFIG", &routes)
        .args(["eval", "--data", data, "--json"]));
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    // ROUTER_CONFIG's file has no security agent: its questions are labels it does not know.
    assert!(
        report["unknown_labels"]["security"].as_u64() > Some(0),
        "{report}"
    );
}
