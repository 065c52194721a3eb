//! The adaptive DNS budget: a control law that finds the rate the resolver
//! really serves and holds just under it, without a sawtooth. Each interval
//! brings one [`DnsSample`]: the resolver's own counters when they are read
//! (queries dropped is the strongest signal, then queries received), and a
//! few probe queries (lost, slow, or queued behind others). Strain sets the
//! knee — what the resolver served under strain: the rate less what it
//! dropped — and cuts to 80% of it so that a queue drains; calm climbs by
//! 15% a sample up to 92% of the knee: the rate is then held. A held rate
//! whose resolver's drop counter is read is steered by the share dropped
//! (an integral law towards [`TOLERATED`] of the run: more dropped, lower;
//! none, higher, slowly near the rate that last dropped and faster away
//! from it), so a queue that overflows on bursts at any rate neither
//! ratchets the rate down nor drops more than the run may. Without the
//! counter, a held rate probes 3% higher after ten calm samples, in growing
//! steps once three probes stayed calm. The rate never leaves [floor,
//! ceiling]; the ceiling is the operator's. Pure: no clock, no I/O; the
//! engine feeds it samples.

use futures_util::future::BoxFuture;
use std::time::Duration;

/// What one interval showed of the resolver.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DnsSample {
    /// Probe queries sent, and how many were lost (no answer in time).
    pub probes: u32,
    /// Probe queries lost (no answer in time).
    pub lost: u32,
    /// The slowest and the fastest answered probe.
    pub latency: Option<Duration>,
    /// The fastest answered probe.
    pub fastest: Option<Duration>,
    /// How long the counters' readings are apart (seconds).
    pub interval_s: Option<f64>,
    /// The resolver's own query rate over the interval (other clients
    /// included), when its counter is read.
    pub load_qps: Option<f64>,
    /// Queries the resolver dropped over the interval (rate limit, full
    /// queue), when its drop counter is read.
    pub dropped: Option<u64>,
    /// Lookups the pacer granted per second over the interval, with the
    /// probe queries sent: how much of the rate the run used.
    pub granted_qps: Option<f64>,
    /// The window (seconds) the pacer holds its rate over: one second
    /// widened by the spread of start calls. The pacer grants the rate per
    /// window, so the resolver receives the rate divided by it: a served
    /// rate measured at the resolver is multiplied by it to become a rate
    /// to pace at (else each cut would shrink the knee by that factor).
    pub window_s: Option<f64>,
}

impl DnsSample {
    /// The pacer's window in seconds (at least one): a rate measured at
    /// the resolver times this is a rate to pace at.
    fn window(&self) -> f64 {
        self.window_s.unwrap_or(1.0).max(1.0)
    }
}

