//! The pool-size advisor: from a group's observed traffic, the Erlang-B pool size for 1 % and
//! 0.1 % refusals.
//!
//! Offered load A (in numbers) comes from Little's law: the mean count of reserved numbers is
//! the carried load, and the offered load is that divided by the share of requests accepted.
//! The holding time shown is A divided by the request rate.
//!
//! Occupancy counts every number the traffic keeps from being lent: reserved, and resting
//! after its reservation ended (`cool_down`), since a resting number cannot take a request
//! either. A group with cool-down therefore needs more numbers than its reservations alone
//! suggest, and the advice says so. The advice is never below one number, and it carries the
//! minutes it was computed from (`history`), so an operator can see what it rests on.

use crate::metrics::{Point, Window};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Advice {
    pub window_minutes: u64,
    pub requests_per_second: f64,
    pub refusal_ratio: f64,
    pub offered_load: f64,
    pub mean_holding_seconds: f64,
    pub size_for_1_percent: u64,
    pub size_for_0_1_percent: u64,
    /// The minutes the advice was computed from, oldest first.
    pub history: Vec<Point>,
}

/// Erlang B: the probability that a request finds all `n` numbers busy under load `a`.
pub fn erlang_b(n: u64, a: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=n {
        b = a * b / (k as f64 + a * b);
    }
    b
}

/// Smallest pool whose Erlang-B refusal probability is at most `target`; at least one
/// number (a group without traffic still needs one to answer its first request).
pub fn pool_size_for(a: f64, target: f64) -> u64 {
    if a <= 0.0 || a.is_nan() {
        return 1;
    }
    let mut b = 1.0;
    let mut n = 0u64;
    while b > target {
        n += 1;
        b = a * b / (n as f64 + a * b);
        if n > 10_000_000 {
            break;
        }
    }
    n
}

pub fn advise(window: &Window) -> Advice {
    let seconds = (window.minutes.max(1) * 60) as f64;
    let rate = window.requests as f64 / seconds;
    let refusal_ratio = if window.requests == 0 {
        0.0
    } else {
        window.refusals as f64 / window.requests as f64
    };
    let accepted = (1.0 - refusal_ratio).max(0.01);
    let offered = window.mean_reserved() / accepted;
    let holding = if rate > 0.0 { offered / rate } else { 0.0 };
    Advice {
        window_minutes: window.minutes,
        requests_per_second: rate,
        refusal_ratio,
        offered_load: offered,
        mean_holding_seconds: holding,
        size_for_1_percent: pool_size_for(offered, 0.01),
        size_for_0_1_percent: pool_size_for(offered, 0.001),
        history: window.points.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_b_known_values() {
        assert!((erlang_b(1, 1.0) - 0.5).abs() < 1e-12);
        assert!((erlang_b(2, 1.0) - 0.2).abs() < 1e-12);
        // 1 request/s held 300 s: about 344 numbers for 0.1 % (gms-reference.md).
        let n = pool_size_for(300.0, 0.001);
        assert!((340..=350).contains(&n), "{n}");
        assert!(erlang_b(n, 300.0) <= 0.001 && erlang_b(n - 1, 300.0) > 0.001);
        assert_eq!(pool_size_for(0.0, 0.01), 1, "never fewer than one number");
    }

    #[test]
    fn resting_numbers_count_as_occupied_and_the_history_is_shown() {
        let m = crate::metrics::Metrics::new();
        let stats = |free| crate::store::GroupStats {
            name: crate::domain::GroupName::parse("G").expect("group"),
            allocation: crate::domain::Allocation::RoundRobin,
            booking_timeout: None,
            size: 10,
            free,
            reserved: 2,
            cooling: 10 - 2 - free,
            quarantined: 0,
            retiring: 0,
            policy: crate::domain::NumberPolicy::default(),
        };
        // 2 reserved and 4 cooling: 6 of 10 cannot be lent.
        m.sample_pools(&[stats(4)], 100);
        m.reserved("G", 100);
        let advice = advise(&m.last_hour("G", 100));
        assert!((advice.offered_load - 6.0).abs() < 1e-9, "{advice:?}");
        assert_eq!(advice.history.len(), 1);
        assert_eq!(advice.history[0].occupied, Some(6.0));
        assert_eq!(advice.history[0].requests, 1);
        let idle = advise(&m.last_hour("nobody", 100));
        assert_eq!((idle.size_for_1_percent, idle.size_for_0_1_percent), (1, 1));
    }
}
