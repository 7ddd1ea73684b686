//! A real DynamoDB-compatible server for the session store's tests: dynalite (an open-source
//! implementation of the DynamoDB API), run from `tests/dynalite/node_modules` on a free loopback
//! port, in memory. `scripts/test` installs it (`npm ci --prefix tests/dynalite`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};

/// A running dynalite, killed on drop.
pub struct Dynalite {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    port: u16,
}

fn executable() -> PathBuf {
    let bin =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/dynalite/node_modules/.bin/dynalite");
    assert!(
        bin.is_file(),
        "dynalite is not installed: run `npm ci --prefix tests/dynalite` (scripts/test does)"
    );
    bin
}

impl Dynalite {
    /// Starts dynalite on a free port and waits until it accepts connections.
    pub async fn start() -> Dynalite {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut d = Dynalite {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            port,
        };
        d.spawn().await;
        d
    }

    async fn spawn(&mut self) {
        let child = Command::new(executable())
            .args(["--port", &self.port.to_string(), "--host", "127.0.0.1"])
            .args([
                "--createTableMs",
                "0",
                "--deleteTableMs",
                "0",
                "--updateTableMs",
                "0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dynalite (node)");
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("dynalite did not start on port {}", self.port);
    }

    /// Stops the server (a store that went down).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A DynamoDB client for this server (static test credentials).
    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .endpoint_url(&self.url)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            ))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// Creates the sessions table the SAM template creates: partition key `session_id`,
    /// on-demand billing.
    pub async fn create_sessions_table(&self, name: &str) {
        self.client()
            .create_table()
            .table_name(name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("session_id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("session_id")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("create the sessions table");
    }
}

impl Drop for Dynalite {
    fn drop(&mut self) {
        self.kill();
    }
}
