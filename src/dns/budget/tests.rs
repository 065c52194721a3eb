//! The control law's tests: the start, strain and its cuts, the hold and
//! its steering, outages, each from the samples a resolver would give.

use super::*;

const MS: fn(u64) -> Duration = Duration::from_millis;
const CALM: DnsSample = DnsSample {
    probes: 4,
    lost: 0,
    latency: Some(Duration::from_millis(5)),
    fastest: Some(Duration::from_millis(1)),
    interval_s: Some(1.0),
    load_qps: None,
    dropped: Some(0),
    granted_qps: None,
    window_s: None,
};

/// A resolver that answers nothing: every probe lost, no counter read.
const SILENT: DnsSample = DnsSample {
    probes: 4,
    lost: 4,
    latency: None,
    fastest: None,
    interval_s: None,
    load_qps: None,
    dropped: None,
    granted_qps: None,
    window_s: None,
};

/// A resolver that serves `cap` per second and drops the rest.
fn resolver(rate: f64, cap: f64) -> DnsSample {
    let dropped = (rate - cap).max(0.0);
    DnsSample {
        load_qps: Some(rate),
        dropped: Some(dropped as u64),
        ..CALM
    }
}

#[test]
fn starts_at_half_grows_by_a_quarter_and_never_passes_the_ceiling() {
    let mut c = BudgetController::new(1024.0, MS(250));
    assert_eq!(c.rate, 512.0);
    assert!(c.in_slow_start());
    assert_eq!(c.on_sample(CALM), 640.0);
    assert_eq!(c.on_sample(CALM), 800.0);
    assert_eq!(c.on_sample(CALM), 1000.0);
    assert!(c.in_slow_start());
    assert_eq!(c.on_sample(CALM), 1024.0);
    assert!(!c.in_slow_start(), "the ceiling ends the start");
    for _ in 0..50 {
        c.on_sample(CALM);
    }
    assert_eq!(c.rate, 1024.0, "never above the ceiling");
}

/// The playbook claims twice what the resolver serves (a per-second
/// limit, no queue to warn): the start is the truth, and each step of
/// the start sends at most a quarter more than the resolver received.
/// The drops' retries get room: the rate granted leaves it.
#[test]
fn a_resolver_half_as_strong_as_claimed_costs_the_start_a_quarter_of_a_second() {
    let mut c = BudgetController::new(1000.0, MS(250));
    let (mut dropped, mut sent, mut start) = (0.0, 0.0, None);
    let mut reserved = false;
    for _ in 0..200 {
        let paced = c.paced();
        let s = resolver(paced, 500.0);
        dropped += (paced - 500.0).max(0.0).floor();
        sent += paced;
        assert!(
            paced <= 1.25 * 500.0 + 1e-9,
            "sent {paced} to a resolver of 500"
        );
        c.on_sample(s);
        if !c.in_slow_start() && start.is_none() {
            start = Some(dropped);
        }
        reserved |= c.paced() < c.rate;
    }
    assert!(reserved, "drops leave room for their retries");
    assert!(start.unwrap() <= 125.0, "the start dropped {start:?}");
    assert!(dropped / sent < 0.005, "dropped {dropped} of {sent}");
    assert!(sent / 200.0 > 0.88 * 500.0, "sent {sent}");
}

#[test]
fn the_room_for_retries_is_what_was_dropped_and_halves_each_sample() {
    let mut c = BudgetController::new(1000.0, MS(250));
    c.on_sample(DnsSample {
        load_qps: Some(1000.0),
        dropped: Some(100),
        window_s: Some(1.2),
        ..CALM
    });
    let rate = c.rate;
    assert!(
        (rate - c.paced() - 120.0).abs() < 1e-9,
        "{} {}",
        rate,
        c.paced()
    );
    c.on_sample(DnsSample {
        load_qps: Some(c.rate),
        ..CALM
    });
    assert!((c.rate - c.paced() - 60.0).abs() < 1e-9);
}

/// On a small queue a burst's lookups keep a probe waiting now and
/// then at any rate: in the start, with the drop counter read and
/// showing none, that is no strain (the counter shows the queue that
/// overflows); without the counter it is.
#[test]
fn in_the_start_a_burst_latency_with_nothing_dropped_is_no_strain() {
    let c = BudgetController::new(1000.0, MS(250));
    let burst = DnsSample {
        latency: Some(MS(300)),
        load_qps: Some(400.0),
        ..CALM
    };
    assert_eq!(c.strain(&burst), None);
    let blind = DnsSample {
        dropped: None,
        ..burst
    };
    assert_eq!(c.strain(&blind), Some(Strain::Queue));
    let dropping = DnsSample {
        dropped: Some(50),
        ..burst
    };
    assert_eq!(c.strain(&dropping), Some(Strain::Dropped));
}

