//! Pacing: the DNS budget and the restart rate, as governor token buckets
//! on tokio's clock (so they follow a paused, virtual clock in rehearsals).
//! Requests are granted one at a time in priority order by one dispatcher
//! task: waves that unblock others go first. The rates can be retuned while
//! a run is under way; pausing holds every grant.

use governor::clock::Clock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{oneshot, watch, Notify};

/// governor's clock, reading tokio's (virtual in rehearsals).
#[derive(Debug, Clone)]
pub struct TokioClock {
    epoch: tokio::time::Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }
}

type Bucket = RateLimiter<NotKeyed, InMemoryState, TokioClock, governor::middleware::NoOpMiddleware<Duration>>;

/// A rate (per second, 0 = unlimited) as a token bucket.
struct Rate {
    per_second: f64,
    burst: u32,
    bucket: Option<Bucket>,
}

impl Rate {
    fn new(per_second: f64, burst: u32, clock: &TokioClock) -> Rate {
        let bucket = (per_second > 0.0).then(|| {
            let period = Duration::from_secs_f64(1.0 / per_second);
            let quota = Quota::with_period(period.max(Duration::from_nanos(1))).expect("non-zero").allow_burst(NonZeroU32::new(burst.max(1)).unwrap());
            RateLimiter::direct_with_clock(quota, clock.clone())
        });
        Rate { per_second, burst: burst.max(1), bucket }
    }

    /// Takes `n` tokens, sleeping on tokio's clock; costs above the burst
    /// are taken in burst-sized parts.
    async fn take(&self, mut n: u32, clock: &TokioClock) {
        let Some(bucket) = &self.bucket else { return };
        while n > 0 {
            let part = n.min(self.burst);
            loop {
                match bucket.check_n(NonZeroU32::new(part).unwrap()) {
                    Ok(Ok(())) => break,
                    Ok(Err(not_until)) => tokio::time::sleep(not_until.wait_time_from(clock.now())).await,
                    Err(_) => unreachable!("part <= burst"),
                }
            }
            n -= part;
        }
    }
}

/// Whether grants flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Open,
    Paused,
    /// Aborting or halting: pending requests are refused.
    Closed,
}

struct Request {
    priority: (u32, u32),
    seq: u64,
    lookups: u32,
    grant: oneshot::Sender<()>,
}

impl PartialEq for Request {
    fn eq(&self, o: &Self) -> bool {
        (self.priority, self.seq) == (o.priority, o.seq)
    }
}
impl Eq for Request {}
impl PartialOrd for Request {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Request {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Max-heap: the smallest (priority, seq) is the greatest.
        Reverse((self.priority, self.seq)).cmp(&Reverse((o.priority, o.seq)))
    }
}

/// Current pacing, for status snapshots.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PaceStatus {
    pub dns_budget_qps: f64,
    pub restart_rate: f64,
    pub dns_lookups_granted: u64,
    pub restarts_granted: u64,
    pub waiting: usize,
}

pub struct Pacer {
    clock: TokioClock,
    dns: RwLock<Arc<Rate>>,
    restarts: RwLock<Arc<Rate>>,
    queue: Mutex<(BinaryHeap<Request>, u64)>,
    notify: Notify,
    flow: watch::Sender<Flow>,
    granted: Mutex<(u64, u64)>,
    max_cost: u32,
}

impl Pacer {
    /// `dns_qps` is the budget (capacity × headroom); `max_cost` the largest
    /// single restart's lookups (the DNS burst never goes below it).
    pub fn new(dns_qps: f64, restart_rate: f64, max_cost: u32) -> Arc<Pacer> {
        let clock = TokioClock { epoch: tokio::time::Instant::now() };
        let pacer = Arc::new(Pacer {
            dns: RwLock::new(Arc::new(Rate::new(dns_qps, dns_burst(dns_qps, max_cost), &clock))),
            restarts: RwLock::new(Arc::new(Rate::new(restart_rate, restart_burst(restart_rate), &clock))),
            clock,
            queue: Mutex::new((BinaryHeap::new(), 0)),
            notify: Notify::new(),
            flow: watch::channel(Flow::Open).0,
            granted: Mutex::new((0, 0)),
            max_cost,
        });
        tokio::spawn(pacer.clone().dispatch());
        pacer
    }

