//! The deployment files stay consistent with the package, without Docker or AWS.
//!
//! - `Dockerfile` / `.dockerignore`, read as text: the binary it builds and copies is this
//!   package's, every path it copies exists and is in the build context, every file the sources
//!   `include_str!` is copied, the dependency-layer stubs cover every target the manifests name,
//!   the builder pins glibc 2.34 and a new-enough Rust, and the final stage is the Lambda base
//!   image plus the binary and nothing else.
//! - `infra/template.yaml`, parsed as YAML (it uses long-form `Fn::` intrinsics, so a generic YAML
//!   parser reads it): IAM grants only `bedrock:InvokeModel` and `lambda:InvokeFunction`, on
//!   explicit ARNs with no wildcard; the environment holds only variables the binary reads; the
//!   API's paths are the router's endpoints (checked by sending each one through the handler);
//!   GET /route alone is cached, keyed on `q`; canary, provisioned concurrency and rollback alarms
//!   are wired; alarms and dashboard use only metrics the router emits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use agent_router::api::{Api, ApiRequest};
use agent_router::{Catalogue, FallbackReason, Router, RoutingMethod};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn manifest() -> toml::Table {
    read("Cargo.toml").parse().expect("Cargo.toml parses")
}

// ------------------------------------------------------------------------------------------------
// Dockerfile
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

#[derive(Debug)]
struct Stage {
    flags: Vec<String>,
    image: String,
    name: Option<String>,
    body: Vec<Instruction>,
}

/// Instructions with continuation lines joined; comments and blank lines dropped.
fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        // Docker drops comment lines, also inside a continued instruction.
        if trimmed.starts_with('#') || (current.is_empty() && trimmed.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((&current, ""));
                out.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_owned(),
                });
                current.clear();
            }
        }
    }
    assert!(current.is_empty(), "Dockerfile ends inside an instruction");
    out
}

