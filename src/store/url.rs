//! Store URLs: `memory://`, `sqlite://PATH`, `postgres://…`. Passwords never reach logs.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Memory,
    Sqlite(PathBuf),
    /// The full connection URL, password included; `Display` and `Debug` redact it.
    Postgres(String),
}

#[derive(Debug, thiserror::Error)]
#[error("store URL {0:?}: {1}")]
pub struct BadStoreUrl(String, String);

/// What a store URL must look like, said when one does not.
const EXPECTED: &str = "expected memory://, sqlite://PATH or postgres://USER@HOST/DB";

impl FromStr for StoreUrl {
    type Err = BadStoreUrl;

    fn from_str(s: &str) -> Result<Self, BadStoreUrl> {
        if s == "memory://" || s == "memory:" {
            return Ok(Self::Memory);
        }
        if let Some(path) = s.strip_prefix("sqlite://") {
            // A path, nothing else: SQLite's in-memory database (`:memory:`) would keep
            // nothing (that is `memory://`), and URL options (`?mode=ro`) are not read.
            if path.is_empty() || path == ":memory:" || path.contains('?') {
                return Err(BadStoreUrl(s.into(), EXPECTED.into()));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            if let Err(why) = s.parse::<tokio_postgres_config::Probe>() {
                return Err(BadStoreUrl(redact_unrecognised(s), why));
            }
            return Ok(Self::Postgres(s.into()));
        }
        Err(BadStoreUrl(redact_unrecognised(s), EXPECTED.into()))
    }
}

/// A string that is no store URL may still carry a password: a libpq key/value string
/// (`host=db user=app password=secret`) or a URL with a mistyped scheme
/// (`postgres//app:secret@db`). Every `password=` value and the text between the last
/// `:` and `@` of a userinfo are replaced with `***`.
fn redact_unrecognised(s: &str) -> String {
    let mut out = redact(s);
    // A userinfo starts after a scheme's `://` (else anywhere: `postgres//app:secret@db`).
    let from = out.find("://").map_or(0, |i| i + 3);
    if let Some(at) = out.rfind('@').filter(|&at| at >= from)
        && let Some(colon) = out[from..at].rfind(':').map(|i| from + i)
        && colon + 1 < at
    {
        out.replace_range(colon + 1..at, "***");
    }
    let lower = out.to_ascii_lowercase();
    let mut redacted = String::with_capacity(out.len());
    let mut rest = 0;
    for (start, _) in lower.match_indices("password") {
        if start < rest {
            continue;
        }
        let after = &out[start + "password".len()..];
        let Some(value) = after.trim_start().strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        let value_start = out.len() - value.len();
        // A quoted value ends at its closing quote, a bare one at a space or `&`.
        let len = match value.strip_prefix('\'') {
            Some(quoted) => quoted.find('\'').map_or(value.len(), |i| i + 2),
            None => value.find([' ', '\t', '&']).unwrap_or(value.len()),
        };
        redacted.push_str(&out[rest..value_start]);
        redacted.push_str("***");
        rest = value_start + len;
    }
    redacted.push_str(&out[rest..]);
    redacted
}

/// Without the postgres feature, any `postgres://` URL passes parsing and `open` names the
/// missing feature; with it, the driver's own parser checks the URL.
mod tokio_postgres_config {
    pub struct Probe;
    /// Why a `postgres://` URL cannot be used, in the driver's words (which name the option,
    /// never its value), else what one looks like.
    impl std::str::FromStr for Probe {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            // A URL without a host (`postgres://`, `postgres:///db`) can never connect: the
            // driver, unlike libpq, has no default host. A socket directory given as
            // `?host=/run/postgresql` is a host.
            #[cfg(feature = "postgres")]
            {
                match s.parse::<tokio_postgres::Config>() {
                    // A libpq key/value string pasted after the scheme
                    // (`postgres://host=db password=x`) reads as one host name: refused
                    // here, where it is quoted redacted, not retried (and logged) for ever.
                    Ok(c) if c.get_hosts().iter().any(|h| match h {
                        tokio_postgres::config::Host::Tcp(name) => {
                            name.contains(|c: char| c.is_whitespace() || c == '=')
                        }
                        #[cfg(unix)]
                        tokio_postgres::config::Host::Unix(_) => false,
                    }) =>
                    {
                        Err("the host is no host name (a key=value string? expected postgres://USER@HOST/DB)".into())
                    }
                    Ok(c) if !c.get_hosts().is_empty() || !c.get_hostaddrs().is_empty() => {
                        Ok(Probe)
                    }
                    Ok(_) => Err("no host; expected postgres://USER@HOST/DB".into()),
                    Err(e) => Err(format!(
                        "{}; expected postgres://USER@HOST/DB",
                        crate::telemetry::Chain(&e)
                    )),
                }
            }
            #[cfg(not(feature = "postgres"))]
            {
                let _ = s;
                Ok(Probe)
            }
        }
    }
}

