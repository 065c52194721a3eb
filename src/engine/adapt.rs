//! The adaptive DNS budget's loop: every `adapt_interval` it measures the
//! resolver (probe queries at random moments of the interval, so they
//! cannot align with a resolver's per-second window, then its counters and
//! what the pacer granted), feeds the sample to the control law of
//! [`BudgetController`] and moves the pacer's rate, under the operator's
//! ceiling.

use super::pacer::Flow;
use super::{Event, ResolverLoad, Shared};
use crate::dns::budget::{BudgetController, CounterReading, DnsProbe, DnsSample};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Probe queries per second: about one per 250 queries of budget (0.4% of
/// the load), at least 4, at most 20.
fn probes_per_second(rate: f64) -> f64 {
    (rate / 250.0).round().clamp(4.0, 20.0)
}

/// The rate restarts get of `rate`: the probes are load too.
fn for_restarts(rate: f64) -> f64 {
    (rate - probes_per_second(rate)).max(rate * 0.5)
}

/// Probe queries out: when each was sent, and its answer to come.
type Probes = Vec<(Instant, JoinHandle<Option<Duration>>)>;

/// Measures the resolver every `adapt_interval` and moves the DNS budget
/// by the control law, until the run's flow is closed and nothing is in
/// the pacer's pipeline.
pub(super) async fn adapt_budget<R, P>(s: Arc<Shared<R, P>>, probe: Arc<dyn DnsProbe>) {
    let mut c = BudgetController::new(s.pb.dns.budget_qps(), s.pb.dns.latency_threshold);
    c.capacity = Some(s.pb.dns.capacity_qps);
    s.pacer.adapt(for_restarts(c.rate));
    s.budget_log
        .lock()
        .unwrap()
        .push((0.0, for_restarts(c.rate)));
    let mut last = probe.counters().await.map(|r| (Instant::now(), r));
    let mut granted_before = (Instant::now(), s.pacer.status().dns_lookups_granted);
    // A probe still young when a sample is taken counts in the next.
    let mut probes: Probes = Vec::new();
    loop {
        let interval = s.pb.dns.adapt_interval;
        let t0 = Instant::now();
        let n = send_probes(&s, &probe, &mut probes, c.rate, interval).await;
        tokio::time::sleep_until(t0 + interval).await;
        // Nothing is granted while paused: nothing to adapt (and a paused
        // rehearsal's virtual clock must not spin on this loop).
        s.pacer.while_paused().await;
        if s.pacer.flow() == Flow::Closed && s.pacer.status().in_pipeline == 0 {
            return;
        }
        let mut sample = answers(&mut probes, s.pb.dns.latency_threshold).await;
        if let Some(now) = probe.counters().await {
            let t = Instant::now();
            // Counters that went back are a restarted resolver's: the
            // reading starts a new count, it measures no interval.
            let reset = last.is_some_and(|(_, b)| now.received < b.received);
            if let Some((t0, before)) = last.filter(|_| !reset) {
                counted(&s, &mut sample, t.duration_since(t0), &before, &now);
            }
            last = Some((t, now));
        }
        sample.granted_qps = granted(&s, &mut granted_before, n);
        sample.window_s = Some(s.pacer.dns_window().as_secs_f64());
        let ceiling = s.pacer.ceiling();
        if ceiling > 0.0 && ceiling != c.ceiling {
            c.set_ceiling(ceiling);
        }
        feed(&s, &mut c, sample);
    }
}

/// Sends this interval's probe queries, each at a random moment of it,
/// concurrently (a lost one costs its timeout without delaying the next);
/// returns how many.
async fn send_probes<R, P>(
    s: &Shared<R, P>,
    probe: &Arc<dyn DnsProbe>,
    probes: &mut Probes,
    rate: f64,
    interval: Duration,
) -> u32 {
    let n = (probes_per_second(rate) * interval.as_secs_f64())
        .round()
        .max(1.0) as u32;
    let mut at: Vec<f64> = {
        let mut rng = s.jitter.lock().unwrap();
        (0..n)
            .map(|_| rng.uniform(0.0, interval.as_secs_f64()))
            .collect()
    };
    at.sort_by(f64::total_cmp);
    let t0 = Instant::now();
    for a in at {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(a)).await;
        let p = probe.clone();
        probes.push((Instant::now(), tokio::spawn(async move { p.probe().await })));
    }
    n
}

/// The probes' answers as a sample, taken now: a probe still out past the
/// latency threshold is lost for the controller (waiting for its timeout
/// would delay the signal that matters most); a younger one stays out and
/// counts in the next sample.
async fn answers(probes: &mut Probes, threshold: Duration) -> DnsSample {
    let now = Instant::now();
    let mut sample = DnsSample::default();
    let mut young = Vec::new();
    for (sent, task) in probes.drain(..) {
        let result = if task.is_finished() {
            task.await.ok().flatten()
        } else if now.duration_since(sent) <= threshold {
            young.push((sent, task));
            continue;
        } else {
            task.abort();
            None
        };
        sample.probes += 1;
        match result {
            Some(l) => {
                sample.latency = Some(sample.latency.map_or(l, |m| m.max(l)));
                sample.fastest = Some(sample.fastest.map_or(l, |m| m.min(l)));
            }
            None => sample.lost += 1,
        }
    }
    *probes = young;
    sample
}

/// What the resolver's counters moved by over `elapsed`, into the sample
/// and the run's record of the resolver's load.
fn counted<R, P>(
    s: &Shared<R, P>,
    sample: &mut DnsSample,
    elapsed: Duration,
    before: &CounterReading,
    now: &CounterReading,
) {
    let secs = elapsed.as_secs_f64().max(1e-3);
    sample.interval_s = Some(secs);
    sample.load_qps = Some((now.received - before.received).max(0.0) / secs);
    sample.dropped = match (now.dropped, before.dropped) {
        (Some(a), Some(b)) => Some((a - b).max(0.0) as u64),
        _ => None,
    };
    let load = ResolverLoad {
        at_s: s.at_s(),
        received_qps: sample.load_qps.unwrap_or(0.0),
        dropped_qps: sample.dropped.map(|d| d as f64 / secs),
    };
    s.resolver_log.lock().unwrap().push(load);
    s.status.lock().unwrap().resolver = Some(load);
}

/// Lookups granted per second since the last sample, with the `probes`
/// sent: the probes are the run's queries too, so the rate covers both.
fn granted<R, P>(s: &Shared<R, P>, before: &mut (Instant, u64), probes: u32) -> Option<f64> {
    let now = (Instant::now(), s.pacer.status().dns_lookups_granted);
    let secs = now.0.duration_since(before.0).as_secs_f64();
    let asked = now.1.saturating_sub(before.1) + u64::from(probes);
    *before = now;
    (secs > 0.0).then(|| asked as f64 / secs)
}

/// Feeds one sample to the control law; a new rate goes to the pacer, the
/// run's budget log and the event stream.
fn feed<R, P>(s: &Shared<R, P>, c: &mut BudgetController, sample: DnsSample) {
    let before = c.paced();
    tracing::trace!(at_s = s.at_s(), ?sample, strain = ?c.strain(&sample), "DNS sample");
    c.on_sample(sample);
    let rate = c.paced();
    if rate != before {
        let rate = for_restarts(rate);
        s.pacer.adapt(rate);
        s.budget_log.lock().unwrap().push((s.at_s(), rate));
        s.emit(Event::BudgetAdapted {
            dns_budget_qps: rate,
            probe_latency_ms: sample.latency.map(|l| l.as_secs_f64() * 1000.0),
            at_s: s.at_s(),
        });
    }
}
