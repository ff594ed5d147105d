//! PostgreSQL's own floor: pgbench running the best single-statement allocation we can write
//! (`UPDATE … WHERE number = (SELECT … FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING …`), one
//! transaction per allocation, `synchronous_commit` as the server has it (on by default), with
//! the same client counts as the product.

use std::process::Command;

use crate::Settings;
use crate::report::Row;

/// Creates a schema and returns the URL that puts it first on the search path.
pub async fn fresh_schema(base: &str, prefix: &str) -> Option<String> {
    let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(conn);
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE SCHEMA {name}"))
        .await
        .ok()?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-csearch_path%3D{name}"))
}

/// Drops the schema a `fresh_schema` URL names.
pub async fn drop_schema(base: &str, url: &str) {
    let Some(name) = url
        .rsplit("search_path%3D")
        .next()
        .filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    else {
        return;
    };
    if let Ok((client, conn)) = tokio_postgres::connect(base, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
            .await;
    }
}

const SCRIPT: &str = "UPDATE pool SET taken_until = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 1 \
WHERE number = (SELECT number FROM pool WHERE taken_until < (extract(epoch FROM clock_timestamp()) * 1000)::bigint \
ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING number;\n";

pub async fn run(s: &Settings, clients: usize) -> Option<Row> {
    let (client, conn) = tokio_postgres::connect(&s.pg, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(conn);
    let schema = format!("pgb_{}", uuid::Uuid::new_v4().simple());
    let setup = format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.pool (number text PRIMARY KEY, taken_until bigint NOT NULL DEFAULT 0);
         INSERT INTO {schema}.pool (number) SELECT (10000000 + g)::text FROM generate_series(0, 9999) g;"
    );
    client.batch_execute(&setup).await.ok()?;
    let sync: String = client
        .query_one("SHOW synchronous_commit", &[])
        .await
        .ok()?
        .get(0);
    let dir = tempfile::tempdir().ok()?;
    let script = dir.path().join("allocate.sql");
    std::fs::write(&script, SCRIPT).ok()?;
    let out = Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-n",
            "-M",
            "prepared",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
        ])
        .arg(s.window.as_secs().max(1).to_string())
        .arg("-f")
        .arg(&script)
        .arg("test")
        .env("PGOPTIONS", format!("-c search_path={schema}"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps ="))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<f64>().ok())?;
    let latency = text
        .lines()
        .find(|l| l.starts_with("latency average"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let _ = client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await;
    let row = Row {
        what: "pgbench".into(),
        store: format!("postgres (synchronous_commit={sync})"),
        pool: 10_000,
        scenario: "SKIP LOCKED allocation".into(),
        conns: clients,
        rps: tps,
        p50_ms: latency,
        ..Row::default()
    };
    eprintln!("{}", row.line());
    Some(row)
}
