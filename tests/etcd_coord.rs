//! Leadership and the fenced journal on a real etcd (Debian's
//! `etcd-server`, started by each test on loopback ports of its own and
//! stopped by its PID).

#![cfg(feature = "etcd")]

use crate::common;

use common::etcd::{etcd_available, Etcd, Proxy};
use rekindle::coord::{CoordError, Coordinator, EtcdSettings};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn settings(endpoint: String, cluster: &str, ttl_s: u64) -> EtcdSettings {
    EtcdSettings {
        endpoints: vec![endpoint],
        cluster: cluster.into(),
        ttl: Duration::from_secs(ttl_s),
        outage_limit: Duration::from_secs(60),
    }
}

#[test]
fn one_leader_of_two_a_partitioned_leader_is_replaced_and_its_writes_are_refused() {
    if !etcd_available(
        "one_leader_of_two_a_partitioned_leader_is_replaced_and_its_writes_are_refused",
    ) {
        return;
    }
    let etcd = Etcd::start();
    // Daemon A reaches etcd through a proxy the test can cut; B directly.
    let proxy = Proxy::start(etcd.endpoint());
    let a = Coordinator::connect(settings(proxy.endpoint(), "c1", 3)).unwrap();
    let b = Arc::new(Coordinator::connect(settings(etcd.endpoint(), "c1", 3)).unwrap());
    let never = AtomicBool::new(false);
    let lead_a = a.campaign("a:1", &never).unwrap();
    assert_eq!(a.leader().unwrap().as_deref(), Some("a:1"));
    a.append(&lead_a, 1, b"first".to_vec()).unwrap();

    // B campaigns meanwhile and does not win while A's lease lives.
    let (tx, rx) = std::sync::mpsc::channel();
    let b2 = b.clone();
    let campaign = std::thread::spawn(move || {
        let give_up = AtomicBool::new(false);
        let lead = b2.campaign("b:1", &give_up).unwrap();
        tx.send(Instant::now()).unwrap();
        lead
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(4)).is_err(),
        "B won while A led"
    );

    // A is cut off: its lease is not confirmed within 2 s, etcd expires it
    // after 3 s, B leads within a second of that.
    let cut_at = Instant::now();
    proxy.cut();
    let deadline = cut_at + Duration::from_secs(3);
    while lead_a.confirmed(Duration::from_secs(3)) {
        assert!(
            Instant::now() < deadline,
            "A still counts its lease confirmed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let won_at = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("B leads once A's lease expired");
    let took = won_at - cut_at;
    assert!(
        took < Duration::from_secs(5),
        "takeover {took:?} after the cut (TTL 3 s)"
    );
    let lead_b = campaign.join().unwrap();
    assert!(lead_b.revision() > lead_a.revision());
    assert_eq!(b.leader().unwrap().as_deref(), Some("b:1"));
    b.append(&lead_b, 2, b"second".to_vec()).unwrap();

    // A comes back: its first write is refused, whatever it believes.
    proxy.heal();
    let refused = a.append(&lead_a, 3, b"from the old leader".to_vec());
    assert!(
        matches!(refused, Err(CoordError::Deposed { .. })),
        "{refused:?}"
    );
    assert_eq!(
        b.journal().unwrap(),
        vec![b"first".to_vec(), b"second".to_vec()]
    );
    // A record is written once: the same sequence number again is refused
    // unless it is the same record (an answer lost and the write retried).
    b.append(&lead_b, 2, b"second".to_vec()).unwrap();
    assert!(matches!(
        b.append(&lead_b, 2, b"other".to_vec()),
        Err(CoordError::Deposed { .. })
    ));
}

#[test]
fn etcd_stopped_for_20_s_pauses_the_journal_which_goes_on_when_it_is_back() {
    if !etcd_available("etcd_stopped_for_20_s_pauses_the_journal_which_goes_on_when_it_is_back") {
        return;
    }
    let mut etcd = Etcd::start();
    let c = Coordinator::connect(settings(etcd.endpoint(), "c2", 6)).unwrap();
    let lead = c.campaign("a:1", &AtomicBool::new(false)).unwrap();
    c.append(&lead, 1, b"before".to_vec()).unwrap();
    etcd.stop();
    let stopped = Instant::now();
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(20));
        etcd.restart();
        etcd
    });
    // The write waits for etcd (the run pauses), then lands once: etcd
    // restores the lease with its full TTL when it comes back.
    c.append(&lead, 2, b"during".to_vec()).unwrap();
    let waited = stopped.elapsed();
    let etcd = restarter.join().unwrap();
    assert!(waited >= Duration::from_secs(20), "{waited:?}");
    assert!(!lead.lost());
    assert_eq!(
        c.journal().unwrap(),
        vec![b"before".to_vec(), b"during".to_vec()]
    );
    assert_eq!(
        etcd.keys("/rekindle/c2/journal/").len(),
        2,
        "nothing doubled"
    );
}

