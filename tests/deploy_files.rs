//! The files in `deploy/` are checked, not just shipped:
//! - `prometheus-rules.yml` parses, every rule has what Alertmanager routes on, and every
//!   `access_broker_*` metric an expression names is one the binary exposes on `/metrics`
//!   (started on memory://), or is listed in [`PENDING`] with the reason it is not there yet;
//! - `access-broker.service` passes `systemd-analyze verify` with no warning (ignored, with the
//!   reason, where `systemd-analyze` is missing; see `build.rs`).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;
use support::process::{BIN, Node};

/// Metrics the rules may name although this build does not expose them yet, and why.
const PENDING: &[(&str, &str)] = &[];

/// Metric names outside access-broker that the rules may use.
const EXTERNAL: &[(&str, &str)] = &[("up", "made by Prometheus for every scrape target")];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The sample names `/metrics` can carry, from its `# TYPE` lines (a family with no sample
/// yet still has its TYPE line): counters as `_total` (the Prometheus text format names the
/// family so already, OpenMetrics without it), histograms as `_bucket|_sum|_count`.
fn exposed(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                let base = name.strip_suffix("_total").unwrap_or(name);
                names.insert(format!("{base}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Identifiers in a PromQL expression: runs of `[A-Za-z0-9_:]` starting with a letter, `_`
/// or `:`, outside quoted strings, with the character that follows each.
fn identifiers(expr: &str) -> Vec<(String, Option<char>)> {
    let mut out = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' {
            for d in chars.by_ref() {
                if d == c {
                    break;
                }
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let mut word = String::from(c);
            while let Some(&d) = chars.peek() {
                if d.is_ascii_alphanumeric() || d == '_' || d == ':' {
                    word.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push((word, chars.peek().copied()));
        } else if c.is_ascii_digit() {
            // a number or a duration such as 5m: not an identifier
            while chars.peek().is_some_and(|d| d.is_ascii_alphanumeric()) {
                chars.next();
            }
        }
    }
    out
}

fn rules() -> Vec<Value> {
    let path = repo("deploy/prometheus-rules.yml");
    let text = std::fs::read_to_string(&path).expect("read deploy/prometheus-rules.yml");
    let doc: Value = serde_norway::from_str(&text).expect("deploy/prometheus-rules.yml is YAML");
    let groups = doc["groups"].as_sequence().expect("a `groups` list");
    assert!(!groups.is_empty(), "no rule groups");
    groups
        .iter()
        .flat_map(|g| {
            assert!(g["name"].as_str().is_some(), "a group without a name");
            g["rules"]
                .as_sequence()
                .expect("each group has `rules`")
                .clone()
        })
        .collect()
}

#[tokio::test]
async fn prometheus_rules_name_only_metrics_the_binary_exposes() {
    let node = Node::start(&repo("config/demo.toml"), "memory://", &[]);
    let text = reqwest::get(format!("{}/metrics", node.url))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    let exposed = exposed(&text);
    assert!(
        exposed.contains("access_broker_pool_free"),
        "the parser found no metrics in\n{text}"
    );

    let rules = rules();
    assert!(rules.len() >= 5, "only {} rules", rules.len());
    let mut named = BTreeSet::new();
    let mut problems = Vec::new();
    for rule in &rules {
        let alert = rule["alert"].as_str().unwrap_or("<no alert name>");
        let expr = rule["expr"].as_str().unwrap_or_default();
        if expr.trim().is_empty() {
            problems.push(format!("{alert}: no expr"));
        }
        if !matches!(rule["labels"]["severity"].as_str(), Some("page" | "ticket")) {
            problems.push(format!("{alert}: labels.severity is not page or ticket"));
        }
        if rule["annotations"]["summary"].as_str().is_none() {
            problems.push(format!("{alert}: no annotations.summary"));
        }
        for (word, next) in identifiers(expr) {
            let ours = word.starts_with("access_broker_");
            // A name followed by `{` or `[` is a selector, so a metric; ours are all metrics.
            if !ours && !matches!(next, Some('{' | '[')) {
                continue;
            }
            if ours && !exposed.contains(&word) && !PENDING.iter().any(|(p, _)| *p == word) {
                problems.push(format!(
                    "{alert}: {word} is neither exposed on /metrics nor listed as pending"
                ));
            }
            if !ours && !EXTERNAL.iter().any(|(e, _)| *e == word) {
                problems.push(format!("{alert}: {word} is not an access-broker metric"));
            }
            named.insert(word);
        }
    }
    assert!(problems.is_empty(), "{problems:#?}\nexposed: {exposed:#?}");
    // A pending metric that the binary now exposes should leave the list.
    for (name, why) in PENDING {
        assert!(
            !exposed.contains(*name),
            "{name} is exposed now ({why}): remove it from PENDING"
        );
    }
    for needed in [
        "access_broker_pool_free",
        "access_broker_refusals_total",
        "access_broker_http_requests_total",
        "access_broker_code_lockouts_total",
    ] {
        assert!(named.contains(needed), "no rule uses {needed}");
    }
}

#[test]
fn identifiers_skip_strings_and_durations() {
    let ids = identifiers(r#"sum by (group) (rate(x_total{status="503"}[5m])) > 0.5"#);
    let words: Vec<_> = ids.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(words, ["sum", "by", "group", "rate", "x_total", "status"]);
    assert_eq!(ids[4].1, Some('{'));
}

#[test]
#[cfg_attr(
    no_systemd_analyze,
    ignore = "needs systemd-analyze to verify deploy/access-broker.service (apt-get install systemd)"
)]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(repo("deploy/access-broker.service")).expect("read unit");
    assert!(unit.contains("ExecStart=/usr/local/bin/access-broker serve --config "));
    for line in [
        "User=access-broker",
        "StateDirectory=access-broker",
        "WorkingDirectory=/var/lib/access-broker",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "MemoryDenyWriteExecute=yes",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "the unit lacks the line {line}"
        );
    }
    assert!(
        !unit.lines().any(|l| l.starts_with("ExecReload=")),
        "the config is read at start only: no ExecReload"
    );
    // verify checks that ExecStart's program exists: point it at the binary under test.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("access-broker.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/access-broker", BIN)).expect("write");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Warnings (an unknown key, a bad value) leave the exit code 0: any line about the unit
    // is a failure too. Lines about other units (the host's) are not ours to judge.
    let ours: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("access-broker.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}
