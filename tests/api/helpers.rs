//! `TestApp`: the real app on 127.0.0.1:0 over a fresh store, and typed request helpers.

use std::time::Duration;

use access_broker::app::App;
use access_broker::config::Config;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::support::{Backend, TestStore};

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub store: TestStore,
    shutdown: Option<oneshot::Sender<()>>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// A string field of the JSON body.
    pub fn field(&self, name: &str) -> String {
        match &self.json()[name] {
            Value::String(s) => s.clone(),
            other => panic!("{name} is not a string but {other}: {}", self.text),
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Asserts the GMS error shape and returns the message.
    pub fn error(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.field("exception"), kind, "{}", self.text);
        self.field("message")
    }
}

pub const DEMO: &str = include_str!("../../config/demo.toml");

impl TestApp {
    /// The demo config on the given backend.
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, DEMO).await
    }

    /// A config given as TOML text, on the given backend; panics if the backend is not
    /// available (PostgreSQL tests are marked ignored in builds without it). The store's
    /// watchdog bounds the test's time even when its body is not wrapped in `within`.
    pub async fn spawn_with(backend: Backend, toml: &str) -> TestApp {
        Self::spawn_on(TestStore::require(backend).await, toml).await
    }

    /// A config given as TOML text, on a store the test opened.
    pub async fn spawn_on(store: TestStore, toml: &str) -> TestApp {
        let (config, _warnings) =
            Config::from_toml(toml, "test.toml").expect("test config is valid");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let app = App::build(config, listener, store.store.clone())
            .await
            .expect("app builds");
        let url = format!("http://{}", app.local_addr());
        let (tx, rx) = oneshot::channel();
        tokio::spawn(app.run(async {
            let _ = rx.await;
        }));
        // Idle connections kept less long than the server's header_timeout_ms (10 s), which
        // also closes idle keep-alive connections: a pooled connection reused just as the
        // server closes it fails the request (the race every idle timeout has).
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        TestApp {
            url,
            client,
            store,
            shutdown: Some(tx),
        }
    }

    pub fn advance(&self, by: Duration) {
        self.store.advance(by);
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body read");
        Resp {
            status,
            headers,
            text,
        }
    }

    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.send(self.client.post(self.path(path)).form(form))
            .await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.client.get(self.path(path))).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.client.delete(self.path(path))).await
    }

    /// Creates a `callback` session (demo config) and returns its id.
    pub async fn session(&self, fields: &[(&str, &str)]) -> String {
        let resp = self.post("/genesys/1/service/callback", fields).await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        resp.field("_id")
    }

    pub async fn request_access(&self, id: &str, extra: &[(&str, &str)]) -> Resp {
        let mut form = vec![("_id", id)];
        form.extend_from_slice(extra);
        self.post("/genesys/1/service/request-access", &form).await
    }

    pub async fn match_interaction(&self, form: &[(&str, &str)]) -> Resp {
        self.post("/genesys/1/service/match-interaction", form)
            .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// One row of a parameter table: the form sent, the status expected, the parameter an error
/// must name.
pub type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