/// The global `ARG`s (before the first `FROM`) and the stages.
fn dockerfile() -> (Vec<Instruction>, Vec<Stage>) {
    let mut globals = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for i in instructions(&read("Dockerfile")) {
        if i.keyword == "FROM" {
            let words: Vec<&str> = i.args.split_whitespace().collect();
            let flags: Vec<String> = words
                .iter()
                .take_while(|w| w.starts_with("--"))
                .map(|w| w.to_string())
                .collect();
            let rest = &words[flags.len()..];
            let name = match rest {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                [_] => None,
                _ => panic!("unexpected FROM {:?}", i.args),
            };
            stages.push(Stage {
                flags,
                image: rest[0].to_owned(),
                name,
                body: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.body.push(i);
        } else {
            globals.push(i);
        }
    }
    assert!(stages.len() >= 2, "expected a builder and a runtime stage");
    (globals, stages)
}

fn runs(stage: &Stage) -> Vec<&str> {
    stage
        .body
        .iter()
        .filter(|i| i.keyword == "RUN")
        .map(|i| i.args.as_str())
        .collect()
}

/// `COPY` instructions of a stage as (flags, sources, destination).
fn copies(stage: &Stage) -> Vec<(Vec<String>, Vec<String>, String)> {
    stage
        .body
        .iter()
        .filter(|i| i.keyword == "COPY" || i.keyword == "ADD")
        .map(|i| {
            assert_eq!(i.keyword, "COPY", "use COPY, not ADD: {:?}", i.args);
            let words: Vec<String> = i.args.split_whitespace().map(str::to_owned).collect();
            let flags: Vec<String> = words
                .iter()
                .take_while(|w| w.starts_with("--"))
                .cloned()
                .collect();
            let mut paths = words[flags.len()..].to_vec();
            let dest = paths.pop().expect("COPY has a destination");
            assert!(!paths.is_empty(), "COPY without source: {:?}", i.args);
            (flags, paths, dest)
        })
        .collect()
}

fn builder_and_runtime() -> (Stage, Stage) {
    let (_, mut stages) = dockerfile();
    let runtime = stages.pop().expect("final stage");
    let builder = stages
        .into_iter()
        .find(|s| s.name.as_deref() == Some("builder"))
        .expect("a stage named builder");
    (builder, runtime)
}

#[test]
fn dockerfile_builds_and_ships_this_packages_binary() {
    let m = manifest();
    let package = m["package"]["name"].as_str().unwrap();
    let bins = m["bin"].as_array().expect("[[bin]] in Cargo.toml");
    assert_eq!(bins.len(), 1, "one binary to ship");
    let bin = bins[0]["name"].as_str().unwrap();
    let (builder, runtime) = builder_and_runtime();

    let build = format!("cargo build --release --locked -p {package} --bin {bin}");
    let builds = runs(&builder).iter().filter(|r| r.contains(&build)).count();
    assert_eq!(
        builds, 2,
        "the dependency layer and the real build both run {build:?}"
    );

    let from_builder: Vec<_> = copies(&runtime)
        .into_iter()
        .filter(|(flags, _, _)| flags.iter().any(|f| f == "--from=builder"))
        .collect();
    assert_eq!(
        from_builder,
        vec![(
            vec!["--from=builder".to_owned()],
            vec![format!("/build/target/release/{bin}")],
            "/var/runtime/bootstrap".to_owned()
        )],
        "the runtime stage takes exactly the release binary, as the runtime's bootstrap"
    );
    // The builder's WORKDIR is where that path comes from.
    assert!(
        builder
            .body
            .iter()
            .any(|i| i.keyword == "WORKDIR" && i.args == "/build"),
        "builder works in /build"
    );
}

#[test]
fn final_stage_is_the_lambda_base_and_the_binary_only() {
    let (_, runtime) = builder_and_runtime();
    assert_eq!(runtime.image, "public.ecr.aws/lambda/provided:al2023");
    let allowed = ["COPY", "RUN", "ENTRYPOINT", "CMD"];
    for i in &runtime.body {
        assert!(
            allowed.contains(&i.keyword.as_str()),
            "runtime stage has {} {}",
            i.keyword,
            i.args
        );
    }
    let copies = copies(&runtime);
    assert_eq!(copies.len(), 1, "one COPY: the binary");
    assert!(
        copies[0].0.iter().any(|f| f == "--from=builder"),
        "nothing from the build context"
    );
    for r in runs(&runtime) {
        // Exec form running the shipped binary only: no shell, no package manager, no toolchain.
        let argv: Vec<String> =
            serde_json::from_str(r).unwrap_or_else(|_| panic!("RUN must be exec form: {r}"));
        assert_eq!(argv[0], "/var/runtime/bootstrap", "{r}");
    }
    let text: String = runtime
        .body
        .iter()
        .map(|i| format!("{} {}\n", i.keyword, i.args))
        .collect();
    for tool in [
        "cargo", "rustup", "rustc", "dnf", "yum", "microdnf", "gcc", "apt", "pip", "curl", "make",
    ] {
        assert!(
            !text
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w == tool),
            "runtime stage mentions {tool}:\n{text}"
        );
    }
    let entry = runtime
        .body
        .iter()
        .find(|i| i.keyword == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    assert_eq!(entry.args, r#"["/lambda-entrypoint.sh"]"#);
    let cmd = runtime
        .body
        .iter()
        .find(|i| i.keyword == "CMD")
        .expect("CMD");
    let argv: Vec<String> = serde_json::from_str(&cmd.args).expect("CMD in exec form");
    assert_eq!(
        argv.len(),
        1,
        "the entrypoint takes exactly one handler argument"
    );
}

#[test]
fn builder_targets_al2023_glibc_and_a_new_enough_rust() {
    let (globals, stages) = dockerfile();
    let (builder, _) = builder_and_runtime();
    assert_eq!(builder.image, "public.ecr.aws/amazonlinux/amazonlinux:2023");

    // Architecture: the platform being built decides it (sam build passes the function's), so no
    // stage pins one; ARCH, when given, must agree with it or the build stops.
    assert!(
        globals
            .iter()
            .any(|i| i.keyword == "ARG" && i.args == "ARCH="),
        "global ARG ARCH="
    );
    assert!(
        builder
            .body
            .iter()
            .any(|i| i.keyword == "ARG" && i.args == "ARCH")
    );
    for s in &stages {
        assert!(s.flags.is_empty(), "stage {:?} pins {:?}", s.name, s.flags);
    }
    let arch_check = runs(&builder)
        .into_iter()
        .find(|r| r.contains("uname -m"))
        .expect("a RUN that checks ARCH against the machine");
    for needle in [
        "${ARCH:-",
        "x86_64|amd64",
        "arm64|aarch64",
        "exit 1",
        "--platform linux/${ARCH}",
    ] {
        assert!(arch_check.contains(needle), "{needle} in {arch_check}");
    }

    // Rust: at least the package's rust-version.
    let version = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    let msrv = manifest()["package"]["rust-version"]
        .as_str()
        .unwrap()
        .to_owned();
    let pinned = builder
        .body
        .iter()
        .find_map(|i| {
            (i.keyword == "ARG")
                .then(|| i.args.strip_prefix("RUST_VERSION="))
                .flatten()
        })
        .expect("ARG RUST_VERSION=x.y.z in the builder");
    assert!(
        version(pinned) >= version(&msrv),
        "RUST_VERSION {pinned} < rust-version {msrv}"
    );
    assert!(
        runs(&builder)
            .iter()
            .any(|r| r.contains("--default-toolchain \"${RUST_VERSION}\""))
    );

    // glibc: the build fails if the binary needs a symbol newer than 2.34.
    let real_build = runs(&builder).into_iter().last().unwrap();
    assert!(
        real_build.contains("objdump -T target/release/"),
        "{real_build}"
    );
    assert!(real_build.contains("-le 34"), "{real_build}");
}

/// Whether `.dockerignore` (an allow-list after `*`) lets `path` into the build context.
fn in_context(ignore: &[&str], path: &str) -> bool {
    let path = path.trim_end_matches('/');
    ignore
        .iter()
        .rev()
        .find_map(|rule| {
            let (keep, pattern) = match rule.strip_prefix('!') {
                Some(p) => (true, p.trim_end_matches('/')),
                None => (false, rule.trim_end_matches('/')),
            };
            let hit = pattern == "*" || path == pattern || path.starts_with(&format!("{pattern}/"));
            hit.then_some(keep)
        })
        .unwrap_or(true)
}

#[test]
fn dockerfile_copies_existing_paths_that_are_in_the_build_context() {
    let ignore_text = read(".dockerignore");
    let ignore: Vec<&str> = ignore_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(ignore.first(), Some(&"*"), ".dockerignore is an allow-list");
    for unwanted in [
        "target",
        ".git",
        "tests/fixtures",
        "bench/coldstart",
        "infra/template.yaml",
    ] {
        assert!(
            !in_context(&ignore, unwanted),
            "{unwanted} should stay out of the build context"
        );
    }
    let (builder, _) = builder_and_runtime();
    let mut copied = Vec::new();
    for (flags, sources, _) in copies(&builder) {
        assert!(flags.is_empty(), "builder copies from the context only");
        for src in sources {
            let rel = src.trim_start_matches("./").to_owned();
            assert!(
                repo().join(&rel).exists(),
                "COPY {rel}: no such path in the repository"
            );
            assert!(
                in_context(&ignore, &rel),
                "COPY {rel}: excluded by .dockerignore"
            );
            copied.push(rel);
        }
    }
    for must in ["Cargo.toml", "Cargo.lock", "src", "prompts"] {
        assert!(
            copied.iter().any(|c| c == must),
            "the builder must copy {must}"
        );
    }
    // Every workspace member's manifest is there, or Cargo cannot load the workspace.
    let m = manifest();
    for member in m["workspace"]["members"].as_array().unwrap() {
        let member = member.as_str().unwrap();
        if member != "." {
            let manifest = format!("{member}/Cargo.toml");
            assert!(
                copied.contains(&manifest),
                "the builder must copy {manifest}"
            );
        }
    }
    // The build script, and the file it converts, are copied.
    if repo().join("build.rs").is_file() {
        assert!(
            copied.contains(&"build.rs".to_owned()),
            "COPY build.rs: {copied:?}"
        );
        assert!(
            read("build.rs").contains("prompts/routes.toml")
                && copied.iter().any(|c| c == "prompts"),
            "build.rs reads prompts/routes.toml: COPY prompts"
        );
    }
    // Every file the sources compile in (include_str!/include_bytes!) is inside a copied path.
    let mut includes = Vec::new();
    collect_includes(&repo().join("src"), &mut includes);
    assert!(includes.len() >= 2, "found {includes:?}");
    for inc in includes {
        let rel = inc
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        assert!(
            copied
                .iter()
                .any(|c| rel == *c || rel.starts_with(&format!("{c}/"))),
            "{rel} is compiled into the binary but not copied into the builder"
        );
    }
}

fn collect_includes(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_includes(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for macro_name in ["include_str!(\"", "include_bytes!(\""] {
                for (at, _) in text.match_indices(macro_name) {
                    let rest = &text[at + macro_name.len()..];
                    let target = &rest[..rest.find('"').unwrap()];
                    let resolved = path.parent().unwrap().join(target);
                    let resolved = resolved
                        .canonicalize()
                        .unwrap_or_else(|e| panic!("{} includes {target}: {e}", path.display()));
                    out.push(resolved);
                }
            }
        }
    }
}

#[test]
fn dependency_layer_stubs_every_target_the_manifests_name() {
    let (builder, _) = builder_and_runtime();
    let stub = runs(&builder)
        .into_iter()
        .find(|r| r.contains("fn main() {}"))
        .expect("a RUN that writes stub sources");
    let m = manifest();
    let mut needed = vec![
        m["lib"]["path"].as_str().unwrap().to_owned(),
        m["bin"][0]["path"].as_str().unwrap().to_owned(),
    ];
    for bench in m
        .get("bench")
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
    {
        let name = bench["name"].as_str().unwrap();
        let path = bench
            .get("path")
            .and_then(|p| p.as_str())
            .map(str::to_owned);
        needed.push(path.unwrap_or_else(|| format!("benches/{name}.rs")));
    }
    // The build script (Cargo finds build.rs by itself): stubbed so its build dependencies
    // land in the dependency layer.
    if repo().join("build.rs").is_file() {
        needed.push("build.rs".to_owned());
    }
    for member in m["workspace"]["members"].as_array().unwrap() {
        let member = member.as_str().unwrap();
        if member != "." {
            let member_manifest: toml::Table =
                read(&format!("{member}/Cargo.toml")).parse().unwrap();
            assert!(
                member_manifest.get("bin").is_none() && member_manifest.get("lib").is_none(),
                "{member} names its own targets: stub them in the Dockerfile"
            );
            needed.push(format!("{member}/src/main.rs"));
        }
    }
    for path in needed {
        assert!(
            stub.contains(&format!("> {path}")) || stub.contains(&format!("touch {path}")),
            "the dependency layer must stub {path}:\n{stub}"
        );
    }
    // The stub crate's own artifacts go, so the real build cannot reuse them.
    assert!(stub.contains("rm -rf src"), "{stub}");
    assert!(
        stub.contains("target/release/.fingerprint/agent-router-*"),
        "{stub}"
    );
}

// ------------------------------------------------------------------------------------------------
// SAM template
// ------------------------------------------------------------------------------------------------

fn template() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| {
        let text = read("infra/template.yaml");
        assert!(
            !text
                .lines()
                .any(|l| l.split('#').next().unwrap_or("").contains(": !")),
            "use long-form intrinsics (Ref:, Fn::Sub:), not short tags"
        );
        serde_yaml_ng::from_str(&text).expect("infra/template.yaml is plain YAML")
    })
}

