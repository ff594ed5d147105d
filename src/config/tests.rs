//! The config file's parsing and checks: defaults, every table, and the errors a wrong
//! value or key gets.

use super::*;

fn load(text: &str) -> Result<(Config, Warnings), String> {
    Config::from_toml(text, "t.toml").map_err(|e| e.to_string())
}

const GROUP: &str = "[resource_groups.DNIS]\nnumbers = [\"100-109\"]\n";

#[test]
fn the_demo_config_loads() {
    let c = Config::demo();
    assert_eq!(c.groups.len(), 1);
    assert_eq!(c.groups[0].numbers.len(), 100);
    assert_eq!(c.groups[0].numbers[0].as_str(), "6504660000");
    let kinds: Vec<&str> = c.services.values().map(|s| s.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "session",
            "match-interaction",
            "request-access",
            "request-interaction"
        ]
    );
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.store.to_string(), "sqlite://data/access-broker.db");
}

#[test]
fn every_bad_value_names_its_key() {
    let cases = [
        (
            "[resource_groups.DNIS]\nnumbers = [\"1\", \"1\"]\n",
            "resource_groups.DNIS.numbers[1]",
        ),
        (
            "[resource_groups.A]\nnumbers = [\"1\"]\n[resource_groups.B]\nnumbers = [\"0-5\"]\n",
            "resource_groups.B.numbers[0]",
        ),
        (
            "[resource_groups.DNIS]\nnumbers = []\n",
            "resource_groups.DNIS.numbers",
        ),
        (
            "[resource_groups.DNIS]\nnumbers = [\"1\"]\nallocation = \"LOCAL\"\n",
            "resource_groups.DNIS.allocation",
        ),
        (
            "[resource_groups.DNIS]\nnumbers = [\"1\"]\nbooking_expiration_timeout = 2000\n",
            "resource_groups.DNIS.booking_expiration_timeout",
        ),
        (
            "[resource_groups.DNIS]\nnumbers = [\"12-3\"]\n",
            "resource_groups.DNIS.numbers[0]",
        ),
        (
            "[resource_groups.DNIS]\nnumbers = [\"1\"]\ncolour = \"red\"\n",
            "resource_groups.DNIS",
        ),
        ("[server]\nnode_id = \"a-b\"\n", "server.node_id"),
        ("[events]\nsecret = \"k\"\n", "events.url"),
        (
            "[events]\nurl = \"ftp://x/\"\nsecret = \"k\"\n",
            "events.url",
        ),
        ("[events]\nurl = \"http://x/\"\n", "events.secret"),
        (
            "[events]\nurl = \"http://x/\"\nsecret = \"k\"\nretries = 3\n",
            "retries",
        ),
        ("[server]\nstore = \"redis://x\"\n", "server.store"),
        (
            "[server]\nsqlite_synchronous = \"off\"\n",
            "server.sqlite_synchronous",
        ),
        ("[server]\nmax_body_bytes = 0\n", "server.max_body_bytes"),
        (
            "[server]\naccess_code_prefix = \"123456\"\n",
            "server.access_code_prefix",
        ),
        ("[auth]\npassword = \"x\"\n", "auth"),
        ("[auth.admin]\nusername = \"x\"\n", "auth.admin"),
        (
            "[services.x]\n_resource_group = \"DNIS\"\n",
            "services.x.type",
        ),
        ("[services.x]\ntype = \"callback\"\n", "services.x.type"),
        (
            "[services.x]\ntype = \"request-access\"\n_resource_group = \"NOPE\"\n",
            "services.x._resource_group",
        ),
        (
            "[services.x]\ntype = \"request-access\"\n_access_code_length = 13\n",
            "services.x._access_code_length",
        ),
        (
            "[services.x]\ntype = \"request-access\"\n_provide_code = \"yes\"\n",
            "services.x._provide_code",
        ),
        (
            "[services.x]\ntype = \"session\"\n_ttl = 0\n",
            "services.x._ttl",
        ),
        (
            "[services.x]\ntype = \"session\"\nusername = \"u\"\n",
            "services.x",
        ),
        (
            "[services.x]\ntype = \"session\"\nbogus = 1\n",
            "services.x.bogus",
        ),
        (
            "[services.x]\n_type = \"builtin\"\n_service = \"nope\"\n",
            "services.x._service",
        ),
        (
            "[services.x]\n_type = \"buildin\"\n_service = \"request-access\"\n",
            "services.x._type",
        ),
        (
            "[services.x]\ntype = \"match-interaction\"\n_type = \"builtin\"\n_service = \"request-access\"\n",
            "services.x._service",
        ),
        (
            "[services.x]\ntype = \"session\"\n_service = \"request-access\"\n",
            "services.x._service",
        ),
        ("[auth]\n", "auth"),
        (
            "[auth]\nusername = \"u:v\"\npassword = \"x\"\n",
            "auth.username",
        ),
        ("[bogus]\nx = 1\n", "bogus"),
        (
            "[resource_groups.G]\nnumbers = \"200-209\"\n",
            "resource_groups.G.numbers:",
        ),
        (
            "[resource_groups.G]\nnumbers = [200]\n",
            "resource_groups.G.numbers[0]:",
        ),
        (
            "[resource_groups.G]\nnumbers = [\"200\"]\nallocation = 1\n",
            "resource_groups.G.allocation:",
        ),
    ];
    for (text, key) in cases {
        let text = format!("{GROUP}{text}").replacen(
            "[resource_groups.DNIS]\nnumbers = [\"100-109\"]\n[resource_groups.DNIS]",
            "[resource_groups.DNIS]",
            1,
        );
        let err = load(&text)
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"));
        assert!(
            err.starts_with("t.toml: ") && err.contains(key),
            "{key}: {err}"
        );
        assert!(!err.contains('\n'), "one line: {err}");
    }
}