#[test]
fn finds_a_weaker_resolver_from_its_drop_counter_and_holds_without_a_sawtooth() {
    // The resolver serves 400 q/s; the playbook claims 1000.
    let mut c = BudgetController::new(1000.0, MS(250));
    let mut rates = Vec::new();
    for _ in 0..200 {
        let s = resolver(c.rate, 400.0);
        rates.push(c.on_sample(s));
    }
    let tail = &rates[50..];
    let (lo, hi) = tail
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    assert!(lo >= 315.0 && hi <= 410.0, "settled between {lo} and {hi}");
    // It may graze the capacity, but drops under the tolerated share.
    let sent: f64 = tail.iter().sum();
    let dropped: f64 = tail.iter().map(|&r| (r - 400.0).max(0.0).floor()).sum();
    assert!(dropped / sent <= TOLERATED, "dropped {dropped} of {sent}");
    let mean = tail.iter().sum::<f64>() / tail.len() as f64;
    assert!(mean > 0.88 * 400.0, "mean {mean}");
}

/// The pacer grants the rate per widened window (1.25 s here), so the
/// resolver receives the rate / 1.25: the knee found from its counters
/// is scaled back to a rate to pace at, and what the resolver receives
/// settles under its capacity as with a one-second window — not 1.25
/// times lower with each cut.
#[test]
fn a_widened_window_does_not_ratchet_the_knee_down() {
    let mut c = BudgetController::new(1000.0, MS(250));
    let mut received = Vec::new();
    for _ in 0..200 {
        let s = DnsSample {
            window_s: Some(1.25),
            ..resolver(c.rate / 1.25, 400.0)
        };
        c.on_sample(s);
        received.push(c.rate / 1.25);
    }
    let tail = &received[50..];
    let mean = tail.iter().sum::<f64>() / tail.len() as f64;
    assert!(
        mean > 0.88 * 400.0,
        "the resolver receives {mean} on average"
    );
    let sent: f64 = tail.iter().sum();
    let dropped: f64 = tail.iter().map(|&r| (r - 400.0).max(0.0).floor()).sum();
    assert!(dropped / sent <= TOLERATED, "dropped {dropped} of {sent}");
    assert!(
        tail.iter().all(|&r| r <= 410.0),
        "at most a sliver above the capacity"
    );
}

#[test]
fn with_nothing_dropping_it_settles_above_90_percent_of_the_ceiling() {
    let mut c = BudgetController::new(1000.0, MS(250));
    for _ in 0..20 {
        c.on_sample(CALM);
    }
    assert!(c.rate > 900.0, "{}", c.rate);
}

#[test]
fn lost_probes_or_a_standing_queue_are_strain_and_cuts_wait_a_cooldown() {
    let mut c = BudgetController::new(1000.0, MS(250));
    c.capacity = Some(2000.0);
    let before = c.on_sample(CALM); // the baseline latency is 1 ms
                                    // One of four probes lost: the resolver served about 3/4 of the rate.
    let r = c.on_sample(DnsSample { lost: 1, ..CALM });
    assert!((r - 0.8 * 0.75 * before).abs() < 1e-9, "{r}");
    assert!(!c.in_slow_start(), "strain ends slow start");
    // Within the cooldown, more strain does not cut again.
    assert_eq!(
        c.on_sample(DnsSample {
            load_qps: Some(2600.0),
            ..CALM
        }),
        r
    );
    assert_eq!(
        c.strain(&DnsSample {
            load_qps: Some(2600.0),
            ..CALM
        }),
        Some(Strain::Busy)
    );
    assert_eq!(
        c.strain(&DnsSample {
            load_qps: Some(2150.0),
            ..CALM
        }),
        None,
        "counter-window jitter is not overload"
    );
    // Drops, but the resolver serves about the rate: the cut's own
    // retries, no second cut within the cooldown.
    assert_eq!(c.on_sample(resolver(r, 0.9 * r)), r);
    // The fastest probe queued 60 ms behind others: a standing queue.
    let queued = DnsSample {
        fastest: Some(MS(60)),
        ..CALM
    };
    assert_eq!(c.strain(&queued), Some(Strain::Queue));
    assert_eq!(c.on_sample(queued), r);
    assert_eq!(c.on_sample(queued), r, "still cooling down");
    assert!(c.on_sample(queued) < r, "the cooldown is over");
}