/// A resolver's cumulative counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterReading {
    /// Queries received since the resolver started.
    pub received: f64,
    /// Queries dropped since the resolver started, when it counts them.
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
/// playbook claims is unverified ...
const START: f64 = 0.5;
/// ... and grows by a quarter with each calm sample the run used, until
/// the first strain or the ceiling: a resolver half as strong as claimed
/// serves the start, and a doubling from it sends twice what it serves for
/// a second (half of it dropped, and its retries dropped again).
/// (Starting lower, 1/128 of the ceiling, with doubling every quarter
/// interval, cut the first burst on a resolver 125 times weaker than
/// claimed but cost up to 30% on resolvers half as strong as claimed,
/// whose queues hid the overshoot: `scripts/bench-dns-variants.sh`.)
const SLOW_CLIMB: f64 = 1.25;
/// The slow start grows only a rate the run used: at least this share of
/// it granted over the sample's window ...
const USED: f64 = 0.5;
/// ... and to at most this many times what the resolver received over the
/// window, when its counter is read: starts land their lookups seconds
/// after they are granted, so what was granted is not yet what was served.
const SERVED_UP: f64 = 1.25;
/// Back from an outage, the rate goes to half the one before it and
/// doubles to it.
const RECOVER: f64 = 2.0;
/// Calm after slow start: multiply the rate by this per sample, below the knee.
const CLIMB: f64 = 1.15;
/// The rate never goes below this fraction of the ceiling.
const FLOOR: f64 = 0.002;
/// Strain: cut to this fraction of the knee, so a queue it left drains.
const DRAIN: f64 = 0.8;
/// Hold at this fraction of the knee.
const HOLD: f64 = 0.92;
/// Calm samples at the hold before probing higher.
const PATIENCE: u32 = 10;
/// How much higher a first probe goes ...
const PROBE_UP: f64 = 1.03;
/// ... and the most a probe goes, after calm probes doubled the step.
const MAX_PROBE_UP: f64 = 1.12;
/// Samples in a row in which every probe was lost before they count as an
/// outage (the resolver down or unreachable) rather than overload: an
/// overloaded resolver still answers some probes over a few seconds.
const OUTAGE_SAMPLES: u32 = 3;
/// A counter reading this far above the claimed capacity is strain: a
/// counter's window never lines up with the pacer's seconds, so one more
/// restart's lookups in it are jitter, not overload (the drop counter says
/// when it is).
const BUSY: f64 = 1.1;
/// The share of queries dropped that a held rate is steered to, over the
/// run: a queue of milliseconds overflows for a moment now and then at any
/// rate, and the promise is the run's share (under 0.5%, which its
/// lookups' retries absorb), not every second's. Each sample steers to
/// twice this less the run's share so far (between a quarter of it and
/// twice it), so the run's share tends to it.
const TOLERATED: f64 = 0.003;
/// Drops up to this share of what the resolver received in a sample are a
/// burst's overflow, not a standing queue to drain.
const OVERFLOW: f64 = 0.05;
/// Drops under this share of a sample are no strain before the rate is
/// held: a sliver of a burst's overflow.
const SLIVER: f64 = 0.002;
/// The integral law's gain: a held rate moves by this many times the
/// difference between the share steered to and the share dropped (2%
/// dropped against 0.3%: 2.6% lower; none: 0.45% higher).
const INTEGRAL: f64 = 1.5;
/// The band around the rate that last dropped more than the share steered
/// to (the cliff), from 90% to 105% of it: inside, a held rate climbs by
/// the integral law alone; below, a quarter of the way back a sample;
/// above, in steps that double every ten samples without a drop.
const NEAR: (f64, f64) = (0.9, 1.05);
/// Before the rate is held, a burst's overflow steps it down by this many
/// times the share dropped: 1% dropped, 4% less; 5%, 20% (as a drain would).
const GAIN: f64 = 4.0;
/// A standing queue: the fastest probe of a sample waited longer than this
/// fraction of the threshold beyond the fastest answer ever seen.
const STANDING: f64 = 0.1;

/// Whether the run granted at least half of what the resolver received
/// over the sample (or either is unknown): what it dropped then answers
/// the rate granted, not a backlog from before.
fn granted_most(s: &DnsSample) -> bool {
    match (s.granted_qps, s.load_qps) {
        (Some(g), Some(load)) => g >= 0.5 * load,
        _ => true,
    }
}

