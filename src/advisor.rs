//! The pool-size advisor: from a group's observed traffic, the Erlang-B pool size for 1 % and
//! 0.1 % refusals.
//!
//! Offered load A (in numbers) comes from Little's law: the mean count of reserved numbers is
//! the carried load, and the offered load is that divided by the share of requests accepted.
//! The holding time shown is A divided by the request rate.

use crate::metrics::Window;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Advice {
    pub window_minutes: u64,
    pub requests_per_second: f64,
    pub refusal_ratio: f64,
    pub offered_load: f64,
    pub mean_holding_seconds: f64,
    pub size_for_1_percent: u64,
    pub size_for_0_1_percent: u64,
}

/// Erlang B: the probability that a request finds all `n` numbers busy under load `a`.
pub fn erlang_b(n: u64, a: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=n {
        b = a * b / (k as f64 + a * b);
    }
    b
}

/// Smallest pool whose Erlang-B refusal probability is at most `target`.
pub fn pool_size_for(a: f64, target: f64) -> u64 {
    if a <= 0.0 {
        return 0;
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
        assert_eq!(pool_size_for(0.0, 0.01), 0);
    }
}
