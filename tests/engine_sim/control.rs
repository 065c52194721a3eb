//! Steering a run in the simulator: pause holds restarts, resume finishes,
//! retune slows the pace, abort stops new restarts (also one granted but
//! not yet sent).

use super::*;

#[test]
fn pause_holds_restarts_resume_finishes_and_retune_slows_the_pace() {
    paused().block_on(async {
        let s = setup(&smoke(|t| t), playbook(40.0, |t| t));
        let dir = tempfile::tempdir().unwrap();
        let e = engine(
            &s,
            new_journal(&s, &dir.path().join("j")),
            Replay::default(),
        );
        let h = e.handle();
        let mut rx = h.subscribe();
        let run = tokio::spawn(e.run());
        // Pause right after the first restart is issued.
        loop {
            if let Event::Restarting { .. } = rx.recv().await.unwrap() {
                break;
            }
        }
        h.pause().unwrap();
        let before = s.sim.restart_counts().iter().sum::<u32>();
        tokio::time::sleep(Duration::from_secs(120)).await;
        let issued_during_pause = h.status().restarts;
        assert_eq!(h.status().state, RunState::Paused);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            h.status().restarts,
            issued_during_pause,
            "restarts issued while paused"
        );
        assert!(s.sim.restart_counts().iter().sum::<u32>() <= before + issued_during_pause as u32);
        // Retune to 2 lookups/s: the router waves (9 lookups each) now crawl.
        h.retune(Some(2.0), None).unwrap();
        h.resume().unwrap();
        let t0 = tokio::time::Instant::now();
        let out = run.await.unwrap().unwrap();
        assert_eq!(out.state, RunState::Succeeded);
        let took = t0.elapsed().as_secs_f64();
        // At least the router lookups (4 × 9) at 2/s after the burst.
        assert!(took > 10.0, "retuned run finished in {took}s");
        assert_eq!(h.status().pace.unwrap().dns_budget_qps, 2.0);
    });
}

/// The simulated fleet, with an inspect that takes `delay`: the window
/// between a restart's grant and its call to the host, stretched.
struct SlowInspect {
    sim: SimRuntime,
    delay: Duration,
}

impl rekindle::runtime::ContainerRuntime for SlowInspect {
    async fn inspect(
        &self,
        c: &rekindle::model::Container,
    ) -> Result<rekindle::runtime::ContainerStatus, rekindle::runtime::RuntimeError> {
        tokio::time::sleep(self.delay).await;
        self.sim.inspect(c).await
    }
    async fn stop(
        &self,
        c: &rekindle::model::Container,
    ) -> Result<(), rekindle::runtime::RuntimeError> {
        self.sim.stop(c).await
    }
    async fn start(
        &self,
        c: &rekindle::model::Container,
        before: &str,
    ) -> Result<(), rekindle::runtime::RuntimeError> {
        self.sim.start(c, before).await
    }
    async fn exec(
        &self,
        c: &rekindle::model::Container,
        cmd: &[String],
    ) -> Result<i64, rekindle::runtime::RuntimeError> {
        self.sim.exec(c, cmd).await
    }
    async fn health(
        &self,
        c: &rekindle::model::Container,
    ) -> Result<rekindle::model::Health, rekindle::runtime::RuntimeError> {
        self.sim.health(c).await
    }
}

#[test]
fn a_restart_granted_but_not_yet_sent_waits_out_a_pause_and_is_dropped_by_an_abort() {
    // Pause 0.5 s in, while the first grants are still inspecting (2 s):
    // nothing reaches the fleet until resume; then each container once.
    // Abort at the same point: nothing reaches the fleet, nothing failed.
    for abort in [false, true] {
        paused().block_on(async {
            let s = setup(&smoke(|t| t), playbook(40.0, |t| t));
            let dir = tempfile::tempdir().unwrap();
            let rt = SlowInspect {
                sim: SimRuntime(s.sim.clone()),
                delay: Duration::from_secs(2),
            };
            let e = Engine::new(
                Arc::new(rt),
                SimProbe(s.sim.clone()),
                s.pb.clone(),
                s.inv.clone(),
                s.plan.clone(),
                new_journal(&s, &dir.path().join("j")),
                Replay::default(),
            );
            let h = e.handle();
            let run = tokio::spawn(e.run());
            tokio::time::sleep(Duration::from_millis(500)).await;
            // Admitted into the pacer's pipeline, still inspecting: the
            // stop has not been sent.
            let granted = h.status().pace.unwrap().in_pipeline;
            assert!(
                granted > 0,
                "nothing admitted yet: the test would prove nothing"
            );
            if abort {
                h.abort();
                // Final: a pause, a resume or a retune cannot reopen it.
                assert_eq!(h.pause(), Err(RunClosed));
                assert_eq!(h.resume(), Err(RunClosed));
                assert_eq!(h.retune(Some(1000.0), Some(1000.0)), Err(RunClosed));
                assert!(h.is_closed());
                let out = run.await.unwrap().unwrap();
                assert_eq!(out.state, RunState::Aborted);
                assert_eq!(
                    (out.restarts, out.failed.len()),
                    (0, 0),
                    "granted restarts were sent after the abort: {out:?}"
                );
                assert_eq!(s.sim.restart_counts().iter().sum::<u32>(), 0);
                return;
            }
            h.pause().unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
            assert_eq!(
                h.status().restarts,
                0,
                "{granted} granted restarts were sent while paused"
            );
            assert_eq!(s.sim.restart_counts().iter().sum::<u32>(), 0);
            h.resume().unwrap();
            let out = run.await.unwrap().unwrap();
            assert_eq!(out.state, RunState::Succeeded);
            assert!(
                s.sim.restart_counts().iter().all(|&n| n == 1),
                "{:?}",
                s.sim.restart_counts()
            );
        });
    }
}

#[test]
fn abort_stops_new_restarts_and_leaves_nothing_restarting() {
    paused().block_on(async {
        let s = setup(&smoke(|t| t), playbook(40.0, |t| t));
        let dir = tempfile::tempdir().unwrap();
        let e = engine(
            &s,
            new_journal(&s, &dir.path().join("j")),
            Replay::default(),
        );
        let h = e.handle();
        let run = tokio::spawn(e.run());
        tokio::time::sleep(Duration::from_millis(2500)).await;
        h.abort();
        let out = run.await.unwrap().unwrap();
        assert_eq!(out.state, RunState::Aborted);
        let counts = s.sim.restart_counts();
        assert!(counts.contains(&0), "abort came too late to test anything");
        for i in 0..counts.len() {
            assert!(
                !matches!(s.sim.phase(i), rekindle::sim::Phase::Restarting),
                "container {i} left restarting"
            );
        }
    });
}
