//! Calls made at once answer as if made one by one, on every store: session ends and the
//! storage API's writes (PostgreSQL batches each kind: the calls of a kind waiting together
//! go in one transaction, `store/postgres/ending.rs`, `storing.rs`).

use futures::future::join_all;

use crate::helpers::TestApp;
use crate::on_every_backend;

on_every_backend!(
    sessions_ended_at_once_end_once_each_with_their_reservations,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let mut ids = Vec::new();
        for i in 0..30 {
            ids.push(app.session(&[("n", &i.to_string())]).await);
        }
        for id in &ids[..10] {
            let r = app
                .post("/genesys/1/service/request-access", &[("_id", id)])
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
        assert_eq!(reserved(&app).await, 10);
        // Every session ended twice, all at once.
        let paths: Vec<String> = ids
            .iter()
            .chain(&ids)
            .map(|id| format!("/genesys/1/service/{id}"))
            .collect();
        let ends = paths.iter().map(|path| app.delete(path));
        let answers = join_all(ends).await;
        for id in &ids {
            let answered: Vec<u16> = answers
                .iter()
                .zip(ids.iter().chain(&ids))
                .filter(|(_, of)| *of == id)
                .map(|(r, _)| r.status.as_u16())
                .collect();
            let mut sorted = answered.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [200, 404], "session {id}: {answered:?}");
        }
        assert_eq!(reserved(&app).await, 0, "their reservations ended");
        for id in &ids {
            app.get(&format!("/genesys/1/storage/{id}.data"))
                .await
                .error(404, "NotFound");
        }
    }
);

on_every_backend!(
    storage_writes_at_once_answer_as_one_by_one,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let id = app
            .post("/genesys/1/storage/60", &[("base", "0")])
            .await
            .field("id");
        // 40 changes of one entry at once, each adding its own field: none is lost.
        let names: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
        let changes = names.iter().enumerate().map(|(i, name)| {
            let value = i.to_string();
            let path = format!("/genesys/1/storage/{id}/120");
            let app = &app;
            async move { app.post(&path, &[(name.as_str(), value.as_str())]).await }
        });
        for r in join_all(changes).await {
            assert_eq!(r.status, 200, "{}", r.text);
        }
        let all = app.get(&format!("/genesys/1/storage/{id}")).await;
        assert_eq!(all.field("base"), "0");
        for (i, name) in names.iter().enumerate() {
            assert_eq!(all.field(name), i.to_string(), "{name}");
        }
        // 20 new entries at once: each keeps its own fields.
        let puts = (0..20).map(|i| {
            let value = i.to_string();
            let app = &app;
            async move {
                (
                    i,
                    app.post("/genesys/1/storage/60", &[("v", value.as_str())])
                        .await,
                )
            }
        });
        let made = join_all(puts).await;
        for (i, r) in &made {
            let entry = app
                .get(&format!("/genesys/1/storage/{}", r.field("id")))
                .await;
            assert_eq!(entry.field("v"), i.to_string());
        }
        // One entry deleted ten times at once, a change of it among them: one delete finds it.
        let path = format!("/genesys/1/storage/{id}");
        let deletes = (0..10).map(|_| app.delete(&path));
        let mut statuses: Vec<u16> = join_all(deletes)
            .await
            .iter()
            .map(|r| r.status.as_u16())
            .collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 404, 404, 404, 404, 404, 404, 404, 404, 404]);
        app.get(&path).await.error(404, "NotFound");
        app.post(&format!("{path}/60"), &[("late", "1")])
            .await
            .error(404, "NotFound");
    }
);

/// How many numbers of the demo's group are reserved (the admin API).
async fn reserved(app: &TestApp) -> u64 {
    let r = app.get("/genesys/1/admin/groups/DNIS").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v: serde_json::Value = serde_json::from_str(&r.text).expect("json");
    v["reserved"].as_u64().expect("reserved count")
}

// request-interaction calls at once on a pool of five: five get a number with their new
// session, the others 503 `PoolExhausted` and leave no session behind (PostgreSQL refuses
// them inside a batch whose other calls commit: their sessions go back out in the same
// transaction, `store/postgres/interacting.rs`).
on_every_backend!(
    request_interactions_at_once_leave_no_session_when_refused,
    |backend| async move {
        let toml = "[resource_groups.FIVE]\nnumbers = [\"100-104\"]\n\
                    [services.ri]\ntype = \"request-interaction\"\n_resource_group = \"FIVE\"\n";
        let app = TestApp::spawn_with(backend, toml).await;
        let calls = (0..30).map(|i| {
            let value = i.to_string();
            let app = &app;
            async move {
                app.post("/genesys/1/service/ri", &[("who", value.as_str())])
                    .await
            }
        });
        let answers = join_all(calls).await;
        let mut numbers = Vec::new();
        for r in &answers {
            match r.status.as_u16() {
                200 => {
                    numbers.push(r.field("_access_number"));
                    let session = app
                        .get(&format!("/genesys/1/service/{}", r.field("_id")))
                        .await;
                    assert_eq!(session.status, 200, "{}", session.text);
                }
                _ => {
                    r.error(503, "PoolExhausted");
                }
            }
        }
        numbers.sort();
        numbers.dedup();
        assert_eq!(numbers.len(), 5, "five numbers, each once: {numbers:?}");
        let usage = app
            .store
            .store
            .usage()
            .await
            .expect("usage")
            .expect("every store counts");
        assert_eq!(usage.sessions, 5, "no session left by a refused call");
    }
);