/// The adaptive DNS budget's control law: one sample in, the rate to pace at out.
#[derive(Debug, Clone)]
pub struct BudgetController {
    /// The operator's ceiling, in q/s: the rate never goes above it.
    pub ceiling: f64,
    /// The lowest rate, in q/s (0.2% of the ceiling).
    pub floor: f64,
    /// The rate to pace at now, in q/s.
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
    /// The rate the resolver was last seen to serve under strain.
    knee: Option<f64>,
    /// The fastest probe answer seen: the resolver's latency with no queue.
    baseline: Option<Duration>,
    /// Still in slow start: no strain seen and the ceiling not reached.
    slow: bool,
    /// Samples in a row in which every probe was lost.
    lost_run: u32,
    /// The rate and knee before such a run began: an outage measures
    /// nothing about capacity, so it must not leave its own knee.
    before_loss: Option<(f64, Option<f64>)>,
    /// After an outage: the rate to double back to, calm sample by calm
    /// sample (whatever the run was granted: its work is waiting).
    recover_to: Option<f64>,
    /// The grants are held at the floor because the last samples lost
    /// every probe (fewer than an outage's).
    blip: bool,
    /// The next probe's step: [`PROBE_UP`], doubled by each calm probe
    /// from the third, back to it on strain.
    probe_up: f64,
    /// Probes since the last strain.
    calm_probes: u32,
    /// Queries dropped and received over the run's samples.
    run_drops: Option<(f64, f64)>,
    /// Held samples in a row without a drop.
    dry: u32,
    /// The rate last held when more than the tolerated share was dropped.
    dropped_at: Option<f64>,
    /// Room left for the retries of what the resolver dropped, in q/s per
    /// window: the drops of the last sample, and half the room before.
    reserve: f64,
}

/// Why a sample is strain, if it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strain {
    /// The resolver's drop counter moved.
    Dropped,
    /// Probe queries were lost.
    Lost,
    /// A probe waited past the threshold, or the fastest one shows a
    /// standing queue.
    Queue,
    /// The resolver's query counter shows over 110% of its claimed capacity.
    Busy,
}

impl BudgetController {
    /// Starts at half the ceiling; never below 0.2% of it.
    pub fn new(ceiling: f64, threshold: Duration) -> BudgetController {
        BudgetController {
            ceiling,
            floor: ceiling * FLOOR,
            rate: ceiling * START,
            threshold,
            cooldown: 4,
            capacity: None,
            since_cut: u32::MAX,
            calm: 0,
            knee: None,
            baseline: None,
            slow: true,
            lost_run: 0,
            before_loss: None,
            recover_to: None,
            blip: false,
            probe_up: PROBE_UP,
            calm_probes: 0,
            run_drops: None,
            dry: 0,
            dropped_at: None,
            reserve: 0.0,
        }
    }

    /// The rate to grant lookups at: the rate less the room kept for the
    /// retries of what the resolver dropped (a dropped lookup is asked
    /// again a second or two later, on top of what the pacer grants).
    pub fn paced(&self) -> f64 {
        (self.rate - self.reserve).max(self.floor)
    }

    /// Whether the controller holds its rate at the floor through a
    /// resolver outage.
    pub fn in_outage(&self) -> bool {
        self.lost_run >= OUTAGE_SAMPLES
    }

    /// Whether the controller is still in its start (doubling a used rate
    /// until the first strain or the ceiling).
    pub fn in_slow_start(&self) -> bool {
        self.slow
    }

    /// The rate the resolver was last seen to serve under strain, if any.
    pub fn knee(&self) -> Option<f64> {
        self.knee
    }

    /// Why `s` is strain, if it is: drops first, then losses, a queue, a busy counter.
    pub fn strain(&self, s: &DnsSample) -> Option<Strain> {
        let standing = match (s.fastest, self.baseline) {
            (Some(f), Some(b)) => {
                f.saturating_sub(b).as_secs_f64() > STANDING * self.threshold.as_secs_f64()
            }
            _ => false,
        };
        // Drops are strain when a sample's share is an overload (more than
        // a burst's overflow); a burst's overflow is strain only until the
        // rate is held, where the share steers the rate instead.
        let share = self.dropped_share(s);
        let holding = self.holding(share);
        let dropping = s.dropped.is_some_and(|d| d > 0)
            && share.is_none_or(|x| x > OVERFLOW || (!holding && x > SLIVER));
        if dropping {
            Some(Strain::Dropped)
        } else if s.lost > 0 && !(holding && share.is_some()) {
            Some(Strain::Lost)
        } else if (s.latency.is_some_and(|l| l > self.threshold) || standing)
            && !(self.slow && s.dropped == Some(0) && s.load_qps.is_some())
        {
            // In the start, a queue that dropped nothing is a burst's: the
            // counters would show a queue that overflows, and a cut for a
            // burst's latency ends the start at a fraction of the capacity.
            Some(Strain::Queue)
        } else if matches!((s.load_qps, self.capacity), (Some(load), Some(cap)) if load > BUSY * cap)
        {
            Some(Strain::Busy)
        } else {
            None
        }
    }

