//! The adaptive DNS budget: a control law that moves the restart pacer's
//! DNS rate with the resolver's strain. Each interval one probe query
//! measures the resolver (latency, or lost); strain halves the rate at once
//! (then waits `cooldown` samples before cutting again, so the queue a cut
//! leaves behind can drain), health adds a fixed step back, and the rate
//! never leaves [floor, ceiling]: the ceiling is the playbook's static
//! budget, so adapting can only ever send less than static pacing would.
//! Pure: no clock, no I/O; the engine feeds it samples.

use futures_util::future::BoxFuture;
use std::time::Duration;

/// One probe of the resolver: how long its answer took, or `None` when it
/// was lost (dropped, timed out, refused).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DnsSample {
    pub latency: Option<Duration>,
    /// The resolver's own query rate, when its counter is read (other
    /// clients included).
    pub load_qps: Option<f64>,
}

/// Something that can measure the resolver the fleet uses: the simulated
/// resolver in rehearsals, a real upstream query in runs.
pub trait DnsProbe: Send + Sync + 'static {
    fn probe(&self) -> BoxFuture<'_, DnsSample>;
}

/// The budget starts at this fraction of the ceiling and climbs while the
/// resolver stays healthy: the capacity the playbook claims is unverified,
/// and restarts load the resolver only seconds after they are granted.
const START: f64 = 0.5;

/// Below threshold / HOLD_BELOW the resolver is clearly healthy.
const HOLD_BELOW: u32 = 4;

#[derive(Debug, Clone)]
pub struct BudgetController {
    pub ceiling: f64,
    pub floor: f64,
    pub rate: f64,
    /// Additive increase per healthy sample (q/s).
    pub step: f64,
    /// A probe slower than this is strain.
    pub threshold: Duration,
    /// Samples to wait after a cut before cutting again.
    pub cooldown: u32,
    /// The capacity the playbook claims: a counter reading above it is strain.
    pub capacity: Option<f64>,
    since_cut: u32,
    /// The rate at the last cut: where strain began. Below 85% of it the
    /// rate climbs by `step`; above, by a fifth of it (probing gently).
    knee: Option<f64>,
}

impl BudgetController {
    /// Starts at half the ceiling; steps up by 5% of it per healthy sample;
    /// never below 2% of it.
    pub fn new(ceiling: f64, threshold: Duration) -> BudgetController {
        BudgetController { ceiling, floor: ceiling * 0.02, rate: ceiling * START, step: ceiling * 0.05, threshold, cooldown: 2, capacity: None, since_cut: u32::MAX, knee: None }
    }

    pub fn strained(&self, s: &DnsSample) -> bool {
        s.latency.is_none_or(|l| l > self.threshold) || matches!((s.load_qps, self.capacity), (Some(load), Some(cap)) if load > cap)
    }

    /// Feeds one sample; returns the new rate.
    pub fn on_sample(&mut self, s: DnsSample) -> f64 {
        self.since_cut = self.since_cut.saturating_add(1);
        if self.strained(&s) {
            if self.since_cut > self.cooldown {
                self.knee = Some(self.rate);
                self.rate = (self.rate * 0.5).max(self.floor);
                self.since_cut = 0;
            }
        } else if s.latency.is_some_and(|l| l * HOLD_BELOW < self.threshold) {
            // Clearly healthy: climb back.
            let step = match self.knee {
                Some(k) if self.rate >= 0.85 * k => self.step / 5.0,
                _ => self.step,
            };
            self.rate = (self.rate + step).min(self.ceiling);
        }
        // Between a fraction of the threshold and the threshold: a queue is
        // building; hold the rate rather than push into it.
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOW: DnsSample = DnsSample { latency: Some(Duration::from_millis(900)), load_qps: None };
    const FAST: DnsSample = DnsSample { latency: Some(Duration::from_millis(5)), load_qps: None };
    const LOST: DnsSample = DnsSample { latency: None, load_qps: None };

    #[test]
    fn starts_at_half_climbs_halves_on_strain_cools_down_and_never_passes_the_ceiling() {
        let mut c = BudgetController::new(1000.0, Duration::from_millis(250));
        assert_eq!(c.rate, 500.0);
        assert_eq!(c.on_sample(FAST), 550.0);
        assert_eq!(c.on_sample(SLOW), 275.0);
        // Within the cooldown, more strain does not cut again.
        assert_eq!(c.on_sample(LOST), 275.0);
        assert_eq!(c.on_sample(SLOW), 275.0);
        assert_eq!(c.on_sample(SLOW), 137.5);
        // A queue building (latency between a quarter of the threshold and
        // the threshold): hold.
        assert_eq!(c.on_sample(DnsSample { latency: Some(Duration::from_millis(100)), load_qps: None }), 137.5);
        for _ in 0..200 {
            c.on_sample(FAST);
        }
        assert_eq!(c.rate, 1000.0, "never above the ceiling");
    }

    #[test]
    fn climbs_gently_near_where_strain_began() {
        let mut c = BudgetController::new(1000.0, Duration::from_millis(250));
        c.on_sample(SLOW); // knee 500, rate 250
        let mut r = 250.0;
        while r < 0.85 * 500.0 {
            r = c.on_sample(FAST);
        }
        let before = c.rate;
        assert!((c.on_sample(FAST) - before - 10.0).abs() < 1e-9, "a fifth of the step above 85% of the knee");
    }

    #[test]
    fn a_busy_resolver_counter_is_strain_even_when_answers_are_fast() {
        let mut c = BudgetController::new(1000.0, Duration::from_millis(250));
        c.capacity = Some(2000.0);
        assert_eq!(c.on_sample(DnsSample { load_qps: Some(1500.0), ..FAST }), 550.0);
        assert_eq!(c.on_sample(DnsSample { load_qps: Some(2600.0), ..FAST }), 275.0);
    }

    #[test]
    fn never_below_the_floor() {
        let mut c = BudgetController::new(1000.0, Duration::from_millis(250));
        c.cooldown = 0;
        for _ in 0..50 {
            c.on_sample(LOST);
        }
        assert_eq!(c.rate, 20.0);
    }
}