#[test]
fn slow_start_grows_only_a_rate_the_run_used_and_the_resolver_received() {
    let mut c = BudgetController::new(1024.0, MS(250));
    let idle = DnsSample {
        granted_qps: Some(200.0),
        ..CALM
    };
    assert_eq!(c.on_sample(idle), 512.0, "an idle rate does not grow");
    let used = DnsSample {
        granted_qps: Some(300.0),
        ..CALM
    };
    assert_eq!(c.on_sample(used), 640.0);
    // Granted, but the starts' lookups have not reached the resolver
    // yet: a quarter above what it received.
    let landing = DnsSample {
        granted_qps: Some(640.0),
        load_qps: Some(560.0),
        ..CALM
    };
    assert_eq!(c.on_sample(landing), 700.0);
}

#[test]
fn a_cut_that_fell_short_is_corrected_within_the_cooldown() {
    // The resolver serves 40 q/s; a short first sample overstated it.
    let mut c = BudgetController::new(200.0, MS(250));
    let r = c.on_sample(DnsSample {
        load_qps: Some(144.0),
        dropped: Some(6),
        interval_s: Some(0.25),
        ..CALM
    });
    assert!((r - 0.8 * 120.0).abs() < 1e-9, "{r}");
    let r = c.on_sample(DnsSample {
        load_qps: Some(59.0),
        dropped: Some(25),
        ..CALM
    });
    assert!((r - 0.8 * 34.0).abs() < 1e-9, "{r}");
    // Drops while the rate is already under what was served: no cut
    // within the cooldown (retries of what was dropped before).
    assert_eq!(
        c.on_sample(DnsSample {
            load_qps: Some(40.0),
            dropped: Some(2),
            ..CALM
        }),
        r
    );
}

#[test]
fn a_backlog_dropped_after_a_cut_is_not_cut_again() {
    // The start overshot a queue of a second: the first drops cut the
    // rate; the next second the queue still overflows with what was sent
    // before the cut (the resolver received 1,200 q/s while the run
    // granted 150), and a third of it is dropped.
    let mut c = BudgetController::new(5000.0, MS(250));
    c.on_sample(DnsSample {
        load_qps: Some(3500.0),
        dropped: Some(1000),
        granted_qps: Some(3800.0),
        ..CALM
    });
    assert!((c.rate - 0.8 * 2500.0).abs() < 1e-9, "{}", c.rate);
    let backlog = DnsSample {
        load_qps: Some(1200.0),
        dropped: Some(400),
        granted_qps: Some(150.0),
        ..CALM
    };
    assert_eq!(c.strain(&backlog), Some(Strain::Dropped));
    c.on_sample(backlog);
    // The rate holds (the pacer grants it less the room kept for the
    // retries of what was dropped): 800 q/s served of a backlog is no
    // capacity.
    assert!((c.rate - 0.8 * 2500.0).abs() < 1e-9, "{}", c.rate);
    assert_eq!(c.knee(), Some(2500.0));
    assert!(c.paced() < c.rate, "{}", c.paced());
    // The same drops while the run granted what the resolver received:
    // the cut fell short, and it is corrected.
    let mut d = BudgetController::new(5000.0, MS(250));
    d.on_sample(DnsSample {
        load_qps: Some(3500.0),
        dropped: Some(1000),
        granted_qps: Some(3800.0),
        ..CALM
    });
    d.on_sample(DnsSample {
        load_qps: Some(1200.0),
        dropped: Some(400),
        granted_qps: Some(1200.0),
        ..CALM
    });
    assert!((d.rate - 0.8 * 800.0).abs() < 1e-9, "{}", d.rate);
}

#[test]
fn a_lower_ceiling_holds_while_adapting() {
    let mut c = BudgetController::new(1000.0, MS(250));
    c.set_ceiling(300.0);
    for _ in 0..20 {
        assert!(c.on_sample(CALM) <= 300.0);
    }
}