    /// The share of the queries the resolver received over the sample that
    /// it dropped, when both counters are read.
    fn dropped_share(&self, s: &DnsSample) -> Option<f64> {
        match (s.dropped, s.load_qps, s.interval_s) {
            (Some(d), Some(load), Some(secs)) if load * secs >= 1.0 => {
                Some(d as f64 / (load * secs))
            }
            _ => None,
        }
    }

    /// Whether the rate is held by the share dropped: the drop counter is
    /// read, and the rate is at its hold under a knee.
    fn holding(&self, share: Option<f64>) -> bool {
        share.is_some()
            && self
                .knee
                .is_some_and(|k| self.rate >= HOLD * k * (1.0 - 1e-9))
    }

    /// The queries dropped and received over the run's samples with `s`,
    /// when both counters are read.
    fn with_run(&self, s: &DnsSample) -> Option<(f64, f64)> {
        let (Some(d), Some(load), Some(secs)) = (s.dropped, s.load_qps, s.interval_s) else {
            return None;
        };
        let (d, r) = (d as f64, load * secs);
        Some(match self.run_drops {
            Some((ad, ar)) => (ad + d, ar + r),
            None => (d, r),
        })
    }

    /// The share of queries dropped over the run's samples with `s`.
    fn run_share(&self, s: &DnsSample) -> Option<f64> {
        self.with_run(s)
            .filter(|&(_, r)| r >= 1.0)
            .map(|(d, r)| d / r)
    }

    /// A new ceiling from the operator: the rate stays under it.
    pub fn set_ceiling(&mut self, ceiling: f64) {
        self.ceiling = ceiling;
        self.floor = ceiling * FLOOR;
        self.rate = self.rate.min(ceiling);
    }

    /// What the resolver served under strain: the queries it answered per
    /// second by its own counters (received less dropped: its capacity
    /// when it drops), or, from probes alone, the share of the rate that
    /// got through.
    fn served(&self, s: &DnsSample, why: Strain) -> f64 {
        match (why, s.load_qps, s.dropped, s.interval_s) {
            (Strain::Dropped, Some(load), Some(d), Some(secs)) => {
                ((load - d as f64 / secs) * s.window()).max(self.rate * 0.25)
            }
            (Strain::Lost, ..) if s.probes > 0 => {
                self.rate * (1.0 - s.lost as f64 / s.probes as f64).max(0.5)
            }
            _ => self.rate,
        }
    }

    /// Feeds one sample; returns the new rate.
    pub fn on_sample(&mut self, s: DnsSample) -> f64 {
        let rate = self.step(&s);
        if let Some(run) = self.with_run(&s) {
            self.run_drops = Some(run);
        }
        let dropped = match (s.dropped, s.interval_s) {
            (Some(d), Some(secs)) if secs > 0.0 => d as f64 / secs,
            _ => 0.0,
        };
        self.reserve = 0.5 * self.reserve + dropped * s.window();
        rate
    }

    fn step(&mut self, s: &DnsSample) -> f64 {
        if let Some(f) = s.fastest {
            self.baseline = Some(self.baseline.map_or(f, |b| b.min(f)));
        }
        self.since_cut = self.since_cut.saturating_add(1);
        if let Some(rate) = self.outage(s) {
            return rate;
        }
        match self.strain(s) {
            Some(why) => self.on_strain(s, why),
            None => self.on_calm(s),
        }
        self.rate = self.rate.clamp(self.floor, self.ceiling);
        if self.rate >= self.ceiling {
            self.slow = false;
        }
        self.rate
    }

