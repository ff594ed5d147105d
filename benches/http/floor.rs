//! The benchmark floor: a trivial axum handler answering a fixed JSON body, served on the same
//! runtime and driven by the same load generator as access-broker, so every throughput target
//! is a ratio to what this machine can do for HTTP alone in the same run.
//!
//! Why it lives here and runs as this bench binary re-started with `--floor`: it is not part
//! of the product (no `[[bin]]` to build, install or ship), yet it must stay a process of its
//! own, because the report reads its CPU and memory from `/proc/<pid>` like the product's.
//! The bench binary uses the product's allocator, so the floor differs from it only in what
//! the handler does.

use axum::Router;
use axum::routing::post;

/// The argument that turns the bench binary into the floor server.
pub const ARG: &str = "--floor";

const BODY: &str = r#"{"_id":"1-887ad635-22b1-49c5-ae7b-3b271bc10289","_access_number":"6504660000","_expiration_time":"30"}"#;

/// Serves until killed; prints `listening on ADDR` on stderr, which `server::Proc` waits for.
pub async fn serve() -> std::io::Result<()> {
    let app = Router::new().fallback(post(|body: String| async move {
        let _ = body;
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            BODY,
        )
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    eprintln!("bench-floor listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
