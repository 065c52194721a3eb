//! The adaptive DNS budget: a control law that finds the rate the resolver
//! really serves and holds just under it, without a sawtooth. Each interval
//! brings one [`DnsSample`]: the resolver's own counters when they are read
//! (queries dropped is the strongest signal, then queries received), and a
//! few probe queries (lost, or slow). Strain cuts the rate to 90% of where
//! strain was seen and remembers that point (the knee); calm climbs by 15%
//! a sample up to 95% of the knee and holds there, probing 2% higher only
//! after a long calm. The rate never leaves [floor, ceiling]; the ceiling
//! is the operator's. Pure: no clock, no I/O; the engine feeds it samples.

use futures_util::future::BoxFuture;
use std::time::Duration;

/// What one interval showed of the resolver.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DnsSample {
    /// Probe queries sent, and how many were lost (no answer in time).
    pub probes: u32,
    pub lost: u32,
    /// The slowest answered probe.
    pub latency: Option<Duration>,
    /// The resolver's own query rate over the interval (other clients
    /// included), when its counter is read.
    pub load_qps: Option<f64>,
    /// Queries the resolver dropped over the interval (rate limit, full
    /// queue), when its drop counter is read.
    pub dropped: Option<u64>,
}

/// A resolver's cumulative counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterReading {
    pub received: f64,
    pub dropped: Option<f64>,
}

/// Something that can measure the resolver the fleet uses: the simulated
/// resolver in rehearsals, a real upstream query in runs.
pub trait DnsProbe: Send + Sync + 'static {
    /// One probe query: its latency, or `None` when lost. It costs the
    /// time a real query would (a lost one, its timeout).
    fn probe(&self) -> BoxFuture<'_, Option<Duration>>;
    /// The resolver's counters now, when they are read; `None` otherwise.
    fn counters(&self) -> BoxFuture<'_, Option<CounterReading>>;
    /// Which signals it has, for `plan` and `run` to say.
    fn describe(&self) -> String;
}

/// The rate starts at this fraction of the ceiling: the capacity the
/// playbook claims is unverified.
const START: f64 = 0.5;
/// Calm: multiply the rate by this per sample, below the knee.
const CLIMB: f64 = 1.15;
/// Strain: cut to this fraction of the rate it was seen at.
const CUT: f64 = 0.9;
/// Hold at this fraction of the knee.
const HOLD: f64 = 0.95;
/// Calm samples at the hold before probing higher.
const PATIENCE: u32 = 30;
/// How much higher a probe goes.
const PROBE_UP: f64 = 1.02;

#[derive(Debug, Clone)]
pub struct BudgetController {
    pub ceiling: f64,
    pub floor: f64,
    pub rate: f64,
    /// A probe slower than this is strain.
    pub threshold: Duration,
    /// Samples to wait after a cut before cutting again (the cut's effect
    /// and the retries of what was dropped before it need that long).
    pub cooldown: u32,
    /// The capacity the playbook claims: a counter reading above it is strain.
    pub capacity: Option<f64>,
    since_cut: u32,
    calm: u32,
    /// Where strain was last seen.
    knee: Option<f64>,
}

impl BudgetController {
    /// Starts at half the ceiling; never below 2% of it.
    pub fn new(ceiling: f64, threshold: Duration) -> BudgetController {
        BudgetController { ceiling, floor: ceiling * 0.02, rate: ceiling * START, threshold, cooldown: 2, capacity: None, since_cut: u32::MAX, calm: 0, knee: None }
    }

    /// The rate at which strain was last seen, if any.
    pub fn knee(&self) -> Option<f64> {
        self.knee
    }

    pub fn strained(&self, s: &DnsSample) -> bool {
        s.dropped.is_some_and(|d| d > 0)
            || s.lost > 0
            || s.latency.is_some_and(|l| l > self.threshold)
            || matches!((s.load_qps, self.capacity), (Some(load), Some(cap)) if load > cap)
    }