#[test]
fn an_outage_holds_the_floor_keeps_the_knee_and_recovers_in_two_samples() {
    let mut c = BudgetController::new(1000.0, MS(250));
    for _ in 0..100 {
        c.on_sample(resolver(c.rate, 600.0));
    }
    let (rate, knee) = (c.rate, c.knee());
    assert!(knee.is_some() && rate > 400.0, "{rate} {knee:?}");
    let down = DnsSample {
        granted_qps: Some(0.0),
        ..SILENT
    };
    for _ in 0..30 {
        c.on_sample(down);
    }
    assert!(c.in_outage());
    assert_eq!(c.rate, c.floor, "as little as possible while it is down");
    assert_eq!(c.knee(), knee, "the outage is not a capacity measurement");
    // Coming back, the resolver loses some probes while it starts (its
    // counter not yet read): the outage's tail holds the floor, and does
    // not end the way back (it did: the rate then crawled up from the
    // floor by 15% a sample, a minute for a 6 s outage on the real path).
    c.on_sample(DnsSample {
        probes: 6,
        lost: 2,
        latency: Some(MS(600)),
        fastest: Some(MS(170)),
        ..down
    });
    assert!(!c.in_outage());
    assert_eq!(c.rate, c.floor);
    let mut samples = 0;
    while c.rate < rate && samples < 20 {
        c.on_sample(DnsSample {
            granted_qps: Some(0.0),
            ..resolver(c.rate, 600.0)
        });
        samples += 1;
    }
    assert!(!c.in_outage());
    assert!(
        samples <= 2,
        "back to {rate} q/s in {samples} samples (now {})",
        c.rate
    );
    // And it holds there as before.
    for _ in 0..50 {
        c.on_sample(resolver(c.rate, 600.0));
    }
    assert!(c.rate > 0.7 * 600.0 && c.rate <= 600.0 * 1.05, "{}", c.rate);
}

/// A sample in which every probe was lost and the counters, read before,
/// could not be read (a resolver down answers neither): the grants hold
/// at the floor at once, before the outage is sure (starts granted then
/// would fail their lookups), and nothing is measured: one answered
/// sample puts the rate back where it was. A resolver that still answers
/// its counters is not silent: every probe lost there is strain (a deep
/// queue, or an overload its drop counter shows).
#[test]
fn a_silent_sample_holds_the_grants_at_once_and_measures_nothing() {
    let mut c = BudgetController::new(1000.0, MS(250));
    for _ in 0..100 {
        c.on_sample(resolver(c.rate, 600.0));
    }
    let (rate, knee) = (c.rate, c.knee());
    let silent = SILENT;
    assert_eq!(c.on_sample(silent), c.floor, "held at once");
    assert!(!c.in_outage(), "one sample is not yet an outage");
    assert_eq!(c.knee(), knee);
    let back = c.on_sample(resolver(rate, 600.0));
    assert!(
        back >= 0.95 * rate && back <= 1.05 * rate,
        "back to {rate}: {back}"
    );
    // The answered sample steers as any (the knee follows a held rate by
    // a fraction of a percent); a silence measured as strain would have
    // cut it to half.
    let (k0, k1) = (knee.unwrap(), c.knee().unwrap());
    assert!(
        (k1 / k0 - 1.0).abs() < 0.01,
        "a silence is not a capacity measurement: {k0} then {k1}"
    );

    // Every probe lost, and the counter shows the resolver dropping a
    // fifth of what it received: overload, cut to what it served.
    let mut c = BudgetController::new(1000.0, MS(250));
    c.on_sample(resolver(c.rate, 600.0));
    let overload = DnsSample {
        load_qps: Some(1000.0),
        dropped: Some(200),
        interval_s: Some(1.0),
        ..silent
    };
    let r = c.on_sample(overload);
    assert!(r > c.floor && r <= 0.8 * 800.0 + 1e-9, "{r}");
    // A deep queue: every probe waits past the threshold, nothing dropped
    // yet, the counters read: strain, not a silence.
    let mut c = BudgetController::new(1000.0, MS(250));
    c.on_sample(resolver(c.rate, 600.0));
    let queued = DnsSample {
        load_qps: Some(c.rate),
        dropped: Some(0),
        interval_s: Some(1.0),
        ..silent
    };
    let before = c.rate;
    let r = c.on_sample(queued);
    assert!(r > c.floor && r < before, "{r} after {before}");
    // Without counters, silence is held only once it is an outage.
    let mut c = BudgetController::new(1000.0, MS(250));
    c.on_sample(DnsSample {
        dropped: None,
        ..CALM
    });
    let r = c.on_sample(silent);
    assert!(r > c.floor, "{r}");
}

