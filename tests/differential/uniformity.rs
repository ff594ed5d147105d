//! Random allocation must pick uniformly among the free numbers, whatever lies around them.
//!
//! Comparing answers cannot see this (random picks differ by design), so each store is tested
//! on its own: a group of 20 numbers whose busy numbers form runs of different lengths
//! (including one at the end, which a "random start, then the next free number" scheme wraps
//! onto the first number), then many reserve + match rounds, counting which free number each
//! reservation got, and a chi-square goodness-of-fit test against equal counts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use access_broker::domain::{AccessNumber, Allocation};
use access_broker::store::MatchRequest;
use futures::future::join_all;

use crate::stores::put_group;
use crate::support::{Backend, TestStore, group, reserve_request};

const SIZE: u32 = 20;
/// Positions held for the whole test: runs of 4, 2, 1 and 3 (the last at the end).
const BUSY: [u32; 10] = [2, 3, 4, 5, 9, 10, 14, 17, 18, 19];
/// Draws per free number when time allows (expected count of each cell).
const PER_NUMBER: usize = 100;
/// Fewest draws per free number that still make a sound test (every expected count ≥ 5 is
/// the usual rule; 30 keeps the test's power against a mild bias).
const MIN_PER_NUMBER: usize = 30;
/// Time budget for the draws; PostgreSQL in a debug build is the slow one.
const BUDGET: Duration = Duration::from_secs(12);
/// Reservations made at once by as many sessions (PostgreSQL batches them in one round
/// trip). Within a batch the picks are without replacement, which leaves each number's
/// chance uniform under the hypothesis and only makes the test more conservative.
const BATCH: usize = 4;
/// Upper 10^-6 point of the chi-square distribution with 9 degrees of freedom (10 free
/// numbers - 1): 44.811, computed from the regularized incomplete gamma function (the
/// 0.001 point, 27.877, is in the NIST/SEMATECH e-Handbook, section 1.3.6.7.4, and the same
/// computation reproduces it). Why so strict: CI runs this on three stores every time, so a
/// correct store may fail it only once in a million runs; the biased allocation this test
/// was written for scored 130 to 190.
const CRITICAL_DF9: f64 = 44.811;

pub async fn check(backend: Backend) {
    let Some(t) = TestStore::open(backend).await else {
        return;
    };
    let store = t.store.kind();
    // Round-robin first, so the busy numbers are exactly the ones chosen; then random.
    let spec = group("UNIFORM", SIZE, Allocation::RoundRobin);
    let name = spec.settings.name.clone();
    t.store
        .apply_groups(std::slice::from_ref(&spec))
        .await
        .expect("apply");
    let hour = Duration::from_secs(3600);
    for pos in 0..SIZE {
        let s = t.session(hour).await;
        let mut req = reserve_request(&s, &name);
        req.timeout = Some(access_broker::domain::BookingTimeout::from_secs_lenient(
            1800,
        ));
        let r = t.store.reserve(req).await.expect("reserved");
        assert_eq!(r.number, spec.numbers[pos as usize], "{store}: set-up");
        if !BUSY.contains(&pos) {
            assert!(t.store.release(&r.number).await.expect("release"));
        }
    }
    let changed = put_group(&t.store, &name, Allocation::Random, None).await;
    assert!(!changed.expect("put_group"));

    let free: Vec<AccessNumber> = (0..SIZE)
        .filter(|p| !BUSY.contains(p))
        .map(|p| spec.numbers[p as usize].clone())
        .collect();
    let mut counts: BTreeMap<AccessNumber, usize> = free.iter().map(|n| (n.clone(), 0)).collect();
    let mut drawers = Vec::new();
    for _ in 0..BATCH {
        drawers.push(t.session(hour).await);
    }
    let started = Instant::now();
    let mut draws = 0;
    while draws < PER_NUMBER * free.len()
        && (started.elapsed() < BUDGET || draws < MIN_PER_NUMBER * free.len())
    {
        let picks = join_all(
            drawers
                .iter()
                .map(|s| t.store.reserve(reserve_request(s, &name))),
        )
        .await;
        let mut numbers = Vec::new();
        for r in picks {
            let number = r.expect("reserved").number;
            let Some(count) = counts.get_mut(&number) else {
                panic!("{store}: random allocation handed out {number}, which is busy");
            };
            *count += 1;
            numbers.push(number);
        }
        draws += numbers.len();
        let matched = join_all(numbers.into_iter().map(|number| {
            t.store.match_reservation(MatchRequest {
                number,
                code: None,
                phone: None,
                code_required: true,
                end_session: false,
                with_fields: true,
            })
        }))
        .await;
        for m in matched {
            assert!(
                m.expect("match").into_session().is_some(),
                "{store}: the pick matches"
            );
        }
    }
    let expected = draws as f64 / free.len() as f64;
    let chi2: f64 = counts
        .values()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    eprintln!(
        "{store}: {draws} random picks in {:.1} s, chi-square {chi2:.2} (critical {CRITICAL_DF9})",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        free.len() - 1,
        9,
        "the critical value is for 9 degrees of freedom"
    );
    let table: Vec<String> = counts.iter().map(|(n, c)| format!("{n}: {c}")).collect();
    assert!(
        chi2 < CRITICAL_DF9,
        "{store}: random allocation is not uniform among the free numbers: chi-square \
         {chi2:.1} >= {CRITICAL_DF9} (df 9, p = 1e-6) over {draws} picks, {expected:.0} \
         expected each; busy positions {BUSY:?}; picks per free number: {}",
        table.join(", ")
    );
}