    /// Every probe lost: the grants hold at the floor at once when the
    /// counters, read before, cannot be read either, and after
    /// [`OUTAGE_SAMPLES`] in a row the resolver is down. Back from a sample
    /// or two of silence, the rate is the one before it; back from an
    /// outage (the first sample without a lost probe), half the one before
    /// it, doubling to it. `Some(rate)` when that decides.
    fn outage(&mut self, s: &DnsSample) -> Option<f64> {
        if s.probes > 0 && s.lost == s.probes {
            if self.lost_run == 0 {
                self.before_loss = Some((self.rate, self.knee));
            }
            self.lost_run += 1;
            if self.lost_run < OUTAGE_SAMPLES && self.run_drops.is_some() && s.load_qps.is_none() {
                // Not yet an outage, but a resolver that answers neither a
                // probe nor its control channel, whose counters were read
                // before, is down (an overloaded one still answers its
                // counters: a deep queue delays every probe past the
                // threshold and is cut as strain): hold the grants (the
                // floor) rather than send starts whose lookups would fail.
                // Nothing is measured: the knee stays, and a sample that
                // answers puts the rate back.
                self.blip = true;
                self.rate = self.floor;
                return Some(self.rate);
            }
            self.blip = false;
            if self.lost_run >= OUTAGE_SAMPLES {
                // The resolver is down or unreachable: send as little as
                // possible (the floor), and forget what the first lost
                // samples cut: they measured the outage, not capacity.
                if let Some((rate, knee)) = self.before_loss {
                    self.knee = knee;
                    self.recover_to = Some(rate.max(self.floor));
                }
                self.rate = self.floor;
                self.calm = 0;
                self.since_cut = 0;
                return Some(self.rate);
            }
            return None;
        }
        self.lost_run = 0;
        if std::mem::take(&mut self.blip) {
            // The resolver answers again after a sample or two of silence:
            // back to the rate before it, and this sample decides as any.
            if let Some((rate, _)) = self.before_loss {
                self.rate = rate;
            }
        }
        self.before_loss = None;
        let target = self.recover_to?;
        match self.strain(s) {
            // A resolver coming back loses some probes while it starts:
            // the outage's tail, not overload (the run sends it the floor).
            // Hold the floor and keep the way back.
            Some(Strain::Lost) => return Some(self.rate),
            Some(_) => {
                self.recover_to = None;
                return None;
            }
            None => {}
        }
        // Back from an outage: from half the rate that worked before it
        // (an outage measures nothing about capacity: the start's trust in
        // half the claim), doubling to it.
        self.calm += 1;
        self.rate = (self.rate * RECOVER)
            .max(START * target)
            .min(target)
            .min(self.ceiling);
        if self.rate >= target {
            self.recover_to = None;
        }
        Some(self.rate)
    }

    /// Strain: set the knee and cut (once per cooldown, but for a cut
    /// that fell short).
    fn on_strain(&mut self, s: &DnsSample, why: Strain) {
        if why == Strain::Dropped {
            self.dropped_at = Some(self.rate);
        }
        self.calm = 0;
        self.slow = false;
        self.probe_up = PROBE_UP;
        self.calm_probes = 0;
        let served = self.served(s, why);
        if self.since_cut > self.cooldown {
            // A few drops of what the resolver received are a burst's
            // overflow, not a standing queue: no queue to drain. The rate
            // steps down in proportion to the share dropped (1% dropped, 4%
            // less) and holds there: a queue of milliseconds overflows now
            // and then at any rate, and cutting to a fraction of what was
            // served each time ratchets the rate down to a fraction of the
            // capacity.
            let overflow = match why {
                Strain::Dropped => self.dropped_share(s).filter(|&x| x <= OVERFLOW),
                _ => None,
            };
            if let Some(share) = overflow {
                self.rate = self.rate.min(served) * (1.0 - GAIN * share);
                self.knee = Some(self.rate / HOLD);
            } else {
                self.knee = Some(served);
                self.rate = DRAIN * served;
            }
            self.since_cut = 0;
        } else if why == Strain::Dropped && served < DRAIN * self.rate && granted_most(s) {
            // Within the cooldown, the resolver's own counters can still
            // show that the cut fell short: it keeps dropping and serves
            // well under the rate (a short sample, or a queue that absorbed
            // the first burst, overstated the knee). Not when it received
            // far more than the run granted: that is the backlog of the
            // overload before the cut (a full queue's tail, starts landing
            // late), and what it served of it is no capacity.
            self.knee = Some(served);
            self.rate = DRAIN * served;
            self.since_cut = 0;
        }
    }