fn resource(name: &str) -> &'static Value {
    let r = &template()["Resources"][name];
    assert!(r.is_object(), "no resource {name}");
    r
}

fn parameter(name: &str) -> &'static Value {
    let p = &template()["Parameters"][name];
    assert!(p.is_object(), "no parameter {name}");
    p
}

fn default_u64(name: &str) -> u64 {
    parameter(name)["Default"]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} has a numeric default"))
}

fn function() -> &'static Value {
    &resource("RouterFunction")["Properties"]
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

/// `${Name}` references in a `Fn::Sub` string, pseudo parameters and attributes excluded.
fn sub_vars(s: &str) -> Vec<String> {
    s.split("${")
        .skip(1)
        .filter_map(|p| p.split_once('}').map(|(v, _)| v.to_owned()))
        .filter(|v| !v.starts_with("AWS::") && !v.contains('.'))
        .collect()
}

/// An `AllowedPattern` that cannot match `*`: anchored, no `*` anywhere, and `.` only inside
/// character classes.
fn pattern_excludes_wildcards(pattern: &str) -> bool {
    let mut in_class = false;
    let mut escaped = false;
    for c in pattern.chars() {
        match (escaped, in_class, c) {
            (true, ..) => escaped = false,
            (false, _, '\\') => escaped = true,
            (false, _, '*') => return false,
            (false, false, '.') => return false,
            (false, false, '[') => in_class = true,
            (false, true, ']') => in_class = false,
            _ => {}
        }
    }
    pattern.starts_with('^') && pattern.ends_with('$')
}

