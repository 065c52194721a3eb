//! A crashed engine resumed from its journal: nothing restarted twice, a
//! dead run's start waited out, another playbook's journal refused.

use super::*;

#[test]
fn crashed_engine_resumes_without_restarting_anything_twice() {
    crash_and_resume(|t| t);
}

/// Issue 23: the same in a world where starts take seconds and wait behind
/// the stops in the host's call slots, and a stop shows only when its
/// process exits: a crashed run's calls are still in flight when the next
/// one looks (a stop that will land after a new start, a start that will
/// land after a new stop). Without waiting them out, the resumed run
/// restarts containers twice, or leaves one stopped.
#[test]
fn crashed_engine_resumes_exactly_once_while_the_dead_runs_calls_still_land() {
    crash_and_resume(|t| {
        t.replace("start = [0.2, 0.35]", "start = [1.0, 3.0]")
            .replace("starts_share_slots = false", "starts_share_slots = true")
            .replace(
                "api_concurrency_per_host = 4",
                "api_concurrency_per_host = 2",
            )
    });
    // Starts that queue among themselves for seconds (one at a time, 2 s
    // each): a dead run's start lands while the next run waits for its
    // own call slot to restart a container it saw stopped.
    crash_and_resume(|t| {
        t.replace("start = [0.2, 0.35]", "start = [2.0, 2.0]")
            .replace("start_concurrency = 2", "start_concurrency = 1")
    });
}

/// Crashes a run on the smoke world (edited) at twelve points: see
/// [`crash_and_resume_on`].
fn crash_and_resume(world: fn(String) -> String) {
    crash_and_resume_on(world, |t| t, (0..12u64).map(|k| 300 + k * 700));
}

/// Issue 23: a resumed run looks at a router whose dead run's start is
/// still in flight (a start takes 2 s here) and sees it exited. That look
/// is stale by the time the resumed run's restart of it is admitted (40
/// lookups a router against a 32 q/s budget: about one router admitted
/// every 1.25 s): the dead start has landed, and a restart then stops the
/// process it just started. The resumed run waits out what the dead run
/// may still have in flight before it concludes that a container is
/// stopped. (On the settle that concluded "stopped" at the first look,
/// the crash at 10 s restarted a router twice.)
#[test]
fn a_resumed_run_waits_out_a_dead_runs_start_before_it_restarts_what_it_saw_stopped() {
    crash_and_resume_on(
        |t| edited(&t, "start = [0.2, 0.35]", "start = [2.0, 2.0]"),
        |t| edited(&t, "startup_lookups = 9", "startup_lookups = 40"),
        (0..12u64).map(|k| 4000 + k * 1000),
    );
}

/// `text` with `from` replaced by `to`; `from` must be there.
fn edited(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in the file any more");
    text.replace(from, to)
}

/// Crashes a run on the smoke world (`world` edits the scenario, `pb` the
/// playbook) at each point (ms), every third with a torn journal tail, and
/// resumes it at once: each container is started exactly once and all are
/// healthy at the end.
fn crash_and_resume_on(
    world: fn(String) -> String,
    pb: fn(String) -> String,
    points: impl Iterator<Item = u64>,
) {
    for (k, ms) in points.enumerate() {
        let k = k as u64;
        paused().block_on(async {
            let scenario = smoke(world);
            let s = setup(&scenario, playbook(40.0, pb));
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j");
            let crash_at = Duration::from_millis(ms);
            let first = engine(&s, new_journal(&s, &path), Replay::default());
            let crashed = tokio::time::timeout(crash_at, first.run()).await.is_err();
            assert!(crashed, "crash point {k} came after the end");
            // A killed process's journal lock dies with it; in here, the
            // crashed engine's cancelled tasks must be dropped first.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            if k.is_multiple_of(3) {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                f.write_all(&[200, 0, 0, 0, 9, 9, 9, 9, b'{', b'"'])
                    .unwrap();
            }
            let (journal, replay) = Journal::resume(
                &path,
                &s.pb.name,
                &fingerprint(&s.pb, &s.inv, &s.plan),
                false,
            )
            .unwrap();
            assert_eq!(replay.torn.is_some(), k.is_multiple_of(3));
            let (out, _) = run_collect(engine(&s, journal, replay)).await;
            assert_eq!(
                out.state,
                RunState::Succeeded,
                "crash point {k}: {:?}",
                out.reason
            );
            let counts = s.sim.restart_counts();
            assert!(
                counts.iter().all(|&n| n == 1),
                "crash point {k} ({crash_at:?}): restart counts {counts:?}"
            );
            assert!(s.sim.all_healthy());
        });
    }
}

#[test]
fn a_journal_of_another_playbook_is_refused_before_anything_restarts() {
    let s = paused().block_on(async { setup(&smoke(|t| t), playbook(40.0, |t| t)) });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    Journal::create(
        &path,
        Record::Start {
            playbook: "other".into(),
            fingerprint: "0".into(),
            containers: 1,
            only: None,
        },
        false,
    )
    .unwrap();
    let err = Journal::resume(
        &path,
        &s.pb.name,
        &fingerprint(&s.pb, &s.inv, &s.plan),
        false,
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("belongs to playbook \"other\""),
        "{err}"
    );
    assert_eq!(s.sim.restart_counts().iter().sum::<u32>(), 0);
}
