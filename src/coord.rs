//! Coordination on etcd (the `etcd` feature): daemons that share a
//! cluster name campaign for leadership on a lease; the leader replicates
//! its journal to etcd, each record in a transaction fenced by its leader
//! key, so that a deposed leader's write is refused; the next leader reads
//! the records back and resumes as `--resume` does.
//!
//! Keys, under `/rekindle/<cluster>/`:
//! - `leader`: the leader's address (what followers answer mutating calls
//!   with), attached to its lease. The key's create revision is the
//!   leader's fencing token: a key re-created by another daemon has
//!   another one, so a transaction that compares it fails for the old
//!   leader even if it wakes up believing it still leads.
//! - `members/<address>`: each daemon's playbook-set digest, on its own
//!   lease: a daemon whose set differs from a live member's is refused.
//! - `run`: the current run's description (the leader writes it, fenced).
//! - `journal/<seq>`: the run's journal records, in order (zero-padded).
//!
//! The client runs on a runtime of its own (one thread), so that a caller
//! may block on it from anywhere — the engine's journal writes are
//! synchronous — and keep-alives go on while the caller's runtime is busy.
//!
//! Leases (etcd's own semantics, see docs/ha.md): the server deletes a
//! lease's keys TTL seconds after the last keep-alive it received. This
//! daemon counts its lease as *confirmed* only until two thirds of the TTL
//! after it *sent* the last keep-alive that was answered: past that it
//! cannot know it still leads, and a restart must not start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse,
};
use thiserror::Error;

/// Where and how to coordinate.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    /// etcd's client endpoints (`host:port` or URLs).
    pub endpoints: Vec<String>,
    /// The cluster name the daemons share.
    pub cluster: String,
    /// The lease's TTL: how long a silent leader keeps leading.
    pub ttl: Duration,
    /// How long a write may wait for etcd to come back before it fails
    /// (the run pauses meanwhile).
    pub outage_limit: Duration,
}

/// What went wrong with etcd.
#[derive(Debug, Error)]
pub enum CoordError {
    /// No endpoint answered.
    #[error("etcd at {endpoints} does not answer: {reason}")]
    Unreachable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// The client's last error.
        reason: String,
    },
    /// This daemon no longer leads: its write was refused or its lease is
    /// gone.
    #[error("no longer the leader of cluster {cluster}: {reason}")]
    Deposed {
        /// The cluster.
        cluster: String,
        /// Why it knows.
        reason: String,
    },
    /// This daemon does not lead (it never did, or no longer does).
    #[error("this daemon does not lead cluster {cluster}")]
    NotLeading {
        /// The cluster.
        cluster: String,
    },
    /// This daemon may not join the cluster.
    #[error("cluster {cluster} refuses this daemon: {reason}")]
    Refused {
        /// The cluster.
        cluster: String,
        /// Why.
        reason: String,
    },
    /// etcd answered with an error.
    #[error("etcd: {0}")]
    Etcd(String),
    /// The coordination runtime could not start, or stopped.
    #[error("coordination runtime: {0}")]
    Runtime(String),
}

fn etcd(e: etcd_client::Error) -> CoordError {
    CoordError::Etcd(e.to_string())
}

/// A client for one cluster name, on its own runtime.
pub struct Coordinator {
    rt: OwnRuntime,
    client: Client,
    settings: EtcdSettings,
    prefix: String,
}

