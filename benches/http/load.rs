//! The closed-loop load generator: one keep-alive connection per virtual client, each sending
//! its next request when the last answer arrives. Only answers completed inside the measured
//! window count; latencies go to an HDR histogram.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::Settings;
use crate::report::Row;
use crate::server::Proc;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scenario {
    /// The floor's fixed answer.
    Floor,
    /// request-access on the client's own session, again and again: after the first one each
    /// is a renewal, i.e. one durable write per request.
    Access,
    /// request-access then match-interaction: a fresh allocation and a release per pair.
    Pairs,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::Floor => "fixed JSON",
            Self::Access => "request-access",
            Self::Pairs => "access+match pairs",
        }
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    refused: u64,
    errors: u64,
    hist: Option<Histogram<u64>>,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn post(
    c: &reqwest::Client,
    url: String,
    form: &[(&str, &str)],
) -> Result<(u16, String), ()> {
    let r = c.post(url).form(form).send().await.map_err(|_| ())?;
    let status = r.status().as_u16();
    Ok((status, r.text().await.map_err(|_| ())?))
}

async fn virtual_client(
    base: String,
    scenario: Scenario,
    start: Instant,
    from: Instant,
    until: Instant,
) -> Tally {
    let c = client();
    let mut t = Tally {
        hist: Histogram::new_with_bounds(1, 60_000_000, 3).ok(),
        ..Tally::default()
    };
    let mut session = String::new();
    if scenario != Scenario::Floor {
        let Ok((200, body)) = post(
            &c,
            format!("{base}/genesys/1/service/callback"),
            &[("who", "bench")],
        )
        .await
        else {
            t.errors += 1;
            return t;
        };
        session = json_field(&body, "_id");
    }
    let _ = start;
    while Instant::now() < until {
        let sent = Instant::now();
        let outcome = match scenario {
            Scenario::Floor => post(
                &c,
                format!("{base}/genesys/1/service/request-access"),
                &[("_id", "1-x")],
            )
            .await
            .map(|(s, _)| s),
            Scenario::Access => {
                let form = [
                    ("_id", session.as_str()),
                    ("_booking_expiration_timeout", "5"),
                ];
                post(
                    &c,
                    format!("{base}/genesys/1/service/request-access"),
                    &form,
                )
                .await
                .map(|(s, _)| s)
            }
            Scenario::Pairs => {
                let form = [
                    ("_id", session.as_str()),
                    ("_booking_expiration_timeout", "5"),
                ];
                match post(
                    &c,
                    format!("{base}/genesys/1/service/request-access"),
                    &form,
                )
                .await
                {
                    Ok((200, body)) => {
                        record(&mut t, sent, from, until, 200);
                        let number = json_field(&body, "_access_number");
                        let sent = Instant::now();
                        let s = post(
                            &c,
                            format!("{base}/genesys/1/service/match-interaction"),
                            &[("_access_number", number.as_str())],
                        )
                        .await
                        .map(|(s, _)| s);
                        record(&mut t, sent, from, until, s.unwrap_or(0));
                        continue;
                    }
                    other => other.map(|(s, _)| s),
                }
            }
        };
        record(&mut t, sent, from, until, outcome.unwrap_or(0));
    }
    if !session.is_empty() {
        // Ending the session releases its number, so the next scenario starts with a full pool.
        let _ = c
            .delete(format!("{base}/genesys/1/service/{session}"))
            .send()
            .await;
    }
    t
}

fn record(t: &mut Tally, sent: Instant, from: Instant, until: Instant, status: u16) {
    let done = Instant::now();
    if sent < from || done > until {
        return;
    }
    match status {
        200..=299 => {
            t.ok += 1;
            if let Some(h) = t.hist.as_mut() {
                let _ = h.record(done.duration_since(sent).as_micros() as u64);
            }
        }
        503 => t.refused += 1,
        _ => t.errors += 1,
    }
}

fn json_field(body: &str, name: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v[name].as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub async fn measure(
    p: &Proc,
    what: &str,
    store: &str,
    pool: usize,
    scenario: Scenario,
    conns: usize,
    s: &Settings,
) -> Row {
    let start = Instant::now();
    let from = start + s.warmup;
    let until = from + s.window;
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(virtual_client(p.url.clone(), scenario, start, from, until)))
        .collect();
    tokio::time::sleep_until(from.into()).await;
    let cpu0 = p.cpu_seconds();
    tokio::time::sleep_until(until.into()).await;
    let cpu = p.cpu_seconds() - cpu0;
    let mut total = Tally {
        hist: Histogram::new_with_bounds(1, 60_000_000, 3).ok(),
        ..Tally::default()
    };
    for task in tasks {
        let t = task.await.unwrap_or_default();
        total.ok += t.ok;
        total.refused += t.refused;
        total.errors += t.errors;
        if let (Some(all), Some(h)) = (total.hist.as_mut(), t.hist.as_ref()) {
            let _ = all.add(h);
        }
    }
    let secs = s.window.as_secs_f64();
    let (p50, p99) = total.hist.as_ref().map_or((0.0, 0.0), |h| {
        (
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
        )
    });
    let (_, peak) = p.memory_mb();
    let row = Row {
        what: what.to_owned(),
        store: store.to_owned(),
        pool,
        scenario: scenario.name().to_owned(),
        conns,
        rps: total.ok as f64 / secs,
        p50_ms: p50,
        p99_ms: p99,
        refused: total.refused,
        errors: total.errors,
        peak_rss_mb: peak,
        cpu_pct: 100.0 * cpu / secs,
        note: None,
    };
    eprintln!("{}", row.line());
    row
}

/// Makes `n` long reservations (request-interaction, 1800 s) with 32 clients; returns how many.
pub async fn fill(p: &Proc, n: usize) -> usize {
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (base, done) = (p.url.clone(), done.clone());
            tokio::spawn(async move {
                let c = client();
                for _ in (i..n).step_by(32) {
                    let form = [("_booking_expiration_timeout", "1800")];
                    if let Ok((200, _)) = post(
                        &c,
                        format!("{base}/genesys/1/service/request-interaction"),
                        &form,
                    )
                    .await
                    {
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    done.load(std::sync::atomic::Ordering::Relaxed)
}
