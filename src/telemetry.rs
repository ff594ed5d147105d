//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), with one span per
//! request carrying its request id (see `http::router`). `ACCESS_BROKER_LOG_FORMAT=json`
//! switches to one JSON object per line for log shippers.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: log files and shippers get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let json = std::env::var("ACCESS_BROKER_LOG_FORMAT").is_ok_and(|v| v == "json");
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
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