    /// A new ceiling from the operator: the rate stays under it.
    pub fn set_ceiling(&mut self, ceiling: f64) {
        self.ceiling = ceiling;
        self.floor = ceiling * 0.02;
        self.rate = self.rate.min(ceiling);
    }

    /// Feeds one sample; returns the new rate.
    pub fn on_sample(&mut self, s: DnsSample) -> f64 {
        self.since_cut = self.since_cut.saturating_add(1);
        if self.strained(&s) {
            self.calm = 0;
            if self.since_cut > self.cooldown {
                self.knee = Some(self.rate);
                self.rate = (self.rate * CUT).max(self.floor);
                self.since_cut = 0;
            }
        } else {
            self.calm += 1;
            match self.knee {
                None => self.rate *= CLIMB,
                Some(k) if self.rate < HOLD * k => self.rate = (self.rate * CLIMB).min(HOLD * k),
                Some(k) if self.calm >= PATIENCE => {
                    self.calm = 0;
                    self.knee = Some(k * PROBE_UP);
                    self.rate = HOLD * k * PROBE_UP;
                }
                Some(_) => {}
            }
        }
        self.rate = self.rate.clamp(self.floor, self.ceiling);
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALM: DnsSample = DnsSample { probes: 4, lost: 0, latency: Some(Duration::from_millis(5)), load_qps: None, dropped: Some(0) };
    const DROPS: DnsSample = DnsSample { dropped: Some(12), ..CALM };

    #[test]
    fn starts_at_half_climbs_and_never_passes_the_ceiling() {
        let mut c = BudgetController::new(1000.0, Duration::from_millis(250));
        assert_eq!(c.rate, 500.0);
        assert!((c.on_sample(CALM) - 575.0).abs() < 1e-9);
        for _ in 0..50 {
            c.on_sample(CALM);
        }
        assert_eq!(c.rate, 1000.0, "never above the ceiling");
    }

    #[test]
    fn finds_a_weaker_resolver_and_holds_without_a_sawtooth() {
        // The resolver drops above 400 q/s; the playbook claims 1000.
        let mut c = BudgetController::new(1000.0, Duration::from_millis(250));
        let mut rates = Vec::new();
        for _ in 0..200 {
            let s = if c.rate > 400.0 { DROPS } else { CALM };
            rates.push(c.on_sample(s));
        }
        let tail = &rates[100..];
        let (lo, hi) = tail.iter().fold((f64::MAX, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        assert!(lo >= 340.0 && hi <= 410.0, "settled between {lo} and {hi}");
        let over = tail.iter().filter(|&&r| r > 400.0).count();
        assert!(over <= 5, "{over} of 100 samples above the capacity");
    }

    #[test]
    fn with_nothing_dropping_it_settles_above_90_percent_of_the_ceiling() {
        let mut c = BudgetController::new(1000.0, Duration::from_millis(250));
        for _ in 0..20 {
            c.on_sample(CALM);
        }
        assert!(c.rate > 900.0, "{}", c.rate);
    }

    #[test]
    fn a_lost_probe_or_a_busy_counter_is_strain_and_cuts_wait_a_cooldown() {
        let mut c = BudgetController::new(1000.0, Duration::from_millis(250));
        c.capacity = Some(2000.0);
        assert_eq!(c.on_sample(DnsSample { lost: 1, ..CALM }), 450.0);
        // Within the cooldown, more strain does not cut again.
        assert_eq!(c.on_sample(DnsSample { load_qps: Some(2600.0), ..CALM }), 450.0);
        assert_eq!(c.on_sample(DROPS), 450.0);
        assert_eq!(c.on_sample(DROPS), 405.0);
    }

    #[test]
    fn a_lower_ceiling_holds_while_adapting() {
        let mut c = BudgetController::new(1000.0, Duration::from_millis(250));
        c.set_ceiling(300.0);
        for _ in 0..20 {
            assert!(c.on_sample(CALM) <= 300.0);
        }
    }
}