#[test]
fn an_unreachable_etcd_is_named_and_a_daemon_with_other_playbooks_is_refused() {
    if !etcd_available("an_unreachable_etcd_is_named_and_a_daemon_with_other_playbooks_is_refused")
    {
        return;
    }
    let closed = format!("127.0.0.1:{}", common::closed_port());
    let err = Coordinator::connect(settings(closed.clone(), "c3", 3))
        .err()
        .expect("nothing listens there");
    assert!(
        matches!(err, CoordError::Unreachable { .. }) && err.to_string().contains(&closed),
        "{err}"
    );

    let etcd = Etcd::start();
    let a = Coordinator::connect(settings(etcd.endpoint(), "c3", 3)).unwrap();
    let b = Coordinator::connect(settings(etcd.endpoint(), "c3", 3)).unwrap();
    let _a = a.join("a:1", "digest-1").unwrap();
    let _same = b.join("c:1", "digest-1").unwrap();
    let other = b.join("b:1", "digest-2").err().expect("refused");
    assert!(
        matches!(other, CoordError::Refused { .. })
            && other.to_string().contains("another set of playbooks"),
        "{other}"
    );
    // The refused daemon left no membership behind.
    assert!(!etcd
        .keys("/rekindle/c3/members/")
        .iter()
        .any(|k| k.ends_with("b:1")));
}

/// The engine on the simulated fleet, its journal replicated to etcd: a
/// leader deposed mid-run starts no restart after its first refused write;
/// the next leader restores the journal from etcd and resumes it; every
/// restart the fleet saw has its intent in etcd, none twice.
/// Passes records on; before the 25th, etcd takes the lease away (as
/// when the leader is paused past it).
struct Revoking {
    inner: rekindle::coord::EtcdReplica,
    endpoint: String,
    seen: u64,
}

impl rekindle::journal::Replica for Revoking {
    fn replicate(
        &mut self,
        seq: u64,
        record: &[u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.seen += 1;
        if self.seen == 25 {
            let out = std::process::Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &self.endpoint, "lease", "revoke"])
                .arg(format!("{:x}", self.inner.lead.lease_id()))
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        }
        self.inner.replicate(seq, record)
    }
}

/// The smoke scenario simulated, under config/mongo-sharded.toml with a
/// DNS capacity of 40 q/s and 9 startup lookups: its playbook, inventory,
/// plan and journal fingerprint.
struct SimulatedSmoke {
    sim: Arc<rekindle::sim::SimFleet>,
    pb: Arc<rekindle::config::Playbook>,
    inv: Arc<rekindle::model::Inventory>,
    plan: Arc<rekindle::plan::Plan>,
    fp: String,
}

impl SimulatedSmoke {
    fn new() -> SimulatedSmoke {
        use rekindle::source::SourceText;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let scenario =
            rekindle::scenario::Scenario::load(&root.join("config/scenarios/smoke.toml")).unwrap();
        let text = std::fs::read_to_string(root.join("config/mongo-sharded.toml"))
            .unwrap()
            .replace("capacity_qps = 5000", "capacity_qps = 40")
            .replace("startup_lookups = 81", "startup_lookups = 9");
        let pb =
            Arc::new(rekindle::config::Playbook::parse(&SourceText::new("pb.toml", text)).unwrap());
        let sim = rekindle::sim::SimFleet::new(&scenario);
        let inv = Arc::new(sim.fleet().inventory());
        let plan = Arc::new(rekindle::plan::Plan::build(&inv, &pb).unwrap());
        let fp = rekindle::session::fingerprint(&pb, &inv, &plan);
        SimulatedSmoke {
            sim,
            pb,
            inv,
            plan,
            fp,
        }
    }

