//! What a node learns of a source's speed from the statements it ran there.
//!
//! The cost model's figures for a database ([`crate::dialect::EngineCosts`]) were measured on
//! one machine against one server; the server a user reaches may be slower (a busy host, a
//! network link, cold caches) or faster. Each statement a federated scan runs as planned is an
//! observation: the seconds the model gave the database's work (`remote`) and the transfer
//! (`fetch`), both from the source's own figures ([`Expected`]), and the seconds the statement
//! took. A least-squares fit
//!
//! ```text
//!   seconds ≈ a · remote + b · fetch        (each statement weighed by its estimate: ratios)
//! ```
//!
//! pulled towards `a = b = 1` (the model as measured) by a prior worth a quarter statement, and
//! forgetting old statements (each new one weighs [`DECAY`]⁻¹ times the last), gives the factors
//! the cut multiplies the estimates by ([`Fit::seconds`]). A fit near 1 is not used
//! ([`DEAD_BAND`]): a plan should not flip between runs for noise, nor for the figures' own
//! errors. `flotilla.federation.learn_costs = false` plans with the measured figures alone.
//!
//! Not observed: a statement sent with join keys (it reads less than was estimated), one whose
//! rows were not all read (a `LIMIT` above it), one that failed, and statements shorter than
//! [`MIN_SECONDS`], where the round trip is all there is. A statement's seconds are the time its
//! connector spent on it, not the time the query spent waiting for rows (see
//! `stream::producer_time`): a slow consumer does not make a database look slow.

use std::sync::Mutex;

/// What each earlier observation weighs when a new one arrives: the fit follows about the last
/// 1 / (1 − DECAY) = 10 statements.
pub const DECAY: f64 = 0.9;

/// What the model as measured weighs in the fit, in statements (each statement's share of
/// work and of transfer counts towards its factor: a quarter of a statement of either).
pub const PRIOR_WEIGHT: f64 = 0.25;

/// Statements observed before a fit is used.
pub const MIN_STATEMENTS: u64 = 3;

/// A factor within `1 / DEAD_BAND ..= DEAD_BAND` is taken as 1. The figures were measured, and
/// their errors for one part offset those for another on the workloads they were measured
/// with: moving one part by less than this broke that more than it helped (SQLite over TPC-H
/// SF 1: its statements over key ranges taught a transfer 1.9× faster than the figure — two
/// ranges decode side by side — and with 1.5 here q18 was then split, 1.7× slower than
/// pushed). A slow server is slower than that.
pub const DEAD_BAND: f64 = 2.0;

/// Statements estimated and taking less than this are not observed.
pub const MIN_SECONDS: f64 = 0.02;

/// The factors are kept within `1 / MAX_FACTOR ..= MAX_FACTOR`.
pub const MAX_FACTOR: f64 = 100.0;

/// What the cost model estimated a federated scan to take, from its source's figures (all its
/// statements together, when it reads key ranges), or one of its statements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    /// Seconds of the database's work.
    pub remote: f64,
    /// Seconds of sending and decoding rows.
    pub fetch: f64,
}

/// How much slower than its figures a source runs (factors above 1) or faster (below 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// The factor for the database's work.
    pub remote: f64,
    /// The factor for sending and decoding rows.
    pub fetch: f64,
    /// Statements observed.
    pub statements: u64,
}

impl Fit {
    /// Seconds `remote` of the database's work and `fetch` of transfer, as estimated from the
    /// source's figures, take by this fit.
    pub fn seconds(&self, remote: f64, fetch: f64) -> f64 {
        self.remote * remote + self.fetch * fetch
    }

    /// For `EXPLAIN`: `learned from 7 statements: remote ×3.2, fetch ×1`.
    pub fn describe(&self) -> String {
        format!(
            "learned from {} statements: remote ×{}, fetch ×{}",
            self.statements,
            factor(self.remote),
            factor(self.fetch)
        )
    }
}

fn factor(f: f64) -> String {
    match f {
        1.0 => "1".to_string(),
        f if f >= 10.0 => format!("{f:.0}"),
        f if f >= 0.1 => format!("{f:.2}"),
        f => format!("{f:.3}"),
    }
}

/// A source's observations, summed for the fit (see the module's documentation).
#[derive(Debug, Default)]
pub struct Learned {
    sums: Mutex<Sums>,
}

/// Weighted sums of the normalized observations: `r = remote / e`, `f = fetch / e`,
/// `y = seconds / e` with `e = remote + fetch`.
#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    rr: f64,
    rf: f64,
    ff: f64,
    ry: f64,
    fy: f64,
    statements: u64,
}

impl Learned {
    /// Adds a statement estimated at `expected` that took `seconds` (unless it is too short or
    /// its figures are not usable).
    pub fn observe(&self, expected: Expected, seconds: f64) {
        let Expected { remote, fetch } = expected;
        let estimate = remote + fetch;
        let usable = [remote, fetch, seconds]
            .iter()
            .all(|v| v.is_finite() && *v >= 0.0);
        if !usable || estimate <= 0.0 || estimate.max(seconds) < MIN_SECONDS {
            return;
        }
        let (r, f, y) = (remote / estimate, fetch / estimate, seconds / estimate);
        let mut sums = self.sums.lock().unwrap_or_else(|e| e.into_inner());
        *sums = Sums {
            rr: sums.rr * DECAY + r * r,
            rf: sums.rf * DECAY + r * f,
            ff: sums.ff * DECAY + f * f,
            ry: sums.ry * DECAY + r * y,
            fy: sums.fy * DECAY + f * y,
            statements: sums.statements + 1,
        };
    }

