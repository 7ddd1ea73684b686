//! Inputs found by the fuzz targets (`fuzz/`, run with `cargo +nightly fuzz`), replayed on the
//! stable toolchain through the same checks: `fuzz/src/lib.rs` is compiled into this test.
//!
//! `tests/fixtures/fuzz/<target>/` holds one input per file: raw bytes for `request_body`,
//! `query_string` and `lambda_event`; for `fastpath`, the resolved case as JSON (what
//! `cargo fuzz fmt fastpath <input>` prints). Crashes the fuzzer found are kept here with the
//! fix, next to small inputs from the minimised corpus.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::PathBuf;

/// Every file of `tests/fixtures/fuzz/<target>/` (README files aside), sorted.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/fuzz/{target}"));
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "{target}: only {} kept inputs",
        files.len()
    );
    files
}

/// Runs `check` on every kept input of `target`, naming the file that fails.
fn replay(target: &str, check: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    for (name, data) in inputs(target) {
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("tests/fixtures/fuzz/{target}/{name} failed (see the panic above)");
        }
    }
}

#[test]
fn request_body() {
    replay("request_body", harness::request_body);
}

#[test]
fn query_string() {
    replay("query_string", harness::query_string);
}

#[test]
fn lambda_event() {
    replay("lambda_event", harness::lambda_event);
}

#[test]
fn fastpath() {
    replay("fastpath", |data| {
        let case: harness::FastCase = serde_json::from_slice(data).expect("a fastpath case");
        harness::fastpath(&case);
    });
}

/// Found by `fastpath`: two finite weights whose sum is infinite made the agent's score `inf`, and
/// the decision's confidence `NaN` (served as `"confidence": null`). The catalogue now refuses an
/// agent whose weights add up past `MAX_AGENT_WEIGHT`; below it, scores and confidence stay finite.
#[test]
fn score_overflow_is_refused_when_the_catalogue_is_built() {
    use agent_router::routing::{CatalogueError, MAX_AGENT_WEIGHT};
    use agent_router::routing::{FastOutcome, FastPath};
    use agent_router::{Agent, CatalogueBuilder, Keyword};

    let build = |weights: [f32; 2]| {
        let mut b = CatalogueBuilder::new("a0");
        b.agent(Agent {
            name: "a0".into(),
            description: "a0 things".into(),
            keywords: ["bill", "cost"]
                .iter()
                .zip(weights)
                .map(|(text, weight)| Keyword {
                    text: (*text).into(),
                    weight,
                })
                .collect(),
            bias: 0.0,
            target: None,
        });
        b.build()
    };
    let err = build([3.398_202_3e38, 1.708_023_5e38]).unwrap_err();
    assert!(
        matches!(&err, CatalogueError::WeightsTooLarge { agent, .. } if agent == "a0"),
        "{err:?}"
    );
    assert!(err.to_string().contains("add up to"), "{err}");

    let half = MAX_AGENT_WEIGHT / 2.0;
    let catalogue = build([half, half]).expect("weights at the limit are accepted");
    let fast = FastPath::new(&catalogue).unwrap();
    let scan = fast.scan("bill cost");
    assert!(scan.scores.iter().all(|s| s.is_finite()), "{scan:?}");
    match fast.decide("bill cost") {
        FastOutcome::Decided { confidence, .. } => {
            assert!((0.0..=1.0).contains(&confidence), "{confidence}")
        }
        other => panic!("{other:?}"),
    }
    // The kept fuzz input itself.
    let case: harness::FastCase = serde_json::from_slice(
        &std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/fuzz/fastpath/crash-score-overflow.json"),
        )
        .unwrap(),
    )
    .unwrap();
    harness::fastpath(&case);
}

/// Found by `lambda_event`: lambda_http 1.3 panics (`Url::parse(..).unwrap()`) on an event whose
/// `host` header is not a URL authority, or whose path does not start with `/` when there is no
/// host. It happens inside lambda_http before the router sees the event (in Lambda, the runtime
/// turns the panic into a failed invocation), so the fuzz harness contains it. If this test
/// fails, lambda_http no longer panics there: the containment in `fuzz/src/lib.rs` can go.
#[test]
fn lambda_http_panics_on_these_events_and_the_harness_contains_them() {
    for (name, data) in inputs("lambda_event") {
        if !name.starts_with("crash-lambda-http-") {
            continue;
        }
        let text = String::from_utf8_lossy(&data);
        assert!(
            harness::decode_event(&text).is_none(),
            "{name}: lambda_http decoded it without panicking"
        );
        harness::lambda_event(&data);
    }
}