    /// The engine on the simulated fleet, on a paused clock, to its end.
    fn run(
        &self,
        journal: rekindle::journal::Journal,
        replay: rekindle::journal::Replay,
    ) -> rekindle::engine::Outcome {
        use rekindle::engine::Engine;
        use rekindle::sim::{SimProbe, SimRuntime};
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(async {
                Engine::new(
                    Arc::new(SimRuntime(self.sim.clone())),
                    SimProbe(self.sim.clone()),
                    self.pb.clone(),
                    self.inv.clone(),
                    self.plan.clone(),
                    journal,
                    replay,
                )
                .run()
                .await
            })
            .unwrap()
    }
}

/// Every restart the fleet saw has its intent in etcd's journal; none
/// twice, and every container was restarted.
fn assert_each_restart_has_one_intent(journal: Vec<Vec<u8>>, sim: &rekindle::sim::SimFleet) {
    use rekindle::journal::Record;
    let mut intents: std::collections::HashMap<String, u32> = Default::default();
    for r in journal {
        if let Record::Intent { id, .. } = serde_json::from_slice(&r).unwrap() {
            *intents.entry(id).or_default() += 1;
        }
    }
    let counts = sim.restart_counts();
    for (i, c) in sim.fleet().all.iter().enumerate() {
        assert_eq!(
            counts[i],
            intents.get(&c.id).copied().unwrap_or(0),
            "{}: restarts vs intents in etcd",
            c.name
        );
        assert!(counts[i] >= 1, "{} never restarted", c.name);
    }
}

#[test]
fn a_deposed_leaders_engine_stops_and_the_next_leader_resumes_from_etcd_each_container_once() {
    if !etcd_available(
        "a_deposed_leaders_engine_stops_and_the_next_leader_resumes_from_etcd_each_container_once",
    ) {
        return;
    }
    use rekindle::coord::EtcdReplica;
    use rekindle::engine::RunState;
    use rekindle::journal::{Journal, Record};

    let smoke = SimulatedSmoke::new();
    let etcd = Etcd::start();
    let a = Arc::new(Coordinator::connect(settings(etcd.endpoint(), "c4", 3)).unwrap());
    let lead_a = Arc::new(a.campaign("a:1", &AtomicBool::new(false)).unwrap());

    let dir = tempfile::tempdir().unwrap();
    let start = Record::Start {
        playbook: smoke.pb.name.clone(),
        fingerprint: smoke.fp.clone(),
        containers: smoke.plan.containers,
        only: None,
    };
    let journal = Journal::create_replicated(
        &dir.path().join("a.journal"),
        start,
        false,
        Some(Box::new(Revoking {
            inner: EtcdReplica {
                coord: a.clone(),
                lead: lead_a.clone(),
            },
            endpoint: etcd.endpoint(),
            seen: 0,
        })),
    )
    .unwrap();
    let first = smoke.run(journal, Default::default());
    assert_eq!(first.state, RunState::Halted, "{:?}", first.reason);
    let why = first.reason.clone().unwrap_or_default();
    assert!(why.contains("no longer the leader"), "{why}");
    let restarted_by_a: u32 = smoke.sim.restart_counts().iter().sum();
    assert!(restarted_by_a > 0);

    // B takes over: restores the journal from etcd, resumes it.
    let b = Arc::new(Coordinator::connect(settings(etcd.endpoint(), "c4", 3)).unwrap());
    let lead_b = Arc::new(b.campaign("b:1", &AtomicBool::new(false)).unwrap());
    let path = dir.path().join("b.journal");
    Journal::restore(&path, &b.journal().unwrap()).unwrap();
    let (mut journal, replay) = Journal::resume(&path, &smoke.pb.name, &smoke.fp, false).unwrap();
    journal.set_replica(Box::new(EtcdReplica {
        coord: b.clone(),
        lead: lead_b.clone(),
    }));
    let second = smoke.run(journal, replay);
    assert_eq!(second.state, RunState::Succeeded, "{:?}", second.reason);

    assert_each_restart_has_one_intent(b.journal().unwrap(), &smoke.sim);
}
