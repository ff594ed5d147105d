//! API tests: the real app over real HTTP on 127.0.0.1:0, one fresh store per test.
//! Flows run on every backend; parameter tables run on memory (the HTTP layer is the same).

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod admin_under_load;
mod auth_scope;
mod browser_safety;
mod cli;
mod concurrent_writes;
mod errors;
mod event_stream;
mod events;
mod fields;
mod formats_and_auth;
mod helpers;
mod idempotency;
mod keyed_limits;
mod limits;
mod log_fields;
mod match_interaction;
mod operator;
mod request_access;
mod request_interaction;
mod secrets;
mod sessions;
mod slow_clients;
mod storage;
mod tls;

/// Runs an async test body once per backend, each as its own #[tokio::test] under the
/// per-test time limit; the PostgreSQL one is listed as ignored in a `no_postgres` build.
#[macro_export]
macro_rules! on_every_backend {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::support::{Backend, limit::within};
            #[tokio::test]
            async fn memory() {
                within(($body)(Backend::Memory)).await
            }
            #[tokio::test]
            async fn sqlite() {
                within(($body)(Backend::Sqlite)).await
            }
            #[tokio::test]
            #[cfg_attr(
                no_postgres,
                ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
            )]
            async fn postgres() {
                within(($body)(Backend::Postgres)).await
            }
        }
    };
}
