//! A double that speaks Lambda's Invoke wire format: `POST
//! /2015-03-31/functions/{FunctionName}/invocations`, the payload as the body, the function's
//! answer as the response body, `X-Amz-Function-Error` for function errors and
//! `x-amzn-ErrorType` for service errors. Its behaviour is chosen by the function name.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Answer, Received, aws_error, json, serve};

/// The running double. Function names it knows:
/// `echo-*` answers `{"echo": <payload>}`; `text-agent` answers plain text; `failing-agent` raises
/// an unhandled error; `emulated-failing-agent` one the way `cargo lambda watch` reports it (500
/// with the error body); `handled-agent` a handled one; `slow-agent` answers after 30 s;
/// `throttled-agent` gets 429 with `Retry-After: 7`; `forbidden-agent` 403; anything else 404.
pub struct LambdaDouble {
    /// `http://127.0.0.1:port`, for `AWS_ENDPOINT_URL_LAMBDA` or `endpoint_url`.
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl LambdaDouble {
    /// Starts the double.
    pub async fn start() -> LambdaDouble {
        let received = Arc::new(Mutex::new(Vec::new()));
        let r = received.clone();
        let url = serve(move |req| {
            let r = r.clone();
            async move {
                r.lock().unwrap().push(req.clone());
                invoke(req).await
            }
        })
        .await;
        LambdaDouble { url, received }
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn invoke(req: Received) -> Answer {
    let Some(name) = req
        .path
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|p| p.strip_suffix("/invocations"))
    else {
        return Some(aws_error(404, "UnknownOperationException", &[]));
    };
    // Like Lambda: a name, `name:qualifier`, or a function ARN with an optional qualifier.
    let decoded = name.replace("%3A", ":").replace("%3a", ":");
    let name = match decoded.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "lambda", _, _, "function", fname, ..] => fname.to_string(),
        [fname, ..] => fname.to_string(),
        [] => String::new(),
    };
    let name = name.as_str();
    let payload: serde_json::Value =
        serde_json::from_slice(&req.body).unwrap_or(serde_json::Value::Null);
    Some(match name {
        n if n.starts_with("echo-") => json(
            200,
            &[("x-amz-executed-version", "$LATEST")],
            serde_json::json!({"echo": payload}).to_string(),
        ),
        "text-agent" => json(200, &[], "just some text"),
        "failing-agent" => json(
            200,
            &[("x-amz-function-error", "Unhandled")],
            r#"{"errorMessage":"agent crashed: index out of range","errorType":"PanicError"}"#,
        ),
        "emulated-failing-agent" => json(
            500,
            &[],
            r#"{"errorType":"Box<dyn Error>","errorMessage":"asked to fail"}"#,
        ),
        "handled-agent" => json(
            200,
            &[("x-amz-function-error", "Handled")],
            r#"{"errorType":"ValidationError"}"#,
        ),
        "slow-agent" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            json(200, &[], "{}")
        }
        "throttled-agent" => aws_error(429, "TooManyRequestsException", &[("retry-after", "7")]),
        "forbidden-agent" => aws_error(403, "AccessDeniedException", &[]),
        _ => aws_error(404, "ResourceNotFoundException", &[]),
    })
}
