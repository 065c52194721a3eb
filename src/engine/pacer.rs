//! Pacing: what the resolver receives, not what is granted. A restart is
//! split in two: a stop (no DNS cost) and a start, whose process makes its
//! startup lookups when it begins, at the end of the start call (0.2–0.35 s
//! on the measured engine, docs/docker-world.md). The pacer admits stops
//! into a bounded pipeline (about one stop time of DNS budget ahead), and
//! grants starts against the DNS budget as the start call goes out, summed
//! over a window of one second widened by the spread of recent start calls
//! ([`Pacer::observe_start`]), so the lookups reach the resolver at the
//! paced rate in any second.
//!
//! The DNS budget is a spacing rule (GCRA without burst: a grant of `n`
//! lookups pushes the next grant `n / rate` later), plus a sliding one-second
//! window that refuses a grant which would put more than the budget into any
//! second. A retune changes the rate in place: what the schedule already
//! promised is owed at the new rate (nothing refills, and a grant made at a
//! crawl does not hold the next one for minutes once the rate is back).
//! The budget in force is the lower of the operator's ceiling and the
//! adaptive controller's rate. Requests are served
//! in priority order (waves that unblock others first). Time is tokio's
//! clock (virtual in rehearsals). Pausing holds admissions; a container
//! already stopped is still started (nothing is left stopped); closing
//! refuses new admissions only, for the same reason.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch, Notify};
use tokio::time::Instant;

/// Whether admissions flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Admissions go on.
    Open,
    /// Admissions held; containers already stopped are still started.
    Paused,
    /// Aborting or halting: pending admissions are refused.
    Closed,
}

/// A rate as a spacing rule, with a one-second window that the sum of
/// grants may not pass (0 = unlimited).
#[derive(Debug)]
struct Spacing {
    per_second: f64,
    /// The window grants are summed over: one second, widened by how much
    /// the moment a grant's lookups reach the resolver varies after it
    /// (a start's process begins at the end of its call, whose length
    /// varies): any second of what the resolver receives then comes from
    /// grants inside one such window.
    window_len: Duration,
    /// The earliest time the next grant may go (the theoretical arrival time).
    next: Instant,
    window: VecDeque<(Instant, u32)>,
    in_window: u64,
}

const WINDOW: Duration = Duration::from_secs(1);
/// How much start calls' durations are taken to vary before eight were
/// seen (measured on the real engine: 0.2–0.55 s alone, docs/docker-world.md).
pub const PRIOR_SPREAD: Duration = Duration::from_millis(250);
/// Start calls whose spread of durations widens the DNS window.
pub const START_SAMPLES: usize = 64;
/// The most the DNS window is widened (a host this erratic is better
/// paced by the adaptive budget's drop counter than by a window).
pub const MAX_SPREAD: Duration = Duration::from_secs(2);
const TIMER_GRANULARITY: Duration = Duration::from_millis(1);

impl Spacing {
    fn new(per_second: f64, now: Instant) -> Spacing {
        Spacing {
            per_second,
            window_len: WINDOW,
            next: now,
            window: VecDeque::new(),
            in_window: 0,
        }
    }

    /// How long until `n` may be granted (zero: now).
    fn wait(&mut self, n: u32, now: Instant) -> Duration {
        if self.per_second <= 0.0 {
            return Duration::ZERO;
        }
        while self
            .window
            .front()
            .is_some_and(|&(t, _)| t + self.window_len <= now)
        {
            let (_, k) = self.window.pop_front().unwrap();
            self.in_window -= k as u64;
        }
        // A grant due within the timer's granularity goes now: tokio's
        // timers round up to the millisecond, so waiting for 1.02 ms would
        // halve a budget of one grant per millisecond. The window below
        // still holds the ceiling.
        let mut wait = self.next.saturating_duration_since(now);
        if wait <= TIMER_GRANULARITY {
            wait = Duration::ZERO;
        }
        // The window may hold at most the budget (or one grant, when one
        // grant alone costs more than a second of budget).
        let limit = self.per_second.max(n as f64);
        if self.in_window as f64 + n as f64 > limit + 1e-9 {
            let mut left = self.in_window as f64 + n as f64;
            for &(t, k) in &self.window {
                left -= k as f64;
                if left <= limit + 1e-9 {
                    wait = wait.max((t + self.window_len).saturating_duration_since(now));
                    break;
                }
            }
        }
        wait
    }

