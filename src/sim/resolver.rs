//! The simulated DNS resolver, in one of two modes (see
//! [`ResolverMode`]). Queue: answers at most `capacity_qps` queries per
//! second in arrival order; a bounded queue (possibly empty) holds the
//! rest; a query arriving at a full queue is dropped; a query not answered
//! within the client's timeout is lost for the client (which retries) though
//! the resolver still spends its slot on it — overload feeds itself.
//! Per-second: like unbound's `ip-ratelimit`, the first `capacity_qps`
//! queries of each whole second are answered at once and the rest of that
//! second is dropped. Queries must be offered in non-decreasing time order
//! (the simulator's clock guarantees it).

use crate::scenario::{ResolverMode, ResolverModel};

/// What became of one query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QueryFate {
    /// Answered at this time (seconds).
    Answered(f64),
    /// Dropped at the queue or answered too late: the client retries after
    /// its timeout.
    Lost,
}

/// The simulated resolver: queue or per-second mode, and its counters.
#[derive(Debug, Clone)]
pub struct SimResolver {
    model: ResolverModel,
    /// When the resolver finishes the queries accepted so far (seconds).
    next_free: f64,
    /// Queries received.
    pub received: u64,
    /// Queries dropped at a full queue (or past a second's quota).
    pub dropped_queue: u64,
    /// Queries answered after the client's timeout.
    pub timed_out: u64,
    /// Queries received per 100 ms slot.
    slots: Vec<u32>,
    /// Per-second mode: the current second and the queries answered in it.
    second: (u64, u64),
}

/// How long a per-second resolver takes to answer a query it accepts.
const PER_SECOND_LATENCY: f64 = 0.000_5;

const SLOT: f64 = 0.1;

impl SimResolver {
    /// An idle resolver following `model`.
    pub fn new(model: ResolverModel) -> Self {
        SimResolver {
            model,
            next_free: 0.0,
            received: 0,
            dropped_queue: 0,
            timed_out: 0,
            slots: Vec::new(),
            second: (0, 0),
        }
    }

    /// The model it follows.
    pub fn model(&self) -> &ResolverModel {
        &self.model
    }

    /// Offers one query at time `at` (seconds).
    pub fn query(&mut self, at: f64) -> QueryFate {
        self.received += 1;
        let slot = (at / SLOT) as usize;
        if self.slots.len() <= slot {
            self.slots.resize(slot + 1, 0);
        }
        self.slots[slot] += 1;
        let cap = self.model.capacity_qps;
        if self.model.mode == ResolverMode::PerSecond {
            let second = at.max(0.0).floor() as u64;
            if self.second.0 != second {
                self.second = (second, 0);
            }
            if self.second.1 as f64 + 1.0 > cap + 1e-9 {
                self.dropped_queue += 1;
                return QueryFate::Lost;
            }
            self.second.1 += 1;
            return QueryFate::Answered(at + PER_SECOND_LATENCY);
        }
        let backlog = ((self.next_free - at) * cap).max(0.0);
        if backlog >= self.model.queue as f64 + 1.0 - 1e-9 {
            self.dropped_queue += 1;
            return QueryFate::Lost;
        }
        let done = self.next_free.max(at) + 1.0 / cap;
        self.next_free = done;
        if done - at > self.model.timeout_ms as f64 / 1000.0 {
            self.timed_out += 1;
            return QueryFate::Lost;
        }
        QueryFate::Answered(done)
    }

    /// Queries lost to the client: dropped or timed out.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue + self.timed_out
    }

    /// The most queries received in any one-second window (sliding by 100 ms).
    pub fn peak_qps(&self) -> u64 {
        let per_window = (1.0 / SLOT).round() as usize;
        let mut best = 0u64;
        let mut sum = 0u64;
        for (i, &n) in self.slots.iter().enumerate() {
            sum += n as u64;
            if i >= per_window {
                sum -= self.slots[i - per_window] as u64;
            }
            best = best.max(sum);
        }
        best
    }

    /// Queries received per whole second (for reports).
    pub fn per_second(&self) -> Vec<u64> {
        let per = (1.0 / SLOT).round() as usize;
        self.slots
            .chunks(per)
            .map(|c| c.iter().map(|&n| n as u64).sum())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(cap: f64, queue: u32) -> ResolverModel {
        ResolverModel {
            capacity_qps: cap,
            mode: ResolverMode::Queue,
            queue,
            timeout_ms: 1000,
            attempts: 2,
        }
    }

    #[test]
    fn per_second_mode_answers_the_first_capacity_of_each_second_and_drops_the_rest() {
        let mut r = SimResolver::new(ResolverModel {
            mode: ResolverMode::PerSecond,
            ..model(10.0, 0)
        });
        let first: Vec<_> = (0..15).map(|i| r.query(0.5 + i as f64 * 0.01)).collect();
        assert_eq!(
            first
                .iter()
                .filter(|f| matches!(f, QueryFate::Answered(_)))
                .count(),
            10
        );
        assert!(
            first[..10]
                .iter()
                .all(|f| matches!(f, QueryFate::Answered(_))),
            "the first ten of the second pass"
        );
        // A new second: capacity again, whatever the last one dropped.
        assert!(matches!(r.query(1.0), QueryFate::Answered(_)));
        assert_eq!(r.dropped_queue, 5);
    }

    #[test]
    fn a_queue_of_zero_holds_nothing_beyond_the_query_in_service() {
        let mut r = SimResolver::new(model(10.0, 0));
        assert!(matches!(r.query(0.0), QueryFate::Answered(_)));
        assert_eq!(r.query(0.0), QueryFate::Lost);
        // Once the one in service is done, the next is answered.
        assert!(matches!(r.query(0.2), QueryFate::Answered(_)));
    }

    #[test]
    fn under_capacity_everything_is_answered() {
        let mut r = SimResolver::new(model(10.0, 5));
        for i in 0..100 {
            assert!(matches!(r.query(i as f64 * 0.2), QueryFate::Answered(_)));
        }
        assert_eq!(r.dropped(), 0);
        assert!(r.peak_qps() <= 6);
    }

    #[test]
    fn a_burst_fills_the_queue_then_drops() {
        let mut r = SimResolver::new(model(10.0, 5));
        let fates: Vec<_> = (0..20).map(|_| r.query(0.0)).collect();
        // One in service plus five queued are answered within the timeout.
        let answered = fates
            .iter()
            .filter(|f| matches!(f, QueryFate::Answered(_)))
            .count();
        assert_eq!(answered, 6);
        assert_eq!(r.dropped_queue, 14);
        assert_eq!(r.peak_qps(), 20);
    }

    #[test]
    fn slow_answers_time_out_but_still_cost_capacity() {
        // Queue of 50 at 10 q/s: the tail waits up to 5 s > 1 s timeout.
        let mut r = SimResolver::new(model(10.0, 50));
        for _ in 0..30 {
            r.query(0.0);
        }
        assert_eq!(r.dropped_queue, 0);
        assert_eq!(r.timed_out, 20);
        // The resolver is busy until 3 s even though most answers were useless.
        assert!(matches!(r.query(0.5), QueryFate::Lost));
    }
}