    /// How many statements were observed.
    pub fn statements(&self) -> u64 {
        self.sums
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .statements
    }

    /// The factors to plan with: `None` before [`MIN_STATEMENTS`] or when both are within the
    /// dead band.
    pub fn fit(&self) -> Option<Fit> {
        let sums = *self.sums.lock().unwrap_or_else(|e| e.into_inner());
        if sums.statements < MIN_STATEMENTS {
            return None;
        }
        // The normal equations of the fit, with the prior's rows (a = 1, b = 1) added.
        let (a11, a12, a22) = (sums.rr + PRIOR_WEIGHT, sums.rf, sums.ff + PRIOR_WEIGHT);
        let (b1, b2) = (sums.ry + PRIOR_WEIGHT, sums.fy + PRIOR_WEIGHT);
        let det = a11 * a22 - a12 * a12;
        let remote = (b1 * a22 - a12 * b2) / det;
        let fetch = (a11 * b2 - a12 * b1) / det;
        let kept = |f: f64| match f {
            f if !f.is_finite() => 1.0,
            f if (1.0 / DEAD_BAND..=DEAD_BAND).contains(&f) => 1.0,
            f => f.clamp(1.0 / MAX_FACTOR, MAX_FACTOR),
        };
        let fit = Fit {
            remote: kept(remote),
            fetch: kept(fetch),
            statements: sums.statements,
        };
        (fit.remote != 1.0 || fit.fetch != 1.0).then_some(fit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe(learned: &Learned, remote: f64, fetch: f64, seconds: f64) {
        learned.observe(Expected { remote, fetch }, seconds);
    }

    #[test]
    fn a_source_as_fast_as_its_figures_keeps_them() {
        let learned = Learned::default();
        for i in 0..20 {
            let noise = 1.0 + 0.2 * ((i % 3) as f64 - 1.0);
            observe(&learned, 0.5, 0.1, 0.6 * noise);
        }
        assert_eq!(learned.fit(), None);
    }

    #[test]
    fn a_slow_database_and_a_fast_link_are_told_apart() {
        let learned = Learned::default();
        // Statements of different mixes: the database 4× slower, rows 4× faster than figured.
        for i in 0..30 {
            let (remote, fetch) = match i % 3 {
                0 => (1.0, 0.1),
                1 => (0.1, 1.0),
                _ => (0.5, 0.5),
            };
            observe(&learned, remote, fetch, 4.0 * remote + 0.25 * fetch);
        }
        let fit = learned.fit().expect("a fit");
        assert!((fit.remote - 4.0).abs() < 0.3, "{fit:?}");
        // The prior pulls the less certain part more: still well over 2× faster.
        assert!(fit.fetch > 0.25 && fit.fetch < 0.45, "{fit:?}");
        assert_eq!(fit.statements, 30);
        assert_eq!(
            fit.describe(),
            format!(
                "learned from 30 statements: remote ×{:.2}, fetch ×{:.2}",
                fit.remote, fit.fetch
            )
        );
    }

    #[test]
    fn nothing_is_used_before_enough_statements_and_short_ones_do_not_count() {
        let learned = Learned::default();
        for _ in 0..10 {
            observe(&learned, 0.001, 0.001, 0.015);
        }
        observe(&learned, 1.0, 0.0, 10.0);
        observe(&learned, 1.0, 0.0, 10.0);
        assert_eq!(learned.fit(), None);
        observe(&learned, 1.0, 0.0, 10.0);
        let fit = learned.fit().expect("a fit after three statements");
        // The prior still counts: not all the way to 10.
        assert!(fit.remote > 5.0 && fit.remote < 10.0, "{fit:?}");
        assert_eq!(fit.fetch, 1.0, "{fit:?}");
    }

    #[test]
    fn the_fit_follows_a_source_that_changed() {
        let learned = Learned::default();
        for _ in 0..20 {
            observe(&learned, 1.0, 0.2, 1.2 * 8.0);
        }
        assert!(learned.fit().expect("slow").remote > 6.0);
        for _ in 0..40 {
            observe(&learned, 1.0, 0.2, 1.2);
        }
        assert_eq!(learned.fit(), None, "back to its figures");
    }

    #[test]
    fn factors_stay_within_bounds_and_bad_figures_are_ignored() {
        let learned = Learned::default();
        for _ in 0..10 {
            observe(&learned, 0.1, 0.0, 1e6);
            observe(&learned, f64::NAN, 0.1, 1.0);
            observe(&learned, 0.1, -1.0, 1.0);
        }
        let fit = learned.fit().expect("a fit");
        assert_eq!(fit.remote, MAX_FACTOR);
        assert_eq!(fit.statements, 10);
    }
}