// Room made by a delete is there for a burst right after it: with `max_storage_bytes` at
// 3,000, an entry filled to near it and deleted, then 100 writes of 49 bytes at once, 61 are
// let in. On PostgreSQL the burst met the reading of the store begun for the first of them
// (a round trip) and most were refused with the deleted entry's bytes (an outside audit:
// 1, 32 or 42 let in, in a few rounds of twelve); the refusals now wait for that reading.
on_every_backend!(
    room_made_by_a_delete_is_there_for_a_burst,
    |backend| async move {
        let toml = format!(
            "[limits]\nmax_storage_bytes = 3000\n{}",
            crate::helpers::DEMO
        );
        let app = TestApp::spawn_with(backend, &toml).await;
        let value = "v".repeat(46);
        for round in 0..12 {
            let filler = "f".repeat(2_900);
            let made = app
                .post("/genesys/1/storage/300", &[("big", &filler)])
                .await;
            assert_eq!(made.status, 200, "round {round}: {}", made.text);
            let id = made.field("id");
            let gone = app.delete(&format!("/genesys/1/storage/{id}")).await;
            assert_eq!(gone.status, 200, "{}", gone.text);
            let names: Vec<String> = (0..100).map(|i| format!("f{i:02}")).collect();
            let writes = names.iter().map(|name| {
                let app = &app;
                let value = value.as_str();
                async move {
                    app.post("/genesys/1/storage/300", &[(name.as_str(), value)])
                        .await
                }
            });
            let answers = join_all(writes).await;
            let mut kept = Vec::new();
            for r in &answers {
                match r.status.as_u16() {
                    200 => kept.push(r.field("id")),
                    _ => {
                        r.error(507, "StoreFull");
                    }
                }
            }
            // 49 bytes each (name and value): 61 fit in 3,000. A store may count on the
            // strict side by an entry.
            assert!(
                (59..=61).contains(&kept.len()),
                "round {round}: {} let in of 100",
                kept.len()
            );
            for id in kept {
                let r = app.delete(&format!("/genesys/1/storage/{id}")).await;
                assert_eq!(r.status, 200, "{}", r.text);
            }
        }
    }
);

// A burst on a small pool: every refusal's `Retry-After` is the first of its reservations'
// ends, as one by one. On PostgreSQL a batch refusing while another batch in flight took
// numbers counted only the reservations committed before it (an outside audit: blocks of
// 27–106 refusals of ~100 told another time, up to six times too long); it now counts again
// once it has committed (`store/postgres/retry_after.rs`).
on_every_backend!(
    a_burst_on_a_small_pool_is_told_when_the_first_reservation_ends,
    |backend| async move {
        let toml = "[resource_groups.SIX]\nnumbers = [\"100-105\"]\n\
                    [services.ri]\ntype = \"request-interaction\"\n_resource_group = \"SIX\"\n";
        let app = TestApp::spawn_with(backend, toml).await;
        for round in 0..5u64 {
            let calls = (0..100u64).map(|i| {
                let booking = (10 + (i * 37 + round * 11) % 100).to_string();
                let app = &app;
                async move {
                    app.post(
                        "/genesys/1/service/ri",
                        &[("_booking_expiration_timeout", booking.as_str())],
                    )
                    .await
                }
            });
            let answers = join_all(calls).await;
            let taken: Vec<&crate::helpers::Resp> =
                answers.iter().filter(|r| r.status == 200).collect();
            assert_eq!(taken.len(), 6, "round {round}");
            let first: u64 = taken
                .iter()
                .map(|r| r.field("_expiration_time").parse::<u64>().expect("seconds"))
                .min()
                .expect("six");
            for r in answers.iter().filter(|r| r.status != 200) {
                r.error(503, "PoolExhausted");
                let told: u64 = r.headers["retry-after"]
                    .to_str()
                    .expect("text")
                    .parse()
                    .expect("seconds");
                assert!(
                    told == first || told == first + 1,
                    "round {round}: told {told} s, the first reservation ends in {first} s"
                );
            }
            for r in taken {
                let ended = app
                    .delete(&format!("/genesys/1/service/{}", r.field("_id")))
                    .await;
                assert_eq!(ended.status, 200, "{}", ended.text);
            }
        }
    }
);

// Room made by expiry is there for a burst when the count is read again: with
// `max_sessions` at 20, twenty sessions expired and the node's count over a second old, 100
// creations at once let exactly 20 in. (An outside audit saw PostgreSQL refuse some of them
// at "28 live sessions of 20" when each call of the burst began a reading of its own, their
// snapshots late behind the pool; readings are now one at a time, `Limits::read`. This test
// did not reproduce that race in-process, its script did: 4 bad rounds of 24 before, 0 of
// 24 after; it holds the rule itself on every store.)
on_every_backend!(
    room_made_by_expiry_is_there_for_a_burst,
    |backend| async move {
        let toml = format!("[limits]\nmax_sessions = 20\n{}", crate::helpers::DEMO);
        let app = TestApp::spawn_with(backend, &toml).await;
        for round in 0..5 {
            for _ in 0..20 {
                let r = app
                    .post("/genesys/1/service/callback", &[("_ttl", "60")])
                    .await;
                assert_eq!(r.status, 200, "round {round}: {}", r.text);
            }
            app.post("/genesys/1/service/callback", &[])
                .await
                .error(507, "StoreFull");
            app.advance(std::time::Duration::from_secs(61));
            tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
            let calls =
                (0..100).map(|_| app.post("/genesys/1/service/callback", &[("_ttl", "30")]));
            let answers = join_all(calls).await;
            let kept = answers.iter().filter(|r| r.status == 200).count();
            assert_eq!(kept, 20, "round {round}: {kept} let in of 100");
            // Their time over, and the count read again (at most every 100 ms when full).
            app.advance(std::time::Duration::from_secs(31));
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
);
