//! Differential tests: memory, SQLite and PostgreSQL must give the same answers (issue 10,
//! "Same answers on every store").
//!
//! The conformance suite checks each backend against hand-written expectations, one case at a
//! time; it cannot cover the long interleavings where backends drift apart (a cursor kept by
//! one and reset by another, an expiry boundary one side rounds). Here the three stores run
//! side by side, each with its own manual clock advanced by the same amounts, and every answer
//! of every call is compared across them:
//!
//! - `random_operation_sequences_agree_on_every_store`: long seeded sequences of every `Store`
//!   operation on small pools (so exhaustion and wrap-around are common). A failure names the
//!   seed, the step, each store's answer and the steps before it. Replay one seed with
//!   `DIFF_SEED=<n>`, explore with `DIFF_SEED=<a>..<b>`, set the length with `DIFF_STEPS=<n>`
//!   and the steps shown with `DIFF_HISTORY=<n>`. Memory is the reference column; random
//!   picks are lined up across stores by aliases (`stores.rs`).
//! - Targeted cases (`targeted.rs`), one per drift found: the round-robin cursor after an
//!   allocation change, least-recently-used order after an allocation change, round-robin
//!   after the last number was replaced, and the free time of a number whose reservation
//!   expired before its session was ended.
//! - `random_allocation_is_uniform_on_<store>`: random allocation picks uniformly among the
//!   free numbers (a chi-square test), which answer-by-answer comparison cannot see. It is a
//!   statistical test: a correct store fails it once in a million runs.
//!
//! PostgreSQL joins when `TEST_POSTGRES_URL` is set (see `support::pg::base_url`: skipped with
//! a message otherwise, required under `CI=true`).

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod answers;
mod driver;
mod ops;
mod stores;
mod targeted;
mod uniformity;

use stores::Stores;

/// Seeds every run goes through; add the seed of any failure found elsewhere.
const SEEDS: [u64; 8] = [1, 2, 3, 11, 41, 42, 1009, 20_240_610];
/// Operations per seed: long enough for pools to fill, wrap and expire many times over.
const STEPS: usize = 500;

#[tokio::test]
async fn random_operation_sequences_agree_on_every_store() {
    let seeds: Vec<u64> = match std::env::var("DIFF_SEED") {
        // One seed, or a range `a..b` to explore.
        Ok(s) => match s.trim().split_once("..") {
            Some((a, b)) => {
                (a.parse().expect("DIFF_SEED a..b")..b.parse().expect("DIFF_SEED a..b")).collect()
            }
            None => vec![s.trim().parse().expect("DIFF_SEED is an integer or a..b")],
        },
        Err(_) => SEEDS.to_vec(),
    };
    let steps = std::env::var("DIFF_STEPS").ok().map_or(STEPS, |s| {
        s.trim().parse().expect("DIFF_STEPS is an integer")
    });
    let mut failures = Vec::new();
    for seed in seeds {
        let stores = Stores::open().await;
        let started = std::time::Instant::now();
        let (result, tally) = driver::Run::new(seed, stores).await.go(steps).await;
        eprintln!(
            "seed {seed}: {steps} steps in {:.1} s: {} ({tally})",
            started.elapsed().as_secs_f64(),
            if result.is_ok() {
                "same answers"
            } else {
                "DIFFERENT"
            }
        );
        if let Err(report) = result {
            failures.push(report);
        }
    }
    assert!(
        failures.is_empty(),
        "stores disagree ({} seed(s)); replay one with DIFF_SEED=<seed> cargo test --test differential random_operation\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[tokio::test]
async fn changing_allocation_resets_the_round_robin_cursor() {
    targeted::cursor_resets_on_allocation_change().await;
}

#[tokio::test]
async fn changing_allocation_to_lru_orders_free_numbers_alike() {
    targeted::lru_order_after_allocation_change().await;
}

#[tokio::test]
async fn a_config_switching_to_lru_orders_free_numbers_alike() {
    targeted::lru_order_after_config_change().await;
}

#[tokio::test]
async fn round_robin_puts_a_replacement_number_last() {
    targeted::round_robin_after_replacing_the_last_number().await;
}

#[tokio::test]
async fn lru_counts_a_number_free_from_its_expiry_even_if_the_session_ends_later() {
    targeted::lru_counts_from_expiry_when_the_session_ends_later().await;
}

#[tokio::test]
async fn random_allocation_is_uniform_on_memory() {
    uniformity::check(support::Backend::Memory).await;
}

#[tokio::test]
async fn random_allocation_is_uniform_on_sqlite() {
    uniformity::check(support::Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
)]
async fn random_allocation_is_uniform_on_postgres() {
    uniformity::check(support::Backend::Postgres).await;
}
