//! Many fields cost linear time and are bounded: 6,000 keys in one body are refused at once
//! (at most 1,000 per request), and an entry grown by a dozen updates of 1,000 new keys
//! answers in milliseconds until it reaches 10,000 keys, then is refused, while /health stays
//! fast throughout.

use std::time::{Duration, Instant};

use crate::helpers::TestApp;

fn keys(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("k{i}=1"))
        .collect::<Vec<_>>()
        .join("&")
}

async fn post_form(app: &TestApp, path: &str, body: String) -> crate::helpers::Resp {
    app.send(
        app.client
            .post(app.path(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

crate::on_every_backend!(six_thousand_keys_are_refused_fast, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let started = Instant::now();
    let resp = post_form(&app, "/genesys/1/storage/60", keys(0, 6000)).await;
    let msg = resp.error(400, "InvalidParameter");
    assert!(msg.starts_with("fields:"), "{msg}");
    let json: String = format!(
        "{{{}}}",
        (0..6000)
            .map(|i| format!("\"k{i}\":1"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let resp = app
        .send(
            app.client
                .post(app.path("/genesys/1/service/callback"))
                .header("content-type", "application/json")
                .body(json),
        )
        .await;
    resp.error(400, "InvalidParameter");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
});

crate::on_every_backend!(
    a_growing_entry_stays_fast_and_bounded,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let resp = post_form(&app, "/genesys/1/storage/600", keys(0, 1000)).await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        let id = resp.field("id");

        // /health, polled all along: the updates never hold what it needs.
        let health_url = app.path("/health");
        let client = app.client.clone();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let poller = tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            loop {
                let started = Instant::now();
                let ok = client.get(&health_url).send().await.is_ok();
                worst = worst.max(started.elapsed());
                assert!(ok);
                if stop_rx.try_recv().is_ok() {
                    return worst;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });

        let mut worst = Duration::ZERO;
        for round in 1..=12 {
            let started = Instant::now();
            let resp = post_form(
                &app,
                &format!("/genesys/1/storage/{id}/600"),
                keys(round * 1000, 1000),
            )
            .await;
            worst = worst.max(started.elapsed());
            if round <= 9 {
                assert_eq!(resp.status, 200, "round {round}: {}", resp.text);
            } else {
                let msg = resp.error(400, "InvalidParameter");
                assert!(msg.contains("at most 10000"), "{msg}");
            }
        }
        let _ = stop_tx.send(());
        let health_worst = poller.await.expect("poller");
        let resp = app.get(&format!("/genesys/1/storage/{id}")).await;
        assert_eq!(resp.json().as_object().map(|o| o.len()), Some(10_000));
        // Generous bounds for an unoptimised build on a shared machine; the quadratic merge
        // took seconds per update here.
        assert!(worst < Duration::from_secs(2), "slowest update {worst:?}");
        assert!(
            health_worst < Duration::from_secs(1),
            "slowest /health {health_worst:?}"
        );
    }
);