#[test]
fn gms_configs_carry_over() {
    let text = format!(
        "{GROUP}[services.ra]\n_type = \"builtin\"\n_service = \"request-access\"\n_resource_group = \"DNIS\"\n_provide_code = \"true\"\n\
         _access_code_length = \"8\"\n_booking_expiration_timeout = \"\"\n_redirect = \"x\"\n_ttl = 60\n_phone_number = \"\"\n_id = \"\"\n\
         [services.ra2]\n_type = \"builtin\"\n_service = \"request-access\"\n_id = \"x\"\n"
    );
    let (c, warnings) = load(&text).expect("valid");
    let ra = &c.services.values().next().expect("service");
    assert_eq!(ra.kind, ServiceKind::RequestAccess);
    assert_eq!(c.services.len(), 2, "the seed's _id option loads");
    assert_eq!(ra.provide_code, Some(true));
    assert_eq!(ra.access_code_length.map(CodeLength::get), Some(8));
    assert_eq!(ra.booking_timeout, None, "an empty string is unset");
    assert_eq!(warnings.len(), 2, "one a service: {warnings:?}");
    assert!(
        warnings[0].contains("_redirect") && warnings[0].contains("_ttl"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("services.ra2") && warnings[1].contains("_id"),
        "{warnings:?}"
    );
    assert!(
        !warnings[0].contains("_phone_number"),
        "an empty option is unset, not warned about: {warnings:?}"
    );
}

#[test]
fn another_types_options_are_warned_about_not_read() {
    let text = format!(
        "{GROUP}[services.ra]
type = \"request-access\"
match_without_code = true
         [services.mi]
type = \"match-interaction\"
_ttl = 30
_provide_code = \"maybe\"
         [services.s]
type = \"session\"
_ttl = 60
"
    );
    let (c, warnings) = load(&text).expect("valid: a misplaced option is not a bad value");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let ra = warnings.iter().find(|w| w.contains("services.ra"));
    assert!(
        ra.is_some_and(
            |w| w.contains("request-access service") && w.contains("match_without_code")
        ),
        "{warnings:?}"
    );
    let mi = warnings.iter().find(|w| w.contains("services.mi"));
    assert!(
        mi.is_some_and(|w| w.contains("_ttl") && w.contains("_provide_code")),
        "{warnings:?}"
    );
    let service = |n: &str| {
        c.services
            .iter()
            .find(|(name, _)| name.as_str() == n)
            .map(|(_, s)| s.clone())
            .expect("service")
    };
    assert!(!service("ra").match_without_code, "not acted on");
    assert_eq!(service("s").ttl.map(|t| t.secs()), Some(60));
}

#[test]
fn overrides_beat_the_file_and_name_the_flag() {
    let (c, _) =
        load("[server]\nlisten = \"127.0.0.1:9000\"\nstore = \"memory://\"\n").expect("valid");
    assert_eq!(c.server.listen.port(), 9000);
    let c = c
        .with_overrides(Some("127.0.0.1:0"), Some("sqlite://x.db"))
        .expect("valid");
    assert_eq!(
        (c.server.listen.port(), c.server.store.to_string()),
        (0, "sqlite://x.db".to_owned())
    );
    let err = Config::demo()
        .with_overrides(Some("nowhere"), None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("--listen"), "{err}");
    let err = Config::demo()
        .with_overrides(None, Some("mysql://x"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("--store") && err.contains("mysql://x"),
        "{err}"
    );
}

#[test]
fn a_password_file_gives_its_first_line_and_excludes_an_inline_password() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("pw"), "from-file\r\nsecond line\n").expect("write");
    let text = "[auth]\nusername = \"gms\"\npassword_file = \"pw\"\n\
                [auth.admin]\nusername = \"ops\"\npassword_file = \"pw\"\n";
    let (c, _) = Config::from_toml_in(text, "t.toml", Some(dir.path())).expect("valid");
    let pw = |c: &Option<Credentials>| c.as_ref().map(|c| c.password.expose().to_owned());
    assert_eq!(pw(&c.auth).as_deref(), Some("from-file"));
    assert_eq!(pw(&c.admin_auth).as_deref(), Some("from-file"));
    let cases = [
        (
            "[auth]\nusername = \"u\"\npassword = \"p\"\npassword_file = \"pw\"\n",
            "auth.password_file",
        ),
        (
            "[auth.metrics]\nusername = \"u\"\npassword_file = \"missing\"\n",
            "auth.metrics.password_file",
        ),
        (
            "[services.x]\ntype = \"session\"\nusername = \"u\"\npassword = \"p\"\npassword_file = \"pw\"\n",
            "services.x.password_file",
        ),
    ];
    for (text, key) in cases {
        let err = Config::from_toml_in(text, "t.toml", Some(dir.path()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| panic!("accepted: {text}"));
        assert!(err.contains(key), "{key}: {err}");
    }
    let err = load("[auth]\nusername = \"u\"\npassword_file = \"/no/such/pw\"\n")
        .err()
        .unwrap_or_default();
    assert!(
        err.contains("/no/such/pw") && err.contains("auth.password_file"),
        "{err}"
    );
    let (c, _) = Config::from_toml_in(
        "[services.x]\ntype = \"session\"\nusername = \"u\"\npassword_file = \"pw\"\n",
        "t.toml",
        Some(dir.path()),
    )
    .expect("valid");
    let creds = c
        .services
        .values()
        .next()
        .and_then(|s| s.credentials.clone());
    assert_eq!(pw(&creds).as_deref(), Some("from-file"));
}

#[test]
fn credential_variables_beat_the_file_key_by_key() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let (c, _) = load("[auth]\nusername = \"gms\"\npassword = \"file\"\n").expect("valid");
    let c = c
        .with_env_credentials(env(&[("ACCESS_BROKER_AUTH_PASSWORD", "env")]))
        .expect("valid");
    let auth = c.auth.expect("auth");
    assert_eq!(
        (auth.username.as_str(), auth.password.expose()),
        ("gms", "env")
    );
    let c = Config::demo()
        .with_env_credentials(env(&[
            ("ACCESS_BROKER_ADMIN_USERNAME", "ops"),
            ("ACCESS_BROKER_ADMIN_PASSWORD", "s3"),
            ("ACCESS_BROKER_METRICS_USERNAME", ""),
        ]))
        .expect("valid");
    assert!(c.auth.is_none() && c.metrics_auth.is_none());
    assert_eq!(c.admin_auth.map(|a| a.username), Some("ops".to_owned()));
    let err = Config::demo()
        .with_env_credentials(env(&[("ACCESS_BROKER_METRICS_USERNAME", "prom")]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("ACCESS_BROKER_METRICS_PASSWORD"), "{err}");
    assert!(
        !format!(
            "{:?}",
            Config::demo().with_env_credentials(env(&[
                ("ACCESS_BROKER_AUTH_USERNAME", "u"),
                ("ACCESS_BROKER_AUTH_PASSWORD", "hunter2"),
            ]))
        )
        .contains("hunter2")
    );
}

#[test]
fn limits_and_server_limits_parse() {
    let (c, _) = load("[limits]\nrequests_per_second = 0\nreservations_per_client = 0\nmax_sessions = 0\nmax_storage_bytes = 0\nclient_ip_header = \"X-Forwarded-For\"\n")
        .expect("valid");
    assert_eq!(
        c.limits.client_ip_header.as_ref().map(|h| h.as_str()),
        Some("x-forwarded-for")
    );
    assert!(c.limits.requests_per_second.is_none() && c.limits.max_sessions.is_none());
    let (c, _) = load("[limits]\nrequests_per_second = 10\nreservations_per_client = 2\nmax_sessions = 1000\nmax_storage_bytes = 1\n")
        .expect("valid");
    assert_eq!(c.limits.requests_per_second.map(|n| n.get()), Some(10));
    assert_eq!(c.limits.reservations_per_client, Some(2));
    assert_eq!(c.limits.max_sessions, Some(1000));
    assert_eq!(c.limits.max_storage_bytes, Some(1));
    let (c, _) = load("[limits]\nclient_ip_header = \"\"\n").expect("valid");
    assert!(c.limits.client_ip_header.is_none());
    let (c, _) = load("").expect("valid");
    let s = &c.server;
    assert_eq!((s.max_connections, s.store_max_connections), (10_000, 16));
    assert_eq!(
        (
            s.header_timeout.as_millis(),
            s.request_timeout.as_millis(),
            s.shutdown_timeout.as_millis()
        ),
        (10_000, 30_000, 10_000)
    );
    assert!(s.tls.is_none());
    for (text, key) in [
        ("header_timeout_ms = 0", "server.header_timeout_ms"),
        ("request_timeout_ms = -5", "server.request_timeout_ms"),
        ("max_connections = 0", "server.max_connections"),
        // Each accepted before and failed after start (panic, abort, 503 for ever).
        (
            "max_connections = 2305843009213693952",
            "server.max_connections",
        ),
        (
            "store_max_connections = 1099511627776",
            "server.store_max_connections",
        ),
        ("store_timeout_ms = 2147483648", "server.store_timeout_ms"),
        (
            "max_body_bytes = 9223372036854775807",
            "server.max_body_bytes",
        ),
    ] {
        let err = load(&format!("[server]\n{text}\n"))
            .err()
            .unwrap_or_default();
        assert!(err.contains(key), "{text}: {err}");
    }
    for (text, key, says) in [
        (
            "requests_per_second = 5000000000",
            "limits.requests_per_second",
            "at most",
        ),
        (
            "max_sessions = -1",
            "limits.max_sessions",
            "0 (off) or more",
        ),
        (
            "client_ip_header = \"x forwarded\"",
            "limits.client_ip_header",
            "not a header name",
        ),
        ("burst = 3", "limits.burst", "unknown key"),
    ] {
        let err = load(&format!("[limits]\n{text}\n"))
            .err()
            .unwrap_or_default();
        assert!(err.contains(key) && err.contains(says), "{text}: {err}");
    }
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let (c, _) = load("[auth]\nusername = \"gms\"\npassword = \"hunter2\"\n").expect("valid");
    assert!(!format!("{c:?}").contains("hunter2"));
}

/// A password or secret of the wrong type is named, not quoted: serde quotes the value.
#[test]
fn a_secret_of_the_wrong_type_is_not_echoed() {
    for text in [
        "[auth]\nusername = \"gms\"\npassword = 12345678\n",
        "[events]\nurl = \"http://127.0.0.1:9/\"\nsecret = 42424242\n",
    ] {
        let err = load(text).expect_err("a number is no password");
        assert!(err.contains("not a string"), "{err}");
        assert!(
            !err.contains("12345678") && !err.contains("42424242"),
            "{err}"
        );
    }
}

/// A webhook URL that does not parse is quoted without its query or user-info (a token
/// or password there was printed on exit 2).
#[test]
fn a_bad_events_url_is_quoted_without_its_secrets() {
    for url in [
        "http://u:TOKB6@127.0.0.1:99999/ev",
        "http://127.0.0.1:99999/ev?token=TOKB4",
    ] {
        let err = load(&format!("[events]\nurl = \"{url}\"\nsecret = \"k\"\n"))
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("events.url") && err.contains("127.0.0.1"),
            "{err}"
        );
        assert!(!err.contains("TOKB"), "{err}");
    }
}
