//! The DynamoDB adapter for the [`SessionStore`] port: one item per session, `GetItem` and
//! `PutItem` only.
//!
//! Item: `session_id` (string, the partition key), `agent` (string), `turns` (number),
//! `updated_at` (number, epoch seconds), `expires_at` (number, epoch seconds: the table's TTL
//! attribute, so DynamoDB deletes idle sessions) and `last_query` (string, only when context is
//! kept). Reads are strongly consistent, so a turn that lands on another instance right after the
//! previous one still sees it; an item past `expires_at` is treated as absent (DynamoDB deletes
//! expired items lazily, up to days later).
//!
//! The client is created on the first session a process sees ([`super::LazyClient`]): a process
//! that never gets a `session_id` never loads it. `AWS_ENDPOINT_URL_DYNAMODB` points it elsewhere
//! (tests use a local DynamoDB-compatible server). One attempt per call: the router's deadline for
//! the store is tens of milliseconds, and a failed turn routes without its session anyway.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use super::{AwsSettings, LazyClient, error_chain};
use crate::ports::{SessionError, SessionFuture, SessionState, SessionStore};

/// A [`SessionStore`] on a DynamoDB table.
#[derive(Debug)]
pub struct DynamoDbSessionStore {
    table: String,
    client: LazyClient<Client>,
}

impl DynamoDbSessionStore {
    /// A store on `table`, each call bounded by `timeout`; the client is built on first use.
    pub fn new(table: impl Into<String>, settings: AwsSettings, timeout: Duration) -> Self {
        DynamoDbSessionStore {
            table: table.into(),
            client: LazyClient::new(settings, timeout, "sessions"),
        }
    }

    /// Settings for the session store: one attempt, a short connect timeout.
    pub fn default_settings() -> AwsSettings {
        AwsSettings {
            max_attempts: 1,
            connect_timeout: Duration::from_millis(200),
            ..AwsSettings::default()
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn number(item: &HashMap<String, AttributeValue>, key: &str) -> Option<u64> {
    item.get(key)?.as_n().ok()?.parse().ok()
}

fn text(item: &HashMap<String, AttributeValue>, key: &str) -> Option<String> {
    item.get(key)?.as_s().ok().cloned()
}

/// The session in an item, or `None` when it expired or lacks its agent.
fn from_item(item: &HashMap<String, AttributeValue>, now: u64) -> Option<SessionState> {
    if number(item, "expires_at").is_some_and(|e| e <= now) {
        return None;
    }
    Some(SessionState {
        agent: text(item, "agent")?,
        turns: number(item, "turns")
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(0),
        updated_at: number(item, "updated_at").unwrap_or(0),
        last_query: text(item, "last_query"),
    })
}

fn to_item(
    session_id: &str,
    state: &SessionState,
    expires_at: u64,
) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (
            "session_id".to_owned(),
            AttributeValue::S(session_id.to_owned()),
        ),
        ("agent".to_owned(), AttributeValue::S(state.agent.clone())),
        (
            "turns".to_owned(),
            AttributeValue::N(state.turns.to_string()),
        ),
        (
            "updated_at".to_owned(),
            AttributeValue::N(state.updated_at.to_string()),
        ),
        (
            "expires_at".to_owned(),
            AttributeValue::N(expires_at.to_string()),
        ),
    ]);
    if let Some(q) = &state.last_query {
        item.insert("last_query".to_owned(), AttributeValue::S(q.clone()));
    }
    item
}

fn map_error<E, R>(err: SdkError<E, R>) -> SessionError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::TimeoutError(_) => SessionError::Timeout,
        SdkError::DispatchFailure(f) if f.is_timeout() => SessionError::Timeout,
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown");
            let detail = format!("{code}: {}", se.err().message().unwrap_or(""));
            if matches!(
                code,
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
            ) {
                SessionError::Throttled(detail)
            } else {
                SessionError::Unavailable(detail)
            }
        }
        _ => SessionError::Unavailable(error_chain(&err)),
    }
}

impl SessionStore for DynamoDbSessionStore {
    fn load<'a>(&'a self, session_id: &'a str) -> SessionFuture<'a, Option<SessionState>> {
        Box::pin(async move {
            let out = self
                .client
                .get(Client::new)
                .await
                .get_item()
                .table_name(&self.table)
                .key("session_id", AttributeValue::S(session_id.to_owned()))
                .consistent_read(true)
                .send()
                .await
                .map_err(map_error)?;
            Ok(out.item().and_then(|item| from_item(item, now_secs())))
        })
    }

    fn save<'a>(
        &'a self,
        session_id: &'a str,
        state: &'a SessionState,
        ttl: Duration,
    ) -> SessionFuture<'a, ()> {
        Box::pin(async move {
            let expires_at = now_secs().saturating_add(ttl.as_secs());
            self.client
                .get(Client::new)
                .await
                .put_item()
                .table_name(&self.table)
                .set_item(Some(to_item(session_id, state, expires_at)))
                .send()
                .await
                .map_err(map_error)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_and_expire() {
        let state = SessionState {
            agent: "cost".into(),
            turns: 3,
            updated_at: 1_700_000_000,
            last_query: Some("and last month?".into()),
        };
        let item = to_item("s-1", &state, 1_700_001_800);
        assert_eq!(item["session_id"].as_s().unwrap(), "s-1");
        assert_eq!(from_item(&item, 1_700_000_100), Some(state.clone()));
        assert_eq!(from_item(&item, 1_700_001_800), None, "expired at its TTL");
        let mut no_context = to_item(
            "s-1",
            &SessionState {
                last_query: None,
                ..state
            },
            9,
        );
        assert!(!no_context.contains_key("last_query"));
        no_context.remove("agent");
        assert_eq!(
            from_item(&no_context, 0),
            None,
            "an item without an agent is no session"
        );
    }
}
