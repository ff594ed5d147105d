//! `/ui`: the Service Management page, served from assets compiled into the binary (no
//! separate server, no build step at run time). The page is static; it reads and changes
//! everything through the admin API, and `http::router` guards both with the same Basic
//! credentials, so the browser's one login prompt covers both.
//!
//! Every URL the page uses is relative (`app.js`, `../genesys/1/admin/…`, the `/ui` redirect
//! to `ui/`), so a reverse proxy may serve the broker under any path prefix (`/broker/ui/`)
//! without rewriting a byte of it; a test below keeps it that way.
//!
//! No inline script or style anywhere (the page's Content-Security-Policy, set by
//! `http::browser::page_headers`, allows only these files); a test below keeps that too.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::AppState;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const CHARTS: &str = include_str!("assets/charts.js");
const STYLE: &str = include_str!("assets/style.css");
const JAVASCRIPT_UTF_8: &str = "text/javascript; charset=utf-8";

pub fn router() -> Router<AppState> {
    Router::new()
        // Relative: `/broker/ui` behind a proxy goes to `/broker/ui/`, not to `/ui/`.
        .route("/ui", get(|| async { Redirect::permanent("ui/") }))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(script))
        .route(
            "/ui/charts.js",
            get(|| async { asset(JAVASCRIPT_UTF_8, CHARTS) }),
        )
        .route("/ui/style.css", get(style))
        // Anything else under /ui/ is a 404 (with the pages' headers, like every answer under
        // /ui: `http::router` puts `browser::page_headers` outside the admin credentials'
        // check, so a 401 carries them too).
        .route("/ui/{*rest}", get(no_page))
}

async fn no_page(uri: axum::http::Uri) -> super::error::ApiError {
    super::error::ApiError::NotFound(format!("no such page: {}", uri.path()))
}

fn asset(content_type: &str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset(mime::TEXT_HTML_UTF_8.as_ref(), INDEX)
}

async fn script() -> Response {
    // `mime` spells its UTF-8 script constant `application/javascript`; browsers and the
    // HTML standard use `text/javascript`, which the page has always been served as.
    asset(JAVASCRIPT_UTF_8, SCRIPT)
}

async fn style() -> Response {
    asset(mime::TEXT_CSS_UTF_8.as_ref(), STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CSP allows no inline script or style: none may creep into the assets.
    #[test]
    fn no_inline_script_or_style() {
        let page = INDEX.to_ascii_lowercase();
        // Every script is a served file: as many `<script src=` as `<script`.
        assert_eq!(
            page.matches("<script").count(),
            page.matches("<script src=\"").count()
        );
        assert!(page.contains("<script src=\"app.js\"></script>"));
        for inline in [
            "<style",
            " style=",
            " onclick=",
            " onload=",
            " onsubmit=",
            "javascript:",
        ] {
            assert!(!page.contains(inline), "index.html holds {inline}");
        }
        for dynamic in [
            "eval(",
            "new function(",
            ".innerhtml = '<script",
            "setattribute('style",
        ] {
            assert!(
                !SCRIPT.to_ascii_lowercase().contains(dynamic),
                "app.js holds {dynamic}"
            );
        }
    }

    /// No asset names a path from the root: it would miss the prefix a proxy serves under.
    #[test]
    fn assets_use_relative_urls_only() {
        for (name, text) in [
            ("index.html", INDEX),
            ("app.js", SCRIPT),
            ("charts.js", CHARTS),
            ("style.css", STYLE),
        ] {
            for absolute in [
                "\"/genesys",
                "'/genesys",
                "`/genesys",
                "\"/ui",
                "'/ui",
                "`/ui",
                "href=\"/",
                "src=\"/",
                "url(/",
                "url(\"/",
            ] {
                assert!(
                    !text.contains(absolute),
                    "{name} holds an absolute URL ({absolute}…)"
                );
            }
        }
    }
}