/// The coordination runtime; dropped without blocking (dropping a
/// runtime may not block inside another one: the daemon's).
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A lease kept alive in the background, and what is known of it.
struct Lease {
    id: i64,
    /// When the last answered keep-alive was sent.
    confirmed: Arc<Mutex<Instant>>,
    /// The lease is gone (etcd said so): final.
    lost: Arc<AtomicBool>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Coordinator {
    /// Connects and checks that etcd answers; an error names the
    /// endpoints.
    pub fn connect(settings: EtcdSettings) -> Result<Coordinator, CoordError> {
        let rt = OwnRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("rekindle-etcd")
                .enable_all()
                .build()
                .map_err(|e| CoordError::Runtime(e.to_string()))?,
        ));
        let endpoints = settings.endpoints.clone();
        // Spawned and waited for, not `block_on`: a caller may be inside
        // another runtime (the daemon's).
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.0.as_ref().expect("just built").spawn(async move {
            let _ = tx.send(connect_checked(&endpoints).await);
        });
        let client = rx
            .recv()
            .map_err(|_| CoordError::Runtime("the coordination runtime stopped".into()))?
            .map_err(|reason| CoordError::Unreachable {
                endpoints: settings.endpoints.join(","),
                reason,
            })?;
        let prefix = format!("/rekindle/{}/", settings.cluster);
        Ok(Coordinator {
            rt,
            client,
            settings,
            prefix,
        })
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.0.as_ref().expect("runtime until drop")
    }

    /// Runs `f` on the coordination runtime and waits for it, from any
    /// thread (also from inside another runtime).
    fn call<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, CoordError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt().spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv()
            .map_err(|_| CoordError::Runtime("the coordination runtime stopped".into()))
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// The cluster's settings.
    pub fn settings(&self) -> &EtcdSettings {
        &self.settings
    }

    /// Joins the cluster as `me` (this daemon's address) with the digest
    /// of its playbook set: refused when a live member has another set.
    /// The membership lasts as long as the returned [`Member`].
    pub fn join(&self, me: &str, digest: &str) -> Result<Member, CoordError> {
        let lease = self.grant()?;
        let mut client = self.client.clone();
        let key = self.key(&format!("members/{me}"));
        let members = self.key("members/");
        let (cluster, digest, me) = (
            self.settings.cluster.clone(),
            digest.to_string(),
            me.to_string(),
        );
        let id = lease.id;
        self.call(async move {
            client
                .put(
                    key.clone(),
                    digest.clone(),
                    Some(PutOptions::new().with_lease(id)),
                )
                .await
                .map_err(etcd)?;
            let all = client
                .get(members.clone(), Some(GetOptions::new().with_prefix()))
                .await
                .map_err(etcd)?;
            for kv in all.kvs() {
                let other = kv.key_str().unwrap_or("").trim_start_matches(&members);
                if other != me && kv.value() != digest.as_bytes() {
                    let _ = client.delete(key.clone(), None).await;
                    return Err(CoordError::Refused {
                        cluster,
                        reason: format!(
                            "member {other} runs another set of playbooks (digest {} here, {} there): every daemon of a cluster must serve the same playbooks",
                            digest,
                            String::from_utf8_lossy(kv.value())
                        ),
                    });
                }
            }
            Ok(())
        })??;
        Ok(Member { _lease: lease })
    }

    /// Grants a lease of the settings' TTL and keeps it alive every third
    /// of it.
    fn grant(&self) -> Result<Lease, CoordError> {
        let mut client = self.client.clone();
        let ttl = self.settings.ttl;
        let id = self.call(async move {
            client
                .lease_grant(ttl.as_secs().max(1) as i64, None)
                .await
                .map(|r| r.id())
                .map_err(etcd)
        })??;
        let confirmed = Arc::new(Mutex::new(Instant::now()));
        let lost = Arc::new(AtomicBool::new(false));
        let keeper = self.rt().spawn(keep_alive(
            self.client.clone(),
            id,
            ttl,
            confirmed.clone(),
            lost.clone(),
        ));
        Ok(Lease {
            id,
            confirmed,
            lost,
            keeper,
        })
    }

    /// Who leads now: the leader's address, or `None`.
    pub fn leader(&self) -> Result<Option<String>, CoordError> {
        let mut client = self.client.clone();
        let key = self.key("leader");
        self.call(async move {
            let r = client.get(key, None).await.map_err(etcd)?;
            Ok(r.kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
        })?
    }

    /// Campaigns as `me` until this daemon leads (or `give_up` is set).
    /// Another leader's key goes when its lease expires; this polls twice
    /// a second, so a takeover comes within half a second of that.
    pub fn campaign(&self, me: &str, give_up: &AtomicBool) -> Result<Leadership, CoordError> {
        let lease = self.grant()?;
        let leader = self.key("leader");
        loop {
            if give_up.load(Ordering::Relaxed) {
                return Err(CoordError::Runtime("campaign abandoned".into()));
            }
            if lease.lost.load(Ordering::Relaxed) {
                return Err(CoordError::Etcd(
                    "the campaign's lease expired (etcd unreachable for longer than the TTL?)"
                        .into(),
                ));
            }
            let mut client = self.client.clone();
            let (key, value, id) = (leader.clone(), me.to_string(), lease.id);
            let won = self.call(async move {
                let r = client
                    .txn(
                        Txn::new()
                            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                            .and_then([TxnOp::put(
                                key,
                                value,
                                Some(PutOptions::new().with_lease(id)),
                            )]),
                    )
                    .await
                    .map_err(etcd)?;
                Ok::<_, CoordError>(
                    r.succeeded()
                        .then(|| r.header().map(|h| h.revision()).unwrap_or(0)),
                )
            })?;
            match won {
                Ok(Some(rev)) => {
                    tracing::info!(cluster = %self.settings.cluster, me, rev, "leading");
                    return Ok(Leadership {
                        lease,
                        rev,
                        key: leader,
                        cluster: self.settings.cluster.clone(),
                    });
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "campaign: etcd did not answer; trying again"),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Writes `value` at `rest` (under the cluster's prefix) only while
    /// `lead` leads.
    pub fn fenced_put(
        &self,
        lead: &Leadership,
        rest: &str,
        value: Vec<u8>,
    ) -> Result<(), CoordError> {
        let key = self.key(rest);
        self.fenced(lead, key, value, false)
    }

    /// Appends journal record number `seq` (its bytes) only while `lead`
    /// leads and the record is not there yet. While etcd does not answer,
    /// or the lease is not confirmed, it waits (the run pauses), up to the
    /// settings' outage limit; a refusal is final ([`CoordError::Deposed`]).
    pub fn append(&self, lead: &Leadership, seq: u64, record: Vec<u8>) -> Result<(), CoordError> {
        let key = self.key(&format!("journal/{seq:020}"));
        self.fenced(lead, key, record, true)
    }

    /// Waits until `lead`'s lease is confirmed (etcd away: up to the
    /// outage limit); an error when it is known to be gone or another
    /// daemon leads.
    pub fn confirm(&self, lead: &Leadership) -> Result<(), CoordError> {
        let deposed = |reason: String| CoordError::Deposed {
            cluster: lead.cluster.clone(),
            reason,
        };
        let started = Instant::now();
        loop {
            if lead.lease.lost.load(Ordering::Relaxed) {
                return Err(deposed("its lease expired".into()));
            }
            if lead.confirmed(self.settings.ttl) {
                return Ok(());
            }
            if started.elapsed() > self.settings.outage_limit {
                return Err(deposed(format!(
                    "its lease could not be confirmed for {:?}",
                    self.settings.outage_limit
                )));
            }
            if let Ok(Some(other)) = self.leader_revision() {
                if other != lead.rev {
                    return Err(deposed(if other == 0 {
                        "its leader key is gone (lease expired)".into()
                    } else {
                        format!("another daemon leads since revision {other}")
                    }));
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn fenced(
        &self,
        lead: &Leadership,
        key: String,
        value: Vec<u8>,
        once: bool,
    ) -> Result<(), CoordError> {
        let deposed = |reason: String| CoordError::Deposed {
            cluster: lead.cluster.clone(),
            reason,
        };
        let started = Instant::now();
        loop {
            // Not known to lead: wait, or learn who does.
            self.confirm(lead)?;
            let mut client = self.client.clone();
            let (leader, rev) = (lead.key.clone(), lead.rev);
            let (k, v) = (key.clone(), value.clone());
            let answer = self.call(async move {
                let mut when = vec![Compare::create_revision(
                    leader.clone(),
                    CompareOp::Equal,
                    rev,
                )];
                if once {
                    when.push(Compare::create_revision(k.clone(), CompareOp::Equal, 0));
                }
                let r = client
                    .txn(
                        Txn::new()
                            .when(when)
                            .and_then([TxnOp::put(k.clone(), v.clone(), None)])
                            .or_else([TxnOp::get(leader, None), TxnOp::get(k, None)]),
                    )
                    .await?;
                if r.succeeded() {
                    return Ok(Ok(()));
                }
                // Refused: by another leader, or (an answer lost and the
                // write retried) by our own earlier write of the same
                // record.
                let mut leader_rev = 0;
                let mut same = false;
                for (i, op) in r.op_responses().into_iter().enumerate() {
                    if let TxnOpResponse::Get(g) = op {
                        if let Some(kv) = g.kvs().first() {
                            if i == 0 {
                                leader_rev = kv.create_revision();
                            } else {
                                same = kv.value() == v.as_slice();
                            }
                        }
                    }
                }
                Ok::<_, etcd_client::Error>(Err((leader_rev, same)))
            })?;
            match answer {
                Ok(Ok(())) => return Ok(()),
                Ok(Err((leader_rev, same))) if leader_rev == lead.rev && same => return Ok(()),
                Ok(Err((leader_rev, _))) if leader_rev != lead.rev => {
                    return Err(deposed(if leader_rev == 0 {
                        "its leader key is gone (lease expired)".into()
                    } else {
                        format!("another daemon leads since revision {leader_rev}")
                    }))
                }
                Ok(Err(_)) => {
                    return Err(deposed(format!(
                        "{key} was written by someone else: a second writer"
                    )))
                }
                Err(e) => {
                    if started.elapsed() > self.settings.outage_limit {
                        return Err(CoordError::Unreachable {
                            endpoints: self.settings.endpoints.join(","),
                            reason: format!("for {:?}: {e}", self.settings.outage_limit),
                        });
                    }
                    tracing::warn!(error = %e, "etcd does not answer: the journal waits");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// The leader key's create revision (0: no leader), if etcd answers
    /// within a second.
    pub fn leader_revision(&self) -> Result<Option<i64>, CoordError> {
        let mut client = self.client.clone();
        let key = self.key("leader");
        self.call(async move {
            match tokio::time::timeout(Duration::from_secs(1), client.get(key, None)).await {
                Ok(Ok(r)) => Some(r.kvs().first().map_or(0, |kv| kv.create_revision())),
                _ => None,
            }
        })
    }

    /// Reads `rest` (under the cluster's prefix).
    pub fn get(&self, rest: &str) -> Result<Option<Vec<u8>>, CoordError> {
        let mut client = self.client.clone();
        let key = self.key(rest);
        self.call(async move {
            let r = client.get(key, None).await.map_err(etcd)?;
            Ok(r.kvs().first().map(|kv| kv.value().to_vec()))
        })?
    }

    /// The journal's records, in order.
    pub fn journal(&self) -> Result<Vec<Vec<u8>>, CoordError> {
        let mut client = self.client.clone();
        let key = self.key("journal/");
        self.call(async move {
            let r = client
                .get(key, Some(GetOptions::new().with_prefix()))
                .await
                .map_err(etcd)?;
            Ok(r.kvs().iter().map(|kv| kv.value().to_vec()).collect())
        })?
    }

    /// Removes the run and its journal (the run ended), fenced.
    pub fn clear_run(&self, lead: &Leadership) -> Result<(), CoordError> {
        let mut client = self.client.clone();
        let (leader, rev) = (lead.key.clone(), lead.rev);
        let (journal, run) = (self.key("journal/"), self.key("run"));
        let ok = self.call(async move {
            client
                .txn(
                    Txn::new()
                        .when([Compare::create_revision(leader, CompareOp::Equal, rev)])
                        .and_then([
                            TxnOp::delete(journal, Some(DeleteOptions::new().with_prefix())),
                            TxnOp::delete(run, None),
                        ]),
                )
                .await
                .map(|r| r.succeeded())
                .map_err(etcd)
        })??;
        if ok {
            Ok(())
        } else {
            Err(CoordError::Deposed {
                cluster: lead.cluster.clone(),
                reason: "clearing the ended run was refused".into(),
            })
        }
    }

    /// Steps down: revokes the leadership's lease (its key goes at once).
    pub fn resign(&self, lead: &Leadership) {
        lead.lease.keeper.abort();
        let mut client = self.client.clone();
        let id = lead.lease.id;
        let _ = self.call(async move { client.lease_revoke(id).await });
    }
}

/// A client to `endpoints` that has had one answer (connecting is lazy).
async fn connect_checked(endpoints: &[String]) -> Result<Client, String> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(3))
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
    let mut client = tokio::time::timeout(
        Duration::from_secs(5),
        Client::connect(endpoints, Some(opts)),
    )
    .await
    .map_err(|_| "no connection within 5 s".to_string())?
    .map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(5), client.status())
        .await
        .map_err(|_| "no answer within 5 s".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(client)
}

/// Keeps lease `id` alive every third of `ttl`; records when each
/// answered keep-alive was sent; marks the lease lost when etcd says it is
/// gone. While etcd does not answer it keeps trying (etcd restores a
/// lease's full TTL when it comes back with it).
async fn keep_alive(
    mut client: Client,
    id: i64,
    ttl: Duration,
    confirmed: Arc<Mutex<Instant>>,
    lost: Arc<AtomicBool>,
) {
    let every = ttl / 3;
    'connect: loop {
        // After a failure: is the lease still there? (etcd answers a lease
        // it no longer has with a TTL of -1.)
        if let Ok(Ok(r)) = tokio::time::timeout(every, client.lease_time_to_live(id, None)).await {
            if r.ttl() <= 0 {
                tracing::warn!(lease = id, "the lease expired");
                lost.store(true, Ordering::Relaxed);
                return;
            }
        }
        let (mut keeper, mut acks) = match client.lease_keep_alive(id).await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "lease keep-alive: no stream");
                tokio::time::sleep(every.min(Duration::from_millis(500))).await;
                continue 'connect;
            }
        };
        loop {
            let sent = Instant::now();
            if keeper.keep_alive().await.is_err() {
                continue 'connect;
            }
            match tokio::time::timeout(every, acks.message()).await {
                Ok(Ok(Some(ack))) if ack.ttl() > 0 => *confirmed.lock().unwrap() = sent,
                Ok(Ok(Some(_))) => {
                    tracing::warn!(lease = id, "the lease expired");
                    lost.store(true, Ordering::Relaxed);
                    return;
                }
                _ => continue 'connect,
            }
            tokio::time::sleep(every.saturating_sub(sent.elapsed())).await;
        }
    }
}

/// This daemon's membership of its cluster; it ends when dropped (its
/// lease is left to expire).
pub struct Member {
    _lease: Lease,
}

/// Leadership of a cluster: the lease, and the fencing token (the create
/// revision of the leader key).
pub struct Leadership {
    lease: Lease,
    rev: i64,
    key: String,
    cluster: String,
}

impl Leadership {
    /// The fencing token.
    pub fn revision(&self) -> i64 {
        self.rev
    }

    /// The lease's id.
    pub fn lease_id(&self) -> i64 {
        self.lease.id
    }

    /// Whether the lease is known to be alive now: an answered keep-alive
    /// sent less than two thirds of the TTL ago, and etcd has not said it
    /// is gone. A restart starts only while this holds.
    pub fn confirmed(&self, ttl: Duration) -> bool {
        !self.lease.lost.load(Ordering::Relaxed)
            && self.lease.confirmed.lock().unwrap().elapsed() < ttl * 2 / 3
    }

    /// Whether etcd said the lease is gone (final).
    pub fn lost(&self) -> bool {
        self.lease.lost.load(Ordering::Relaxed)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// The journal's replica in etcd: each record appended only while this
/// daemon leads (see [`Coordinator::append`]).
pub struct EtcdReplica {
    /// The cluster's client.
    pub coord: Arc<Coordinator>,
    /// This daemon's leadership.
    pub lead: Arc<Leadership>,
}

impl crate::journal::Replica for EtcdReplica {
    fn replicate(
        &mut self,
        seq: u64,
        record: &[u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.coord
            .append(&self.lead, seq, record.to_vec())
            .map_err(|e| Box::new(e) as _)
    }

    fn confirm(&mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.coord.confirm(&self.lead).map_err(|e| Box::new(e) as _)
    }
}