    /// No strain: double in slow start, climb to the hold, then steer by
    /// the share dropped (with the drop counter) or probe higher.
    fn on_calm(&mut self, s: &DnsSample) {
        self.calm += 1;
        match self.knee {
            // Before the first strain the rate grows, but only a rate the
            // run used (an idle rate proves nothing about the resolver),
            // and to at most a quarter above what the resolver received.
            None if self.slow => {
                let window = s.window();
                if s.granted_qps.is_none_or(|g| g * window >= USED * self.rate) {
                    let served = s
                        .load_qps
                        .map_or(f64::MAX, |load| SERVED_UP * load * window);
                    self.rate = (self.rate * SLOW_CLIMB).min(served.max(self.rate));
                }
            }
            None => self.rate *= CLIMB,
            Some(k) if self.rate < HOLD * k => self.rate = (self.rate * CLIMB).min(HOLD * k),
            Some(_) if self.dropped_share(s).is_some() => self.steer(s),
            Some(k) if self.calm >= PATIENCE => {
                // From the third probe that stays calm, each doubles the
                // next step: a knee measured low (a queue draining under a
                // cut) is left in tens of seconds, not minutes, while a
                // knee measured right is probed as gently as before (three
                // steps of 3% reach past it).
                self.calm = 0;
                self.knee = Some(k * self.probe_up);
                self.rate = HOLD * k * self.probe_up;
                self.calm_probes += 1;
                if self.calm_probes >= 3 {
                    self.probe_up = 1.0 + ((self.probe_up - 1.0) * 2.0).min(MAX_PROBE_UP - 1.0);
                }
            }
            Some(_) => {}
        }
    }

    /// Held, with the drop counter read: the share dropped steers the rate
    /// towards the tolerated share (an integral law): more dropped, lower;
    /// less, higher.
    fn steer(&mut self, s: &DnsSample) {
        let x = self.dropped_share(s).unwrap_or(0.0);
        if x > 0.0 {
            self.dry = 0;
        } else {
            self.dry += 1;
        }
        // The share to steer to: the run's tolerance, less what the run has
        // already spent beyond it (or plus what it left unspent), so the
        // run's share tends to it.
        let run = self.run_share(s).unwrap_or(0.0);
        let target = (2.0 * TOLERATED - run).clamp(TOLERATED / 4.0, 2.0 * TOLERATED);
        if x > target {
            self.dropped_at = Some(self.rate);
        }
        // Where to go from here depends on the rate that last dropped more
        // than the target (the cliff): well below it, back towards it
        // quickly (a quarter of the way a sample); near it, gently (the
        // target's share a sample); above it, or with no cliff seen, in
        // steps that double every ten samples without a drop.
        let climb = match self.dropped_at {
            Some(cliff) if self.rate < NEAR.0 * cliff => {
                ((NEAR.0 * cliff / self.rate - 1.0) / 4.0).min(CLIMB - 1.0)
            }
            Some(cliff) if self.rate <= NEAR.1 * cliff => 0.0,
            _ => INTEGRAL * target * (f64::from(1u32 << (self.dry / PATIENCE).min(3)) - 1.0),
        };
        let step = if x > 0.0 {
            INTEGRAL * (target - x)
        } else {
            INTEGRAL * target + climb
        };
        let used = s.granted_qps.is_none_or(|g| g >= 0.5 * self.rate);
        if step < 0.0 || used {
            self.rate *= 1.0 + step.max(-OVERFLOW);
            self.knee = Some(self.rate / HOLD);
        }
    }
}

#[cfg(test)]
mod tests;