/// Replaces every password a URL carries with `***`: the userinfo's
/// (`scheme://user:password@host`) and a `password=` query parameter (libpq accepts both).
fn redact(s: &str) -> String {
    // The userinfo first, over the whole URL: the driver reads the password up to the `@`, so
    // it may hold an unescaped `?` (or `/`, or `@`: the last `@` ends it here, so a query
    // holding one is hidden too, which errs on the safe side). Cut at the first `?` before
    // this, a password holding one was printed in clear.
    let (mut out, rest) = match s
        .split_once("://")
        .and_then(|(scheme, rest)| Some((scheme, rest.rsplit_once('@')?)))
    {
        Some((scheme, (userinfo, host))) => {
            let userinfo = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => userinfo.to_owned(),
            };
            (format!("{scheme}://{userinfo}@"), host)
        }
        None => (String::new(), s),
    };
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (rest, None),
    };
    out.push_str(base);
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                // The driver decodes names (`pass%77ord` is `password`): so does this.
                Some((name, _)) if decoded(name).eq_ignore_ascii_case("password") => {
                    format!("{name}=***")
                }
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

fn decoded(name: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::percent_decode_str(name).decode_utf8_lossy()
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory://"),
            Self::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "postgres")]
    fn a_bad_option_is_named_and_the_password_hidden() {
        let err = "postgres://u:hunter2@h/db?sslmode=bogus"
            .parse::<StoreUrl>()
            .expect_err("bad sslmode")
            .to_string();
        assert!(
            err.contains("`sslmode`") && !err.contains("hunter2"),
            "{err}"
        );
        let err = "postgres://u@h:99999/db"
            .parse::<StoreUrl>()
            .expect_err("port");
        assert!(err.to_string().contains("`port`"), "{err}");
    }

    #[test]
    fn parses_each_scheme() {
        assert_eq!("memory://".parse::<StoreUrl>().ok(), Some(StoreUrl::Memory));
        assert_eq!(
            "sqlite://data/a.db".parse::<StoreUrl>().ok(),
            Some(StoreUrl::Sqlite("data/a.db".into()))
        );
        assert_eq!(
            "sqlite:///tmp/a.db".parse::<StoreUrl>().ok(),
            Some(StoreUrl::Sqlite("/tmp/a.db".into()))
        );
        for good in [
            "postgres://postgres@127.0.0.1/test",
            "postgres:///test?host=/run/postgresql",
        ] {
            assert!(good.parse::<StoreUrl>().is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "sqlite://",
            "mysql://x",
            "data/a.db",
            "redis://localhost",
            "postgres://",
            "postgresql:///broker",
            "sqlite://:memory:",
            "sqlite://x.db?mode=ro",
        ] {
            assert!(bad.parse::<StoreUrl>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn redacts_passwords() {
        let url: StoreUrl = "postgres://app:hunter2@db/broker".parse().expect("valid");
        assert_eq!(url.to_string(), "postgres://app:***@db/broker");
        assert!(!format!("{url:?}").contains("hunter2"));
        let err = "mysql://app:hunter2@db"
            .parse::<StoreUrl>()
            .err()
            .map(|e| e.to_string());
        assert!(!err.unwrap_or_default().contains("hunter2"));
        let url: StoreUrl = "postgres://app@db/broker?sslmode=prefer&password=hunter2"
            .parse()
            .expect("valid");
        assert_eq!(
            url.to_string(),
            "postgres://app@db/broker?sslmode=prefer&password=***"
        );
        let url: StoreUrl = "postgres://app@db/broker?pass%77ord=hunter2"
            .parse()
            .expect("valid");
        assert_eq!(url.to_string(), "postgres://app@db/broker?pass%77ord=***");
        let url: StoreUrl = "postgres://app:p@ss@db/broker".parse().expect("valid");
        assert_eq!(url.to_string(), "postgres://app:***@db/broker");
        // A `?` in the password (the driver reads it to the `@`): it was printed in clear.
        let url: StoreUrl = "postgres://app:Zq7?mK2p@db/broker?sslmode=disable"
            .parse()
            .expect("valid");
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db/broker?sslmode=disable"
        );
        let url: StoreUrl = "postgres://app:a/b?c#d@db:5432/broker"
            .parse()
            .expect("valid");
        assert_eq!(url.to_string(), "postgres://app:***@db:5432/broker");
    }

    #[test]
    fn a_string_that_is_no_store_url_is_quoted_without_its_password() {
        let cases = [
            (
                "host=db user=app password=hunter2 dbname=x",
                "host=db user=app password=*** dbname=x",
            ),
            (
                "host=db password = 'hun ter2' dbname=x",
                "host=db password = *** dbname=x",
            ),
            ("postgres//app:hunter2@db/x", "postgres//app:***@db/x"),
            ("PASSWORD=hunter2", "PASSWORD=***"),
            ("db:5432/x", "db:5432/x"),
            // Taken for a host name once, retried for ever with the password in each line.
            #[cfg(feature = "postgres")]
            (
                "postgres://host=127.0.0.1 password=hunter2",
                "postgres://host=127.0.0.1 password=***",
            ),
            #[cfg(feature = "postgres")]
            (
                "postgres://app@[::1]:99999/db",
                "postgres://app@[::1]:99999/db",
            ),
        ];
        for (sent, shown) in cases {
            let err = sent.parse::<StoreUrl>().err().map(|e| e.to_string());
            let err = err.unwrap_or_default();
            assert!(err.contains(&format!("{shown:?}")), "{sent:?}: {err}");
        }
    }
}