    /// A new rate: the wait the schedule still holds is the lookups
    /// already granted and not yet paid for, owed at the new rate. Nothing
    /// refills (no credit builds up), and a grant made at a crawl (a
    /// resolver outage holds the rate at its floor: 40 lookups at 0.3 q/s
    /// push the next grant 2 minutes out) does not hold the next one there
    /// once the rate is back.
    fn set_rate(&mut self, per_second: f64, now: Instant) {
        let old = self.per_second;
        self.per_second = per_second;
        if old <= 0.0 || per_second <= 0.0 || old == per_second {
            return;
        }
        let owed = self.next.saturating_duration_since(now).as_secs_f64() * old;
        self.next = now + Duration::from_secs_f64(owed / per_second);
    }

    fn take(&mut self, n: u32, now: Instant) {
        if self.per_second <= 0.0 {
            return;
        }
        // A grant that goes late (the timer woke after its time) keeps the
        // schedule, within a few timer ticks: no credit builds up beyond.
        let from = self
            .next
            .max(now.checked_sub(TIMER_GRANULARITY * 3).unwrap_or(now));
        self.next = from + Duration::from_secs_f64(n as f64 / self.per_second);
        self.window.push_back((now, n));
        self.in_window += n as u64;
    }
}

/// A waiting request: smallest (priority, seq) first.
struct Request {
    key: Reverse<((u32, u32), u64)>,
    cost: u32,
    grant: oneshot::Sender<()>,
}

impl PartialEq for Request {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
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
        self.key.cmp(&o.key)
    }
}

/// Current pacing, for status snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PaceStatus {
    /// The budget in force: the lower of the ceiling and the adaptive rate.
    pub dns_budget_qps: f64,
    /// The operator's ceiling (0 = none).
    #[serde(default)]
    pub dns_ceiling_qps: f64,
    /// Restarts per second across the fleet (0 = unlimited).
    pub restart_rate: f64,
    /// DNS queries granted so far (a start costs its role's startup lookups
    /// × the queries each sends).
    pub dns_lookups_granted: u64,
    /// Starts granted so far.
    pub restarts_granted: u64,
    /// Requests waiting for admission or for their start.
    pub waiting: usize,
    /// Containers admitted and not yet started (stopping, or stopped and
    /// waiting for DNS budget).
    #[serde(default)]
    pub in_pipeline: usize,
}

struct State {
    dns: Spacing,
    ceiling: f64,
    adaptive: Option<f64>,
    restarts: Spacing,
    admit: BinaryHeap<Request>,
    start: BinaryHeap<Request>,
    seq: u64,
    /// Cost admitted and not yet started.
    pipeline_cost: u64,
    pipeline_len: usize,
    /// At most this many admitted and not yet started (0: no cap): each
    /// holds a connection to its host while it stops.
    max_pipeline: usize,
    /// A high estimate of one stop's duration (seconds), decaying.
    stop_high: f64,
    /// A high estimate of one start call's duration (seconds), decaying:
    /// a start's process begins at the end of its call (docs/docker-world.md).
    start_high: f64,
    /// The last start calls' durations (seconds), newest last: their spread
    /// widens the DNS window.
    start_recent: VecDeque<f64>,
    lookups_granted: u64,
    restarts_granted: u64,
    /// Lookups granted in each second since the pacer began.
    per_second: Vec<u64>,
}

impl State {
    fn budget(&self) -> f64 {
        match (self.ceiling, self.adaptive) {
            (c, Some(a)) if c > 0.0 => a.min(c),
            (_, Some(a)) => a,
            (c, None) => c,
        }
    }

    /// Admitted cost may reach this much: about one stop time of budget
    /// beyond the second in progress, and always one request.
    fn pipeline_room(&self, cost: u32) -> bool {
        if self.pipeline_len == 0 {
            return true;
        }
        if self.max_pipeline > 0 && self.pipeline_len >= self.max_pipeline {
            return false;
        }
        let budget = self.budget();
        if budget <= 0.0 {
            return true;
        }
        (self.pipeline_cost + cost as u64) as f64 <= budget * (1.0 + self.stop_high)
    }
}

/// Grants stops and starts under the DNS budget and the restart rate, in priority order.
pub struct Pacer {
    epoch: Instant,
    state: Mutex<State>,
    notify: Notify,
    flow: watch::Sender<Flow>,
}