    /// Waits for the right to restart one container that will make
    /// `lookups` DNS lookups. `None` when the run is stopping.
    pub async fn acquire(&self, priority: (u32, u32), lookups: u32) -> Option<()> {
        let (tx, rx) = oneshot::channel();
        {
            let mut q = self.queue.lock().unwrap();
            q.1 += 1;
            let seq = q.1;
            q.0.push(Request { priority, seq, lookups, grant: tx });
        }
        self.notify.notify_one();
        rx.await.ok()
    }

    pub fn set_flow(&self, flow: Flow) {
        self.flow.send_replace(flow);
        if flow == Flow::Closed {
            self.queue.lock().unwrap().0.clear();
        }
        self.notify.notify_one();
    }

    pub fn flow(&self) -> Flow {
        *self.flow.borrow()
    }

    /// Waits while the flow is paused.
    pub async fn while_paused(&self) {
        let mut rx = self.flow.subscribe();
        let _ = rx.wait_for(|f| *f != Flow::Paused).await;
    }

    /// Changes the DNS budget and/or the restart rate of a running run.
    pub fn retune(&self, dns_qps: Option<f64>, restart_rate: Option<f64>) {
        if let Some(q) = dns_qps {
            *self.dns.write().unwrap() = Arc::new(Rate::new(q, dns_burst(q, self.max_cost), &self.clock));
        }
        if let Some(r) = restart_rate {
            *self.restarts.write().unwrap() = Arc::new(Rate::new(r, restart_burst(r), &self.clock));
        }
    }

    pub fn status(&self) -> PaceStatus {
        let g = *self.granted.lock().unwrap();
        PaceStatus {
            dns_budget_qps: self.dns.read().unwrap().per_second,
            restart_rate: self.restarts.read().unwrap().per_second,
            dns_lookups_granted: g.0,
            restarts_granted: g.1,
            waiting: self.queue.lock().unwrap().0.len(),
        }
    }

    async fn dispatch(self: Arc<Self>) {
        let mut flow = self.flow.subscribe();
        loop {
            while *flow.borrow_and_update() == Flow::Paused {
                if flow.changed().await.is_err() {
                    return;
                }
            }
            let next = self.queue.lock().unwrap().0.pop();
            let Some(req) = next else {
                self.notify.notified().await;
                continue;
            };
            let restarts = self.restarts.read().unwrap().clone();
            restarts.take(1, &self.clock).await;
            let dns = self.dns.read().unwrap().clone();
            dns.take(req.lookups, &self.clock).await;
            if *self.flow.borrow() == Flow::Closed {
                continue;
            }
            {
                let mut g = self.granted.lock().unwrap();
                g.0 += req.lookups as u64;
                g.1 += 1;
            }
            let _ = req.grant.send(());
        }
    }
}

/// A tenth of a second of budget, and never less than one restart's cost:
/// a small burst keeps the resolver's queue short.
fn dns_burst(qps: f64, max_cost: u32) -> u32 {
    ((qps * 0.1).ceil() as u32).max(max_cost).max(1)
}

fn restart_burst(rate: f64) -> u32 {
    (rate.ceil() as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn grants_follow_the_budget_on_virtual_time() {
        let pacer = Pacer::new(100.0, 0.0, 10);
        let start = tokio::time::Instant::now();
        for _ in 0..50 {
            pacer.acquire((0, 0), 10).await.unwrap();
        }
        // 500 lookups at 100/s with a burst of 10: about 4.9 s.
        let took = start.elapsed().as_secs_f64();
        assert!((4.8..5.1).contains(&took), "{took}");
    }

    #[tokio::test(start_paused = true)]
    async fn higher_priority_goes_first_and_retune_applies() {
        let pacer = Pacer::new(10.0, 0.0, 10);
        pacer.acquire((0, 0), 10).await.unwrap(); // drain the burst
        let (p1, p2) = (pacer.clone(), pacer.clone());
        let low = tokio::spawn(async move { p1.acquire((5, 0), 10).await.map(|_| tokio::time::Instant::now()) });
        let high = tokio::spawn(async move { p2.acquire((1, 0), 10).await.map(|_| tokio::time::Instant::now()) });
        tokio::task::yield_now().await;
        let (low, high) = (low.await.unwrap().unwrap(), high.await.unwrap().unwrap());
        assert!(high <= low);
        pacer.retune(Some(1000.0), None);
        assert_eq!(pacer.status().dns_budget_qps, 1000.0);
    }
}
