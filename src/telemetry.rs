//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
//! `ACCESS_BROKER_LOG_FORMAT=json` switches to one JSON object per line for log shippers.
//!
//! Every line logged while a request is served carries the request's id, method, path and
//! client (`request_id=… method=… path=… client=…` at the end of a text line, the same keys
//! in a JSON object). They come from a task-local [`RequestContext`] that `http::edge` sets,
//! read only when a line is actually written. Why not a tracing span per request: creating
//! and entering one cost about 10,000 instructions per request (13 % of the request/match
//! path, measured with callgrind), for lines that most requests never write.

use axum::http::{HeaderValue, Method, Uri};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The request a task is serving, for its log lines.
pub struct RequestContext {
    pub id: HeaderValue,
    pub method: Method,
    pub uri: Uri,
    pub client: crate::http::client::ClientAddr,
    /// The answer will be re-rendered as XML (`http::reply` keeps a reply for it only then).
    pub xml: bool,
    /// The request has been read whole (no body, or its parameters decoded): from here on
    /// the handler works on the store, and `request_timeout_ms` no longer cuts it off
    /// (`http::edge`).
    pub read: std::cell::Cell<bool>,
}

impl RequestContext {
    /// Notes that the current request has been read whole (outside a request: nothing).
    pub fn mark_read() {
        let _ = REQUEST.try_with(|r| r.read.set(true));
    }

    /// Whether the current request has been read whole.
    pub fn was_read() -> bool {
        REQUEST.try_with(|r| r.read.get()).unwrap_or(false)
    }
}

tokio::task_local! {
    /// Set by `http::edge` around each request.
    pub static REQUEST: RequestContext;
}

/// An event formatter that adds the current request's context to a line.
struct Contextual<F>(F);

impl<S, N, F> FormatEvent<S, N> for Contextual<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let Ok(context) = REQUEST.try_with(|r| {
            let id = String::from_utf8_lossy(r.id.as_bytes()).into_owned();
            (
                id,
                r.method.to_string(),
                r.uri.path().to_owned(),
                r.client.to_string(),
            )
        }) else {
            return self.0.format_event(ctx, writer, event);
        };
        let (id, method, path, client) = context;
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let body = line.trim_end_matches('\n');
        if let Some(object) = body.strip_prefix('{') {
            let text = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
            let comma = if object.trim_start().starts_with('}') {
                ""
            } else {
                ","
            };
            writeln!(
                writer,
                "{{\"request_id\":{},\"method\":{},\"path\":{},\"client\":{}{comma}{object}",
                text(&id),
                text(&method),
                text(&path),
                text(&client)
            )
        } else {
            writeln!(
                writer,
                "{body} request_id={id} method={method} path={path} client={client}"
            )
        }
    }
}

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: log files and shippers get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A line that cannot be written is dropped: by default the subscriber reported it with
    // `eprintln!`, which panics when stderr fails too (a log file on a full disk, a closed
    // pipe), so a request logging anything dropped its connection unanswered, a start exited
    // 101 and a SIGTERM's exit was 101 (an outside audit). The service goes on unlogged.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let json = std::env::var("ACCESS_BROKER_LOG_FORMAT").is_ok_and(|v| v == "json");
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = if json {
        let format: Format<Json> = Format::default().json();
        builder
            .fmt_fields(JsonFields::new())
            .event_format(Contextual(format))
            .try_init()
    } else {
        let format: Format<Full> = Format::default().with_ansi(ansi);
        builder
            .fmt_fields(DefaultFields::new())
            .event_format(Contextual(format))
            .try_init()
    };
}

/// An error with its whole cause chain, `outer: cause: root cause`, for log fields and
/// start-up messages (an error's own `Display` never shows its source).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Lines written by a subscriber built like `init`'s, one format at a time.
    fn lines(json: bool, log: impl FnOnce()) -> String {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let make = move || Sink(sink.clone());
        let builder = tracing_subscriber::fmt().with_ansi(false).with_writer(make);
        if json {
            let format: Format<Json> = Format::default().json();
            let s = builder
                .fmt_fields(JsonFields::new())
                .event_format(Contextual(format));
            tracing::subscriber::with_default(s.finish(), log);
        } else {
            let format: Format<Full> = Format::default().with_ansi(false);
            let s = builder
                .fmt_fields(DefaultFields::new())
                .event_format(Contextual(format));
            tracing::subscriber::with_default(s.finish(), log);
        }
        let bytes = out.lock().expect("sink").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn in_request(f: impl FnOnce()) {
        let context = RequestContext {
            id: HeaderValue::from_static("req-1"),
            method: Method::POST,
            uri: Uri::from_static("/genesys/1/service/x?y=1"),
            client: crate::http::client::ClientAddr(Some([10, 0, 0, 7].into())),
            xml: false,
            read: Default::default(),
        };
        REQUEST.sync_scope(context, f);
    }

    #[test]
    fn lines_in_a_request_carry_its_context_and_others_do_not() {
        let text = lines(false, || {
            in_request(|| tracing::warn!(number = 7, "inside"));
            tracing::warn!("outside");
        });
        let mut text = text.lines();
        let inside = text.next().expect("inside");
        assert!(inside.contains("inside number=7"), "{inside}");
        assert!(
            inside.ends_with(
                " request_id=req-1 method=POST path=/genesys/1/service/x client=10.0.0.7"
            ),
            "{inside}"
        );
        let outside = text.next().expect("outside");
        assert!(outside.ends_with("outside"), "{outside}");

        let json = lines(true, || in_request(|| tracing::warn!(number = 7, "inside")));
        let v: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v["client"], "10.0.0.7");
        assert_eq!(v["fields"]["number"], 7);
        assert_eq!(v["level"], "WARN");
    }
}