/// The right to stop one container: its DNS cost is counted in the
/// pipeline until [`Pacer::start`] grants its start (or it is dropped).
pub struct Admission {
    pacer: Arc<Pacer>,
    priority: (u32, u32),
    cost: u32,
    open: bool,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.open {
            let mut s = self.pacer.state.lock().unwrap();
            s.pipeline_cost -= self.cost as u64;
            s.pipeline_len -= 1;
            drop(s);
            self.pacer.notify.notify_one();
        }
    }
}

impl Pacer {
    /// `dns_qps` is the budget's ceiling (0: none); `stop_estimate` what one
    /// stop is expected to take, until stops are observed.
    pub fn new(dns_qps: f64, restart_rate: f64, stop_estimate: Duration) -> Arc<Pacer> {
        let now = Instant::now();
        let pacer = Arc::new(Pacer {
            epoch: now,
            state: Mutex::new(State {
                dns: Spacing {
                    window_len: WINDOW + PRIOR_SPREAD,
                    ..Spacing::new(dns_qps, now)
                },
                ceiling: dns_qps,
                adaptive: None,
                restarts: Spacing::new(restart_rate, now),
                admit: BinaryHeap::new(),
                start: BinaryHeap::new(),
                seq: 0,
                pipeline_cost: 0,
                pipeline_len: 0,
                max_pipeline: 0,
                stop_high: stop_estimate.as_secs_f64(),
                start_high: 0.0,
                start_recent: VecDeque::new(),
                lookups_granted: 0,
                restarts_granted: 0,
                per_second: Vec::new(),
            }),
            notify: Notify::new(),
            flow: watch::channel(Flow::Open).0,
        });
        tokio::spawn(pacer.clone().dispatch());
        pacer
    }