/// Checks one IAM resource entry has no wildcard, following parameters it names.
fn assert_no_wildcard(resource: &Value, what: &str) {
    match resource {
        Value::String(s) => assert!(!s.contains('*'), "{what}: {s}"),
        Value::Object(o) if o.contains_key("Fn::Sub") => {
            let s = o["Fn::Sub"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: Fn::Sub string form"));
            assert!(!s.contains('*'), "{what}: {s}");
            for var in sub_vars(s) {
                let p = parameter(&var);
                let default = p["Default"].as_str().unwrap_or_default();
                assert!(!default.contains('*'), "{what}: {var} default {default}");
                let pattern = p["AllowedPattern"].as_str().unwrap_or_else(|| {
                    panic!("{what}: parameter {var} goes into an ARN and needs an AllowedPattern")
                });
                assert!(
                    pattern_excludes_wildcards(pattern),
                    "{what}: {var} pattern {pattern} allows *"
                );
            }
        }
        Value::Object(o) if o.contains_key("Ref") => {
            let name = o["Ref"].as_str().unwrap();
            let p = parameter(name);
            assert_eq!(p["Type"], "CommaDelimitedList", "{what}: {name}");
            let default = p["Default"].as_str().unwrap();
            for arn in default.split(',') {
                assert!(!arn.contains('*'), "{what}: {name} default has {arn}");
                assert!(
                    arn.trim().starts_with("arn:"),
                    "{what}: {name} default has {arn}"
                );
            }
            let pattern = p["AllowedPattern"].as_str();
            if let Some(pattern) = pattern {
                assert!(
                    pattern_excludes_wildcards(pattern),
                    "{what}: {name} pattern {pattern}"
                );
            }
        }
        // The ARN of a resource of this stack: exactly one resource, no wildcard possible.
        Value::Object(o) if o.contains_key("Fn::GetAtt") => {
            let target = &o["Fn::GetAtt"];
            assert_eq!(
                target[1],
                "Arn",
                "{what}: {other_target}",
                other_target = target
            );
            let name = target[0].as_str().unwrap();
            assert!(
                template()["Resources"].get(name).is_some(),
                "{what}: {name} is a resource of this stack"
            );
        }
        other => panic!("{what}: unexpected resource {other}"),
    }
}

fn statements() -> Vec<Value> {
    let mut out = Vec::new();
    for policy in function()["Policies"].as_array().expect("Policies list") {
        assert!(
            policy.is_object(),
            "inline policy documents only, got {policy}"
        );
        out.extend(as_list(&policy["Statement"]));
    }
    out
}

#[test]
fn iam_grants_bedrock_lambda_and_the_session_table_on_explicit_arns_only() {
    let statements = statements();
    let mut granted: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for st in &statements {
        assert_eq!(st["Effect"], "Allow");
        assert!(
            st.get("NotAction").is_none() && st.get("NotResource").is_none(),
            "{st}"
        );
        let actions: Vec<String> = as_list(&st["Action"])
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        for a in &actions {
            assert!(!a.contains('*'), "wildcard action {a}");
            if a.starts_with("bedrock:") || a.starts_with("lambda:") || a.starts_with("dynamodb:") {
                for r in as_list(&st["Resource"]) {
                    assert_no_wildcard(&r, a);
                    granted.entry(a.clone()).or_default().push(r);
                }
            }
        }
    }
    assert_eq!(
        granted.keys().cloned().collect::<Vec<_>>(),
        vec![
            "bedrock:InvokeModel".to_owned(),
            "dynamodb:GetItem".to_owned(),
            "dynamodb:PutItem".to_owned(),
            "lambda:InvokeFunction".to_owned()
        ],
        "the router needs exactly these actions"
    );
    // Sessions: read and replace one item, on the stack's own table and nothing else.
    let table = vec![json!({"Fn::GetAtt": ["SessionTable", "Arn"]})];
    assert_eq!(granted["dynamodb:GetItem"], table);
    assert_eq!(granted["dynamodb:PutItem"], table);
    let t = &resource("SessionTable")["Properties"];
    assert_eq!(t["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        t["KeySchema"],
        json!([{"AttributeName": "session_id", "KeyType": "HASH"}]),
        "the key the adapter writes"
    );
    assert_eq!(
        t["TimeToLiveSpecification"],
        json!({"AttributeName": "expires_at", "Enabled": true}),
        "DynamoDB expires idle sessions on the adapter's TTL attribute"
    );
    assert_eq!(
        parameter("SessionTablePointInTimeRecovery")["Default"],
        "false"
    );
    let env = &function()["Environment"]["Variables"];
    assert_eq!(env["ROUTER_SESSION_STORE"], "dynamodb");
    assert_eq!(env["ROUTER_SESSION_TABLE"], json!({"Ref": "SessionTable"}));

    // Bedrock: the configured inference profile, and the foundation models it fans out to.
    let bedrock = &granted["bedrock:InvokeModel"];
    let profile = json!({"Fn::Sub": "arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}:inference-profile/${ModelId}"});
    assert!(bedrock.contains(&profile), "{bedrock:?}");
    assert!(
        bedrock.contains(&json!({"Ref": "BedrockFoundationModelArns"})),
        "{bedrock:?}"
    );
    let model_id = parameter("ModelId")["Default"].as_str().unwrap();
    assert_eq!(
        model_id,
        agent_router::aws::DEFAULT_MODEL_ID,
        "template and binary agree on the model"
    );
    let (geo, model) = model_id.split_once('.').unwrap();
    assert_eq!(geo, "us");
    let arns: Vec<&str> = parameter("BedrockFoundationModelArns")["Default"]
        .as_str()
        .unwrap()
        .split(',')
        .collect();
    let regions: BTreeSet<&str> = arns
        .iter()
        .map(|arn| {
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            assert_eq!(&parts[..3], &["arn", "aws", "bedrock"], "{arn}");
            assert_eq!(parts[4], "", "foundation models have no account: {arn}");
            assert_eq!(parts[5], format!("foundation-model/{model}"), "{arn}");
            parts[3]
        })
        .collect();
    assert_eq!(
        regions,
        BTreeSet::from(["us-east-1", "us-east-2", "us-west-2"]),
        "the us. profile's destinations"
    );

    // Lambda: one ARN per agent target of the default catalogue, the same parameter feeding the
    // agent's ROUTER_TARGET_ variable, whose default is the catalogue's target.
    let lambda = &granted["lambda:InvokeFunction"];
    let env = &function()["Environment"]["Variables"];
    let catalogue = Catalogue::embedded_default().unwrap();
    let mut expected = Vec::new();
    for agent in catalogue.agents() {
        let Some(target) = &agent.target else {
            continue;
        };
        let var = agent_router::app::settings::target_env_name(&agent.name);
        let param = env[&var]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{var} is set from a parameter"));
        assert_eq!(
            parameter(param)["Default"].as_str(),
            Some(target.as_str()),
            "{param}"
        );
        expected.push(json!({"Fn::Sub": format!(
            "arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:${{{param}}}"
        )}));
    }
    assert_eq!(lambda, &expected);
}

#[test]
fn function_environment_holds_only_variables_the_binary_reads() {
    // The variables the binary reads: every name its start-up settings ask for.
    let asked = std::sync::Mutex::new(BTreeSet::new());
    agent_router::app::settings::Settings::read(
        |name: &str| {
            asked.lock().unwrap().insert(name.to_owned());
            None
        },
        BTreeMap::new(),
        |_| false,
    )
    .expect("defaults are valid");
    // Logging is set up before the settings are read (so it can report them): its variable too.
    agent_router::ops::logging::log_level(|name: &str| {
        asked.lock().unwrap().insert(name.to_owned());
        None
    });
    let asked = asked.into_inner().unwrap();
    let catalogue = Catalogue::embedded_default().unwrap();
    let targets: BTreeSet<String> = catalogue
        .agents()
        .iter()
        .map(|a| agent_router::app::settings::target_env_name(&a.name))
        .collect();
    let env = function()["Environment"]["Variables"].as_object().unwrap();
    for (name, value) in env {
        assert!(
            targets.contains(name) || asked.contains(name),
            "{name} is not read by the binary"
        );
        // From a parameter, directly or through a condition on one (ROUTER_LAMBDA_STREAMING
        // follows QueryTransferMode); every value it can take is valid for the binary.
        match value.get("Fn::If") {
            Some(choice) => {
                let condition = choice[0].as_str().unwrap();
                assert!(
                    template()["Conditions"].get(condition).is_some(),
                    "{name}: condition {condition}"
                );
                for branch in [&choice[1], &choice[2]] {
                    let v = branch.as_str().unwrap().to_owned();
                    let read = agent_router::app::settings::Settings::read(
                        |n: &str| (n == name).then(|| v.clone()),
                        BTreeMap::new(),
                        |_| false,
                    );
                    assert!(read.is_ok(), "{name}={v} is refused by the binary");
                }
            }
            None => assert!(
                value.get("Ref").is_some() || value.is_string(),
                "{name} comes from a parameter, a resource or a fixed value"
            ),
        }
    }
    for must in [
        agent_router::app::settings::CONFIG_ENV,
        "ROUTER_MODEL_ID",
        "ROUTER_LLM_DEADLINE_MS",
        "ROUTER_AGENT_TIMEOUT_MS",
        agent_router::ops::metrics::NAMESPACE_ENV,
    ] {
        assert!(env.contains_key(must), "environment lacks {must}");
    }
    // JSON logs (AWS_LAMBDA_LOG_FORMAT comes from LoggingConfig), into a group with retention.
    let logging = &function()["LoggingConfig"];
    assert_eq!(logging["LogFormat"], "JSON");
    assert_eq!(logging["LogGroup"], json!({"Ref": "FunctionLogGroup"}));
    assert_eq!(
        resource("FunctionLogGroup")["Properties"]["RetentionInDays"],
        json!({"Ref": "LogRetentionDays"})
    );
    assert_eq!(function()["PackageType"], "Image");
    assert_eq!(
        function()["Architectures"],
        json!([{"Ref": "Architecture"}])
    );
    assert_eq!(
        parameter("Architecture")["AllowedValues"],
        json!(["x86_64", "arm64"])
    );
    let meta = &resource("RouterFunction")["Metadata"];
    assert!(
        repo()
            .join("infra")
            .join(meta["DockerContext"].as_str().unwrap())
            .join(meta["Dockerfile"].as_str().unwrap())
            .is_file()
    );
}

#[test]
fn timeout_and_memory_fit_the_deadlines() {
    let timeout_ms = function()["Timeout"].as_u64().expect("literal Timeout") * 1000;
    // API Gateway REST integrations time out at 29 s: the router must answer before that.
    assert!(timeout_ms < 29_000, "Timeout {timeout_ms} ms");
    let llm = default_u64("LlmDeadlineMs");
    let agent_max = parameter("AgentTimeoutMs")["MaxValue"].as_u64().unwrap();
    // LLM safety margin 250 ms, agent safety margin 200 ms (README, "Configuration").
    assert!(
        llm + agent_max + 450 <= timeout_ms,
        "{llm} + {agent_max} + margins > {timeout_ms}"
    );
    assert_eq!(default_u64("LlmDeadlineMs"), 2000);
    assert_eq!(
        default_u64("AgentTimeoutMs"),
        agent_router::dispatch::DEFAULT_AGENT_TIMEOUT.as_millis() as u64
    );
    let memory = default_u64("MemorySize");
    assert!(
        (128..512).contains(&memory),
        "memory {memory} MB: ~8 MiB RSS needs no more"
    );
    assert_eq!(function()["MemorySize"], json!({"Ref": "MemorySize"}));
}

/// Sends one request through the handler, as API Gateway would with the stage prefix.
async fn status_of(api: &Api, method: &str, path: &str) -> u16 {
    let (query, body) = match method {
        "GET" => (
            vec![("q".to_owned(), "What are my AWS costs?".to_owned())],
            bytes::Bytes::new(),
        ),
        _ => (
            Vec::new(),
            bytes::Bytes::from_static(br#"{"query": "What are my AWS costs?", "dispatch": false}"#),
        ),
    };
    let req = ApiRequest {
        method: method.parse().unwrap(),
        path: format!("/prod{path}"),
        query,
        body,
        request_id: "deploy-test".into(),
        remaining: None,
    };
    api.handle(req).await.status().as_u16()
}

#[tokio::test]
async fn api_paths_are_the_routers_endpoints_and_only_get_route_is_cached() {
    let api = Api::new(Arc::new(
        Router::new(Catalogue::embedded_default().unwrap()).unwrap(),
    ));
    let api_props = &resource("RouterApi")["Properties"];
    let body = &api_props["DefinitionBody"];
    let paths = body["paths"].as_object().unwrap();
    let mut operations = BTreeSet::new();
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let method = method.to_ascii_uppercase();
            operations.insert(format!("{method} {path}"));
            assert_eq!(
                status_of(&api, &method, path).await,
                200,
                "{method} {path} through the handler"
            );
            let integration = &op["x-amazon-apigateway-integration"];
            assert_eq!(integration["type"], "aws_proxy");
            assert_eq!(integration["httpMethod"], "POST");
            if method == "POST" && path == "/query" {
                // Streamed when QueryTransferMode is STREAM: InvokeWithResponseStream's URI
                // and the STREAM transfer mode, both on the same condition as the router's
                // ROUTER_LAMBDA_STREAMING=query.
                let choice = &integration["uri"]["Fn::If"];
                assert_eq!(choice[0], "StreamQuery");
                let streamed = choice[1]["Fn::Sub"].as_str().unwrap();
                assert!(
                    streamed.ends_with(
                        "/2021-11-15/functions/${RouterFunction.Arn}:live/response-streaming-invocations"
                    ),
                    "{streamed}"
                );
                let buffered = choice[2]["Fn::Sub"].as_str().unwrap();
                assert!(buffered.ends_with("/functions/${RouterFunction.Arn}:live/invocations"));
                assert_eq!(
                    integration["responseTransferMode"],
                    json!({"Fn::If": ["StreamQuery", "STREAM", "BUFFERED"]})
                );
                assert_eq!(
                    function()["Environment"]["Variables"]["ROUTER_LAMBDA_STREAMING"],
                    json!({"Fn::If": ["StreamQuery", "query", "off"]})
                );
            } else {
                let uri = integration["uri"]["Fn::Sub"].as_str().unwrap();
                assert!(
                    uri.ends_with("/functions/${RouterFunction.Arn}:live/invocations"),
                    "{uri}: the live alias"
                );
                assert!(integration.get("responseTransferMode").is_none());
            }
            assert_eq!(
                op["security"],
                json!({"Fn::If": ["UseApiKey", [{"api_key": []}], [{"sigv4": []}]]}),
                "{method} {path}: authenticated"
            );
            let cache_keys = &integration["cacheKeyParameters"];
            if method == "GET" && path == "/route" {
                // Keyed on the session too (one conversation's decision is never served to
                // another) and on explain (a plain request never gets an explained answer).
                assert_eq!(
                    cache_keys,
                    &json!([
                        "method.request.querystring.q",
                        "method.request.querystring.session_id",
                        "method.request.querystring.explain"
                    ])
                );
                assert!(
                    op["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == "session_id" && p["in"] == "query")
                );
                assert!(
                    op["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == "q" && p["in"] == "query")
                );
            } else {
                assert!(cache_keys.is_null(), "{method} {path} has cache keys");
            }
        }
    }
    assert_eq!(
        operations,
        BTreeSet::from([
            "GET /route".to_owned(),
            "POST /route".to_owned(),
            "POST /query".to_owned()
        ])
    );
    let schemes = &body["components"]["securitySchemes"];
    assert_eq!(
        schemes["api_key"],
        json!({"type": "apiKey", "name": "x-api-key", "in": "header"})
    );
    assert_eq!(schemes["sigv4"]["x-amazon-apigateway-authtype"], "awsSigv4");

    // Stage: a 0.5 GB cache cluster, caching on for GET /route only, throttling everywhere.
    assert_eq!(api_props["CacheClusterSize"], "0.5");
    assert_eq!(
        api_props["CacheClusterEnabled"],
        json!({"Fn::If": ["HasApiCache", true, false]})
    );
    let settings = api_props["MethodSettings"].as_array().unwrap();
    let mut cached = Vec::new();
    for s in settings {
        assert!(
            s["ThrottlingRateLimit"].is_object() && s["ThrottlingBurstLimit"].is_object(),
            "{s}"
        );
        if s["CachingEnabled"] != json!(false) {
            cached.push((s["ResourcePath"].clone(), s["HttpMethod"].clone()));
            assert_eq!(s["CacheTtlInSeconds"], json!({"Ref": "ApiCacheTtlSeconds"}));
        }
    }
    assert_eq!(cached, vec![(json!("/~1route"), json!("GET"))]);
    assert!(settings.iter().any(|s| s["ResourcePath"] == "/*"
        && s["HttpMethod"] == "*"
        && s["CachingEnabled"] == false));
    assert!(
        api_props["AccessLogSetting"]["DestinationArn"].is_object(),
        "access logs"
    );
    // API keys come with a usage plan; IAM auth needs neither.
    for r in ["ApiKey", "ApiUsagePlan", "ApiUsagePlanKey"] {
        assert_eq!(resource(r)["Condition"], "UseApiKey", "{r}");
    }
    assert_eq!(
        parameter("ApiAuth")["AllowedValues"],
        json!(["API_KEY", "AWS_IAM"])
    );
    // API Gateway may invoke the live alias only.
    assert_eq!(
        resource("RouterApiInvokePermission")["Properties"]["FunctionName"],
        json!({"Ref": "RouterFunction.Alias"})
    );
}

fn alarms() -> BTreeMap<String, &'static Value> {
    template()["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(k, r)| (k.clone(), r))
        .collect()
}

#[test]
fn canary_provisioned_concurrency_and_rollback_alarms_are_wired() {
    let f = function();
    assert_eq!(f["AutoPublishAlias"], "live");
    assert_eq!(default_u64("ProvisionedConcurrency"), 2);
    assert_eq!(
        f["ProvisionedConcurrencyConfig"]["Fn::If"][1],
        json!({"ProvisionedConcurrentExecutions": {"Ref": "ProvisionedConcurrency"}})
    );
    let pref = &f["DeploymentPreference"];
    assert_eq!(pref["Type"], json!({"Ref": "DeploymentType"}));
    assert!(
        parameter("DeploymentType")["Default"]
            .as_str()
            .unwrap()
            .starts_with("Canary")
    );
    let wired: BTreeSet<String> = pref["Alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Ref"].as_str().unwrap().to_owned())
        .collect();
    // Every alarm is a rollback trigger but the second-opinion agreement alarm: an LLM that
    // disagrees more is a reason to review the routes, not a broken version.
    let all: BTreeSet<String> = alarms()
        .keys()
        .filter(|a| *a != "ShadowAgreementAlarm")
        .cloned()
        .collect();
    assert!(alarms().contains_key("ShadowAgreementAlarm"));
    assert_eq!(wired, all, "every other alarm is a rollback trigger");
    // Function errors and slowness, and what a bad version does without failing the function:
    // 5xx answers (dispatch) and LLM calls falling back (tests/deploy/test_sam_translation.py
    // checks they watch the new version only). Init duration is not among them: with
    // provisioned concurrency no init is reported on the canary, so it could never fire.
    for a in [
        "ErrorRateAlarm",
        "DurationP95Alarm",
        "ServerErrorRateAlarm",
        "LlmErrorRateAlarm",
    ] {
        assert!(all.contains(a), "missing {a}");
    }
    assert!(!all.contains("InitDurationAlarm"));
    // Defaults no looser than the original rollback plan: errors > 1 %, p95 > 30 s.
    assert!(default_u64("ErrorRateAlarmPercent") <= 1);
    assert!(default_u64("ServerErrorRateAlarmPercent") <= 5);
    assert!(default_u64("LlmErrorRateAlarmPercent") <= 10);
    assert!(default_u64("DurationP95AlarmMs") <= 30_000);
    assert!(default_u64("RouteLatencyP95AlarmMs") <= 30_000);
    // The Lambda-metric alarms watch the live alias.
    let alias_dims = json!([
        {"Name": "FunctionName", "Value": {"Ref": "RouterFunction"}},
        {"Name": "Resource", "Value": {"Fn::Sub": "${RouterFunction}:live"}}
    ]);
    assert_eq!(
        resource("DurationP95Alarm")["Properties"]["Dimensions"],
        alias_dims
    );
    assert_eq!(
        resource("DurationP95Alarm")["Properties"]["ExtendedStatistic"],
        "p95"
    );
    for m in resource("ErrorRateAlarm")["Properties"]["Metrics"]
        .as_array()
        .unwrap()
    {
        if let Some(stat) = m.get("MetricStat") {
            assert_eq!(stat["Metric"]["Dimensions"], alias_dims);
        }
    }
    // Optional target tracking on provisioned-concurrency utilisation of the alias.
    let target = resource("ProvisionedConcurrencyScalableTarget");
    assert_eq!(
        target["Properties"]["ResourceId"],
        json!({"Fn::Sub": "function:${RouterFunction}:live"})
    );
    assert_eq!(
        target["Properties"]["ScalableDimension"],
        "lambda:function:ProvisionedConcurrency"
    );
    let policy = &resource("ProvisionedConcurrencyScalingPolicy")["Properties"];
    assert_eq!(policy["PolicyType"], "TargetTrackingScaling");
    assert_eq!(
        policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]["PredefinedMetricType"],
        "LambdaProvisionedConcurrencyUtilization"
    );
}

/// Wire names of every routing method and fallback reason; a new variant fails to compile here.
fn routing_methods() -> Vec<&'static str> {
    let all = [
        RoutingMethod::Fast,
        RoutingMethod::Cache,
        RoutingMethod::Llm,
        RoutingMethod::Default,
        RoutingMethod::Session,
    ];
    for m in all {
        match m {
            RoutingMethod::Fast
            | RoutingMethod::Cache
            | RoutingMethod::Llm
            | RoutingMethod::Default
            | RoutingMethod::Session => {}
        }
    }
    all.iter().map(|m| m.as_str()).collect()
}