/// A resolver whose queue overflows on bursts: a sliver of drops at any
/// rate. Under 0.2% of what it received is not strain; up to 5% holds
/// the rate under what it served instead of cutting to drain a queue.
#[test]
fn a_burst_overflow_is_tolerated_or_held_not_drained() {
    let burst = |rate: f64, share: f64| DnsSample {
        load_qps: Some(rate),
        dropped: Some((rate * share) as u64),
        ..CALM
    };
    let mut c = BudgetController::new(1000.0, MS(250));
    while c.in_slow_start() {
        c.on_sample(CALM);
    }
    assert_eq!(c.rate, 1000.0);
    assert_eq!(c.strain(&burst(1000.0, 0.001)), None, "1 drop in 1,000");
    assert_eq!(c.on_sample(burst(1000.0, 0.001)), 1000.0);
    assert_eq!(c.strain(&burst(1000.0, 0.03)), Some(Strain::Dropped));
    let held = c.on_sample(burst(1000.0, 0.03));
    assert!(
        (held - 970.0 * (1.0 - GAIN * 0.03)).abs() < 1e-6,
        "stepped down in proportion to the share dropped: {held}"
    );
    // A resolver that drops a third: a standing queue, drained.
    let mut c = BudgetController::new(1000.0, MS(250));
    while c.in_slow_start() {
        c.on_sample(CALM);
    }
    let cut = c.on_sample(burst(1000.0, 0.33));
    assert!((cut - DRAIN * 670.0).abs() < 1.0, "{cut}");
}

/// A knee measured low (the resolver served less while its queue
/// drained under a cut) is left in tens of samples: from the third calm
/// probe, each doubles the next step (3%, 3%, 3%, 6%, 12%, 12%, …).
#[test]
fn a_knee_measured_low_is_left_by_growing_probes() {
    let mut c = BudgetController::new(4000.0, MS(250));
    c.on_sample(CALM);
    // Strain at 1,000 served: the knee is 1,000 though the resolver
    // serves the whole ceiling, 4,000.
    c.on_sample(DnsSample {
        load_qps: Some(1500.0),
        dropped: Some(500),
        ..CALM
    });
    assert_eq!(c.knee(), Some(1000.0));
    let mut samples = 0;
    while c.rate < 0.9 * 4000.0 && samples < 600 {
        c.on_sample(resolver(c.rate, 4000.0));
        samples += 1;
    }
    // With a fixed 3% step it took 10 × ln(3.9)/ln(1.03) ≈ 460 samples.
    assert!(
        samples <= 200,
        "{samples} samples to reach 90% of 4,000 (rate {})",
        c.rate
    );
    // Strain resets the step: the next probes are gentle again.
    c.on_sample(resolver(5000.0, 4000.0));
    assert_eq!(c.probe_up, PROBE_UP);
}

/// A resolver behind a queue of milliseconds: bursts overflow it now
/// and then at any rate, more often the higher the rate (here 2% of a
/// second dropped, in a share of the seconds that grows from 0 at 1,800
/// q/s to all of them at 2,800: 0.5% of the run dropped at 2,050). The
/// held rate is steered by the share dropped: it neither ratchets down
/// with each burst (cut to 92% of what was served, the rate sank to a
/// fraction of the capacity) nor drops more than the tolerance.
#[test]
fn bursts_behind_a_small_queue_steer_the_rate_without_a_ratchet() {
    let mut c = BudgetController::new(4000.0, MS(250));
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut coin = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut sent, mut dropped, mut rates) = (0.0, 0.0, Vec::new());
    for _ in 0..600 {
        let rate = c.rate;
        let p = ((rate - 1800.0) / 1000.0).clamp(0.0, 1.0);
        let d = if coin() < p {
            (0.02 * rate).floor()
        } else {
            0.0
        };
        sent += rate;
        dropped += d;
        rates.push(rate);
        c.on_sample(DnsSample {
            load_qps: Some(rate),
            dropped: Some(d as u64),
            ..CALM
        });
    }
    let share = dropped / sent;
    assert!(share < 0.005, "dropped {:.3}% of the run", 100.0 * share);
    let tail = &rates[100..];
    let mean = tail.iter().sum::<f64>() / tail.len() as f64;
    assert!(
        mean > 0.9 * 2050.0,
        "held at {mean:.0} q/s on average, where 2,050 drops 0.5%"
    );
}