    fn enqueue(&self, start: bool, priority: (u32, u32), cost: u32) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.state.lock().unwrap();
            s.seq += 1;
            let req = Request {
                key: Reverse((priority, s.seq)),
                cost,
                grant: tx,
            };
            if start {
                s.start.push(req);
            } else {
                s.admit.push(req);
            }
        }
        self.notify.notify_one();
        rx
    }

    /// Waits for the right to stop one container whose start will cost
    /// `lookups`. `None` when the run is stopping.
    pub async fn admit(self: &Arc<Self>, priority: (u32, u32), lookups: u32) -> Option<Admission> {
        if self.flow() == Flow::Closed {
            return None;
        }
        self.enqueue(false, priority, lookups).await.ok()?;
        Some(Admission {
            pacer: self.clone(),
            priority,
            cost: lookups,
            open: true,
        })
    }

    /// Waits for the DNS budget to start an admitted container; call it
    /// with the host's slot in hand, right before the start call. Never
    /// refused: a stopped container is always started.
    pub async fn start(&self, mut admission: Admission) {
        let rx = self.enqueue(true, admission.priority, admission.cost);
        // The dispatcher moves the cost out of the pipeline when it grants.
        admission.open = false;
        let _ = rx.await;
    }

    /// Admission and start at once (a restart in one call, or a test).
    pub async fn acquire(self: &Arc<Self>, priority: (u32, u32), lookups: u32) -> Option<()> {
        let a = self.admit(priority, lookups).await?;
        self.start(a).await;
        Some(())
    }

    /// The slowest stop seen lately (decaying), or the initial estimate:
    /// the pipeline admits stops that far ahead.
    pub fn stop_high(&self) -> Duration {
        Duration::from_secs_f64(self.state.lock().unwrap().stop_high.max(0.0))
    }

    /// Records how long a stop took, raising the decaying estimate of the slowest stop.
    pub fn observe_stop(&self, took: Duration) {
        let mut s = self.state.lock().unwrap();
        s.stop_high = took.as_secs_f64().max(s.stop_high * 0.9999);
    }

    /// The slowest start call seen lately (decaying; zero before any).
    pub fn start_high(&self) -> Duration {
        Duration::from_secs_f64(self.state.lock().unwrap().start_high.max(0.0))
    }

    /// Records how long a start call took. The spread of the last
    /// [`START_SAMPLES`] calls (slowest minus quickest, at most
    /// [`MAX_SPREAD`]) widens the window the DNS budget holds over: a
    /// start's lookups reach the resolver when its process begins, at the
    /// end of its call, so grants one second apart may land closer.
    pub fn observe_start(&self, took: Duration) {
        let mut s = self.state.lock().unwrap();
        let took = took.as_secs_f64();
        s.start_high = took.max(s.start_high * 0.9999);
        if s.start_recent.len() == START_SAMPLES {
            s.start_recent.pop_front();
        }
        s.start_recent.push_back(took);
        let (lo, hi) = s
            .start_recent
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
        let mut spread = (hi - lo).clamp(0.0, MAX_SPREAD.as_secs_f64());
        if s.start_recent.len() < 8 {
            spread = spread.max(PRIOR_SPREAD.as_secs_f64());
        }
        s.dns.window_len = WINDOW + Duration::from_secs_f64(spread);
    }

    /// The window the DNS budget holds over now (one second plus the
    /// spread of recent start calls).
    pub fn dns_window(&self) -> Duration {
        self.state.lock().unwrap().dns.window_len
    }

    /// Moves the flow; once closed (an abort, a halt) it stays closed: a
    /// pause or an open after that is refused (`false`), atomically.
    pub fn set_flow(&self, flow: Flow) -> bool {
        let mut refused = false;
        self.flow.send_if_modified(|f| {
            if *f == Flow::Closed && flow != Flow::Closed {
                refused = true;
                return false;
            }
            let changed = *f != flow;
            *f = flow;
            changed
        });
        if refused {
            return false;
        }
        if flow == Flow::Closed {
            self.state.lock().unwrap().admit.clear();
        }
        self.notify.notify_one();
        true
    }

    /// Whether admissions flow now.
    pub fn flow(&self) -> Flow {
        *self.flow.borrow()
    }

    /// Waits while the flow is paused.
    pub async fn while_paused(&self) {
        let mut rx = self.flow.subscribe();
        let _ = rx.wait_for(|f| *f != Flow::Paused).await;
    }

    /// The operator's change: a new ceiling for the DNS budget (0 = none)
    /// and/or a new restart rate. The adaptive rate stays below the ceiling.
    pub fn retune(&self, dns_ceiling: Option<f64>, restart_rate: Option<f64>) {
        let mut s = self.state.lock().unwrap();
        if let Some(c) = dns_ceiling {
            s.ceiling = c.max(0.0);
            let budget = s.budget();
            s.dns.set_rate(budget, Instant::now());
        }
        if let Some(r) = restart_rate {
            s.restarts.set_rate(r.max(0.0), Instant::now());
        }
        drop(s);
        self.notify.notify_one();
    }

    /// The adaptive controller's rate (under the ceiling).
    pub fn adapt(&self, rate: f64) {
        let mut s = self.state.lock().unwrap();
        s.adaptive = Some(rate);
        let budget = s.budget();
        s.dns.set_rate(budget, Instant::now());
        drop(s);
        self.notify.notify_one();
    }

    /// Caps how many containers may be admitted and not yet started
    /// (stopping, or stopped and waiting for DNS budget); 0: no cap but
    /// the DNS pipeline's.
    pub fn set_max_in_flight(&self, n: usize) {
        self.state.lock().unwrap().max_pipeline = n;
        self.notify.notify_one();
    }

    /// The operator's ceiling (0 = none).
    pub fn ceiling(&self) -> f64 {
        self.state.lock().unwrap().ceiling
    }

    /// Lookups granted in each second since the pacer began.
    pub fn granted_per_second(&self) -> Vec<u64> {
        self.state.lock().unwrap().per_second.clone()
    }

    /// The pacing figures now.
    pub fn status(&self) -> PaceStatus {
        let s = self.state.lock().unwrap();
        PaceStatus {
            dns_budget_qps: s.budget(),
            dns_ceiling_qps: s.ceiling,
            restart_rate: s.restarts.per_second,
            dns_lookups_granted: s.lookups_granted,
            restarts_granted: s.restarts_granted,
            waiting: s.admit.len() + s.start.len(),
            in_pipeline: s.pipeline_len,
        }
    }

    /// Grants what can go now; returns how long until the next start could.
    fn grant_ready(&self, flow: Flow) -> Option<Duration> {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap();
        loop {
            if flow == Flow::Open {
                while let Some(top) = s.admit.peek() {
                    if !s.pipeline_room(top.cost) {
                        break;
                    }
                    let req = s.admit.pop().unwrap();
                    if req.grant.send(()).is_ok() {
                        s.pipeline_cost += req.cost as u64;
                        s.pipeline_len += 1;
                    }
                }
            }
            let cost = s.start.peek()?.cost;
            let wait = s.dns.wait(cost, now).max(s.restarts.wait(1, now));
            if !wait.is_zero() {
                return Some(wait);
            }
            // A start leaves the pipeline: admissions may follow it.
            let req = s.start.pop().unwrap();
            s.dns.take(cost, now);
            s.restarts.take(1, now);
            s.pipeline_cost -= cost as u64;
            s.pipeline_len -= 1;
            s.lookups_granted += cost as u64;
            s.restarts_granted += 1;
            let sec = (now - self.epoch).as_secs() as usize;
            if s.per_second.len() <= sec {
                tracing::trace!(
                    second = sec,
                    admit = s.admit.len(),
                    start = s.start.len(),
                    in_pipeline = s.pipeline_len,
                    budget = s.budget(),
                    stop_high = s.stop_high,
                    "pacer"
                );
            }
            if s.per_second.len() <= sec {
                s.per_second.resize(sec + 1, 0);
            }
            s.per_second[sec] += cost as u64;
            let _ = req.grant.send(());
        }
    }

    async fn dispatch(self: Arc<Self>) {
        let mut flow = self.flow.subscribe();
        loop {
            let f = *flow.borrow_and_update();
            let next = self.grant_ready(f);
            tokio::select! {
                _ = self.notify.notified() => {}
                r = flow.changed() => if r.is_err() { return },
                _ = async {
                    match next {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn grants_follow_the_budget_on_virtual_time_without_a_burst() {
        let pacer = Pacer::new(100.0, 0.0, Duration::from_secs(1));
        // Starts whose calls all take the same time: lookups land as
        // granted, the window is one second.
        for _ in 0..8 {
            pacer.observe_start(Duration::from_millis(250));
        }
        assert_eq!(pacer.dns_window(), Duration::from_secs(1));
        let start = Instant::now();
        for _ in 0..50 {
            pacer.acquire((0, 0), 10).await.unwrap();
        }
        // 500 lookups at 100/s, the first at once: 4.9 s.
        let took = start.elapsed().as_secs_f64();
        assert!((4.85..5.0).contains(&took), "{took}");
        assert!(
            pacer.granted_per_second().iter().all(|&n| n <= 100),
            "{:?}",
            pacer.granted_per_second()
        );
    }

    /// Start calls that take 0.2 to 0.7 s: a grant's lookups land up to
    /// 0.5 s apart from where it was granted, so the budget holds over 1.5 s
    /// windows of grants, and any one second of landings stays within it.
    #[tokio::test(start_paused = true)]
    async fn the_spread_of_start_calls_widens_the_window_the_budget_holds_over() {
        let pacer = Pacer::new(100.0, 0.0, Duration::from_secs(1));
        assert_eq!(pacer.dns_window(), WINDOW + PRIOR_SPREAD);
        for i in 0..10 {
            pacer.observe_start(Duration::from_millis(if i % 2 == 0 { 200 } else { 700 }));
        }
        assert_eq!(pacer.dns_window(), Duration::from_millis(1500));
        let start = Instant::now();
        let mut granted = Vec::new();
        for _ in 0..30 {
            pacer.acquire((0, 0), 10).await.unwrap();
            granted.push(start.elapsed().as_secs_f64());
        }
        // Any 1.5 s of grants holds at most 100 lookups (10 grants).
        for (i, &t) in granted.iter().enumerate() {
            let within = granted[i..]
                .iter()
                .take_while(|&&u| u < t + 1.5 - 1e-9)
                .count();
            assert!(
                within <= 10,
                "{within} grants within 1.5 s from {t:.3}: {granted:?}"
            );
        }
        // 300 lookups, 100 per 1.5 s window, each window's grants 0.1 s
        // apart: the last at 2 × 1.5 + 0.9 s.
        let took = start.elapsed().as_secs_f64();
        assert!((3.85..3.95).contains(&took), "{took}");
    }

    #[tokio::test(start_paused = true)]
    async fn restarts_in_flight_cap_holds_admissions_until_one_starts() {
        // No DNS budget to speak of: only the cap holds admissions back.
        let pacer = Pacer::new(0.0, 0.0, Duration::from_secs(1));
        pacer.set_max_in_flight(2);
        let a = pacer.admit((0, 0), 1).await.unwrap();
        let b = pacer.admit((0, 0), 1).await.unwrap();
        let p = pacer.clone();
        let third = tokio::spawn(async move { p.admit((0, 0), 1).await });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!third.is_finished(), "a third admission past a cap of 2");
        assert_eq!(pacer.status().in_pipeline, 2);
        // One starts: its place goes to the third.
        pacer.start(a).await;
        let _c = tokio::time::timeout(Duration::from_secs(1), third)
            .await
            .expect("admitted once one started")
            .unwrap()
            .unwrap();
        // One dropped unstarted (its restart failed before the start) frees
        // its place too.
        let p = pacer.clone();
        let fourth = tokio::spawn(async move { p.admit((0, 0), 1).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!fourth.is_finished());
        drop(b);
        tokio::time::timeout(Duration::from_secs(1), fourth)
            .await
            .expect("admitted once one was dropped")
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn higher_priority_goes_first_and_a_retune_never_refills() {
        let pacer = Pacer::new(10.0, 0.0, Duration::from_secs(1));
        pacer.acquire((0, 0), 10).await.unwrap(); // the next grant is 1 s away
        let (p1, p2) = (pacer.clone(), pacer.clone());
        let low = tokio::spawn(async move { p1.acquire((5, 0), 10).await.map(|_| Instant::now()) });
        let high =
            tokio::spawn(async move { p2.acquire((1, 0), 10).await.map(|_| Instant::now()) });
        tokio::task::yield_now().await;
        let (low, high) = (low.await.unwrap().unwrap(), high.await.unwrap().unwrap());
        assert!(high < low);
        // Idle for a minute, then a tenfold retune: still one grant at once,
        // the next a cost's worth later — no stored burst.
        tokio::time::sleep(Duration::from_secs(60)).await;
        pacer.retune(Some(100.0), None);
        let t0 = Instant::now();
        pacer.acquire((0, 0), 10).await.unwrap();
        pacer.acquire((0, 0), 10).await.unwrap();
        // 100 ms, less at most the few timer ticks a late grant may catch up.
        assert!(
            t0.elapsed() >= Duration::from_millis(96),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(pacer.status().dns_budget_qps, 100.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_grant_at_a_crawl_is_owed_at_the_rate_that_follows() {
        // An outage holds the adaptive rate at its floor; a router's 40
        // lookups granted then push the next grant 133 s out at 0.3 q/s.
        let pacer = Pacer::new(300.0, 0.0, Duration::from_secs(1));
        pacer.adapt(0.3);
        pacer.acquire((0, 0), 40).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The resolver is back: the rate returns to 300 q/s. The 40
        // lookups less the second that passed are owed at 300 q/s: the
        // next grant goes within a fraction of a second, not two minutes.
        pacer.adapt(300.0);
        let t0 = Instant::now();
        pacer.acquire((0, 0), 40).await.unwrap();
        assert!(
            t0.elapsed() < Duration::from_millis(200),
            "{:?}",
            t0.elapsed()
        );
        // Owed, not forgiven: a cut right after a grant lengthens the wait
        // it left (no credit from a rate that was higher).
        pacer.adapt(10.0);
        let t1 = Instant::now();
        pacer.acquire((0, 0), 40).await.unwrap();
        let waited = t1.elapsed();
        assert!(
            waited >= Duration::from_millis(3900) && waited <= Duration::from_millis(4100),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_adaptive_rate_stays_under_the_operators_ceiling() {
        let pacer = Pacer::new(100.0, 0.0, Duration::from_secs(1));
        pacer.adapt(80.0);
        assert_eq!(pacer.status().dns_budget_qps, 80.0);
        pacer.retune(Some(50.0), None);
        pacer.adapt(90.0);
        assert_eq!(pacer.status().dns_budget_qps, 50.0);
        pacer.retune(Some(200.0), None);
        assert_eq!(pacer.status().dns_budget_qps, 90.0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pipeline_admits_about_one_stop_time_of_budget() {
        // 10 q/s, cost 5, stops of 1 s: admitted cost at most 10 × 2 = 20,
        // i.e. four containers stopped ahead of their start.
        let pacer = Pacer::new(10.0, 0.0, Duration::from_secs(1));
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(pacer.admit((0, 0), 5).await.unwrap());
        }
        let p = pacer.clone();
        let fifth = tokio::spawn(async move { p.admit((0, 0), 5).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            !fifth.is_finished(),
            "a fifth admission passed the pipeline bound"
        );
        assert_eq!(pacer.status().in_pipeline, 4);
        pacer.start(held.pop().unwrap()).await;
        fifth.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn closing_refuses_admissions_but_still_starts_what_was_stopped() {
        let pacer = Pacer::new(10.0, 0.0, Duration::from_secs(1));
        let a = pacer.admit((0, 0), 10).await.unwrap();
        pacer.set_flow(Flow::Closed);
        assert!(pacer.admit((0, 0), 10).await.is_none());
        pacer.start(a).await;
        assert_eq!(pacer.status().restarts_granted, 1);
    }
}