fn fallback_reasons() -> Vec<&'static str> {
    use FallbackReason::*;
    let all = [
        LlmDisabled,
        LlmTimeout,
        LlmThrottled,
        LlmError,
        LlmUnavailable,
        LlmUnrecognisedAnswer,
    ];
    for r in all {
        match r {
            LlmDisabled
            | LlmTimeout
            | LlmThrottled
            | LlmError
            | LlmUnavailable
            | LlmUnrecognisedAnswer => {}
        }
    }
    all.iter().map(|r| r.as_str()).collect()
}

#[test]
fn alarms_and_dashboard_use_only_metrics_the_router_emits() {
    let ns = json!({"Ref": "MetricsNamespace"});
    assert_eq!(
        parameter("MetricsNamespace")["Default"],
        agent_router::ops::metrics::DEFAULT_NAMESPACE
    );
    let mut ours: BTreeSet<&str> = agent_router::ops::metrics::METRIC_NAMES
        .iter()
        .copied()
        .collect();
    // InitDuration comes from the metric filters on the platform log records.
    for filter in ["InitDurationMetricFilter", "InitReportMetricFilter"] {
        let t = &resource(filter)["Properties"]["MetricTransformations"][0];
        assert_eq!(t["MetricNamespace"], ns);
        assert_eq!(t["MetricName"], "InitDuration");
        assert_eq!(
            resource(filter)["Properties"]["LogGroupName"],
            json!({"Ref": "FunctionLogGroup"})
        );
    }
    ours.insert("InitDuration");
    let reasons_on_the_wire = fallback_reasons();
    for (name, alarm) in alarms() {
        let p = &alarm["Properties"];
        if p["Namespace"] == ns {
            let metric = p["MetricName"].as_str().unwrap();
            assert!(
                ours.contains(metric),
                "{name} watches {metric}, which nothing emits"
            );
        }
        // Metric-math alarms: each router metric exists with the dimensions the router writes.
        for m in p["Metrics"].as_array().into_iter().flatten() {
            let metric = &m["MetricStat"]["Metric"];
            if metric["Namespace"] != ns {
                continue;
            }
            let metric_name = metric["MetricName"].as_str().unwrap();
            assert!(
                ours.contains(metric_name) && metric_name != "InitDuration",
                "{name} watches {metric_name}, which the router does not emit"
            );
            if name == "ShadowAgreementAlarm" {
                // Over every version: agreement is about the routes, not the version.
                assert_eq!(metric_name, "ShadowAgreement");
                assert!(metric.get("Dimensions").is_none(), "{name}");
                continue;
            }
            let dims: BTreeMap<&str, &Value> = metric["Dimensions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| (d["Name"].as_str().unwrap(), &d["Value"]))
                .collect();
            assert_eq!(
                dims["FunctionVersion"],
                &json!({"Fn::GetAtt": ["RouterFunction.Version", "Version"]}),
                "{name}: the version being deployed"
            );
            if let Some(reason) = dims.get("FallbackReason") {
                assert!(
                    reasons_on_the_wire.contains(&reason.as_str().unwrap()),
                    "{name}: {reason}"
                );
            }
        }
    }
    assert_eq!(
        resource("RouteLatencyP95Alarm")["Properties"]["MetricName"],
        "RouteLatency"
    );

    // The dashboard body, with its substitutions filled in, is JSON whose router metrics exist
    // with the dimension values the router writes; every routing method and fallback reason shows.
    let sub = resource("Dashboard")["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_array()
        .unwrap();
    let vars = sub[1].as_object().unwrap();
    let mut body = sub[0]
        .as_str()
        .unwrap()
        .replace("${AWS::Region}", "us-east-1");
    for (k, v) in vars {
        let value = match k.as_str() {
            "ns" => "NS",
            "route_p95" => "1",
            _ => "x",
        };
        assert!(v.is_object(), "{k}");
        body = body.replace(&format!("${{{k}}}"), value);
    }
    assert!(
        !body.contains("${"),
        "unsubstituted variable in the dashboard"
    );
    let dash: Value = serde_json::from_str(&body).expect("dashboard body is JSON");
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut titles = Vec::new();
    for w in dash["widgets"].as_array().unwrap() {
        titles.push(w["properties"]["title"].as_str().unwrap().to_owned());
        for row in w["properties"]["metrics"].as_array().unwrap() {
            let row = row.as_array().unwrap();
            if row[0] != "NS" {
                continue;
            }
            let metric = row[1].as_str().unwrap();
            assert!(
                ours.contains(metric),
                "dashboard shows {metric}, which nothing emits"
            );
            let dims: Vec<&str> = row[2..].iter().filter_map(Value::as_str).collect();
            for pair in dims.chunks(2) {
                seen.entry(format!("{metric}/{}", pair[0]))
                    .or_default()
                    .insert(pair[1].to_owned());
            }
        }
    }
    let methods: BTreeSet<String> = routing_methods().into_iter().map(str::to_owned).collect();
    let reasons: BTreeSet<String> = fallback_reasons().into_iter().map(str::to_owned).collect();
    assert_eq!(seen["Routed/RoutingMethod"], methods);
    assert_eq!(seen["Fallbacks/FallbackReason"], reasons);
    for topic in [
        "Routing method",
        "latency",
        "LLM",
        "Errors",
        "Init duration",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "no widget about {topic}: {titles:?}"
        );
    }
}

#[test]
fn long_form_intrinsics_keep_the_template_plain_yaml() {
    // The parse itself is the check (template() panics otherwise); spot-check an intrinsic.
    assert_eq!(function()["MemorySize"], json!({"Ref": "MemorySize"}));
    assert_eq!(template()["Transform"], "AWS::Serverless-2016-10-31");
}

// ------------------------------------------------------------------------------------------------
// Log level and metrics; API Gateway's cache and fail-open answers
// ------------------------------------------------------------------------------------------------

#[test]
fn metric_lines_survive_any_log_level() {
    // Lambda drops application lines below ApplicationLogLevel and reads a line without a
    // "level" as INFO. EMF lines have none, so Lambda's level stays TRACE (it drops nothing) and
    // the operator's LogLevel reaches the router as ROUTER_LOG_LEVEL instead.
    let logging = &function()["LoggingConfig"];
    assert_eq!(logging["ApplicationLogLevel"], "TRACE");
    assert_eq!(
        function()["Environment"]["Variables"][agent_router::ops::logging::LEVEL_ENV],
        json!({"Ref": "LogLevel"})
    );
    let sample = agent_router::ops::metrics::RequestMetrics {
        decision: None,
        status: 400,
        total_us: 7,
        cold_start: false,
        request_id: "deploy-test",
        function_version: Some("3"),
        shadow: None,
    };
    let line: Value =
        serde_json::from_str(&agent_router::ops::metrics::render("NS", 1, &sample)).unwrap();
    assert!(line.get("_aws").is_some(), "an EMF line");
    assert!(
        line.get("level").is_none(),
        "an EMF line with a level could be filtered by Lambda"
    );

    // The router's own level: ROUTER_LOG_LEVEL wins over the TRACE Lambda then sets.
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        }
    };
    use agent_router::ops::logging::log_level;
    let both = env(&[
        ("ROUTER_LOG_LEVEL", "WARN"),
        ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
    ]);
    assert_eq!(log_level(both).as_deref(), Some("WARN"));
    let blank = env(&[("ROUTER_LOG_LEVEL", " "), ("AWS_LAMBDA_LOG_LEVEL", "ERROR")]);
    assert_eq!(log_level(blank).as_deref(), Some("ERROR"));
    assert_eq!(log_level(env(&[])), None);
    let filter = agent_router::ops::logging::log_filter(
        log_level(env(&[
            ("ROUTER_LOG_LEVEL", "WARN"),
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
        ]))
        .as_deref(),
        None,
        agent_router::ops::logging::LevelFilter::INFO,
    );
    assert!(filter.would_enable("agent_router::api", &tracing::Level::WARN));
    assert!(!filter.would_enable("agent_router::api", &tracing::Level::INFO));
    assert!(!filter.would_enable("agent_router::api", &tracing::Level::DEBUG));
}

/// A model that fails every call the way a transient Bedrock problem does.
#[derive(Debug)]
struct Failing(fn() -> agent_router::ports::LlmError);

impl agent_router::ports::Classifier for Failing {
    fn classify<'a>(
        &'a self,
        _system_prompt: &'a str,
        _query: &'a str,
        _timeout: std::time::Duration,
    ) -> agent_router::ports::ClassifyFuture<'a> {
        let error = (self.0)();
        Box::pin(async move { Err(error) })
    }
    fn model_id(&self) -> &str {
        "failing-double"
    }
}

#[tokio::test]
async fn get_route_answers_transient_failures_200_so_api_gateway_caching_is_off_by_default() {
    use agent_router::ports::LlmError;
    // What GET /route answers when Bedrock has a bad moment: a 200 with the default agent. API
    // Gateway's cache cannot tell it from a real decision (it ignores Cache-Control and keys on q
    // only), so with caching on it would serve it to every caller of that q for the TTL.
    type MakeError = fn() -> LlmError;
    let cases: [(MakeError, &str); 3] = [
        (|| LlmError::Timeout, "llm_timeout"),
        (|| LlmError::Throttled("slow down".into()), "llm_throttled"),
        (|| LlmError::Service("503".into()), "llm_error"),
    ];
    for (error, reason) in cases {
        let router = Router::new(Catalogue::embedded_default().unwrap())
            .unwrap()
            .with_llm(
                Arc::new(Failing(error)),
                agent_router::LlmSettings::default(),
            )
            .unwrap();
        let api = Api::new(Arc::new(router));
        let response = api
            .handle(ApiRequest {
                method: "GET".parse().unwrap(),
                path: "/prod/route".into(),
                query: vec![("q".into(), "which team owns the checkout service?".into())],
                body: bytes::Bytes::new(),
                request_id: "deploy-test".into(),
                remaining: None,
            })
            .await;
        assert_eq!(response.status().as_u16(), 200, "{reason}");
        let body: Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body["routing_method"], "default", "{reason}");
        assert_eq!(body["fallback_reason"], reason);
    }
    // Hence the stack creates no cache cluster unless the operator asks for one.
    assert_eq!(default_u64("ApiCacheTtlSeconds"), 0);
    let settings = resource("RouterApi")["Properties"]["MethodSettings"]
        .as_array()
        .unwrap();
    for s in settings {
        if s["CachingEnabled"] != json!(false) {
            assert_eq!(
                s["CachingEnabled"],
                json!({"Fn::If": ["HasApiCache", true, false]})
            );
        }
    }
    assert_eq!(
        template()["Conditions"]["HasApiCache"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiCacheTtlSeconds"}, 0]}]})
    );
}
