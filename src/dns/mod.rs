//! rekindle's own name resolution: a cache in front of hickory-resolver,
//! for every name rekindle looks up (health probes, host names). Answers
//! are kept for their TTL (clamped), "no such name" for its negative TTL
//! (capped), at most `cache_size` names (least recently used evicted);
//! concurrent lookups of one name share one upstream query; when the
//! upstream fails, an expired answer is served for a bounded time. Only A
//! records of fully qualified names are asked for: one query per lookup.
//! It never retries on its own beyond the playbook's attempts, and never
//! serves an answer older than its TTL plus `serve_stale`.

pub mod budget;
pub mod counter;

use crate::config::ResolverSettings;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::TokioResolver;
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a lookup gave no address.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    /// The name does not exist, or has no A record.
    #[error("{name}: no such name (NXDOMAIN or no A record)")]
    NotFound {
        /// The name looked up.
        name: String,
    },
    /// The upstream failed and no answer was cached, even stale.
    #[error("{name}: lookup failed and nothing cached: {reason}")]
    Upstream {
        /// The name looked up.
        name: String,
        /// What the upstream said.
        reason: String,
    },
    /// The resolver cannot be built (nameservers, resolv.conf).
    #[error("resolver configuration: {0}")]
    Config(String),
}

/// Counters since the resolver was built.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DnsMetrics {
    /// Lookups answered from the cache, fresh.
    pub hits: u64,
    /// Lookups that had to start an upstream query.
    pub misses: u64,
    /// Lookups that joined a query already in flight.
    pub collapsed: u64,
    /// Expired answers served because the upstream failed.
    pub stale_served: u64,
    /// Queries sent upstream.
    pub upstream_queries: u64,
    /// Upstream queries that failed ("no such name" is an answer, not a failure).
    pub upstream_errors: u64,
    /// Mean and worst upstream latency (ms).
    pub upstream_latency_mean_ms: f64,
    /// Worst upstream latency (ms).
    pub upstream_latency_max_ms: f64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    collapsed: AtomicU64,
    stale_served: AtomicU64,
    upstream_queries: AtomicU64,
    upstream_errors: AtomicU64,
    latency_us_sum: AtomicU64,
    latency_us_max: AtomicU64,
}

/// What one upstream query gave.
#[derive(Debug, Clone)]
enum Fetched {
    Found(Arc<[IpAddr]>, Duration),
    Missing(Duration),
    Failed(String),
}

#[derive(Debug, Clone)]
enum Answer {
    Found(Arc<[IpAddr]>),
    Missing,
}

struct Entry {
    answer: Answer,
    expires: Instant,
    used: u64,
}

/// A bounded least-recently-used map of names to answers.
struct Cache {
    map: HashMap<String, Entry>,
    cap: usize,
    tick: u64,
}

impl Cache {
    fn get(&mut self, name: &str) -> Option<&Entry> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.map.get_mut(name)?;
        e.used = tick;
        Some(e)
    }

    fn insert(&mut self, name: String, answer: Answer, expires: Instant) {
        self.tick += 1;
        if self.map.len() >= self.cap && !self.map.contains_key(&name) {
            // Evict the least recently used tenth at once: a scan per insert
            // would make a full cache quadratic.
            let mut used: Vec<u64> = self.map.values().map(|e| e.used).collect();
            let k = (self.cap / 10).max(1).min(used.len() - 1);
            let (_, cut, _) = used.select_nth_unstable(k);
            let cut = *cut;
            self.map.retain(|_, e| e.used > cut);
        }
        self.map.insert(
            name,
            Entry {
                answer,
                expires,
                used: self.tick,
            },
        );
    }
}

struct Inner {
    upstream: TokioResolver,
    settings: ResolverSettings,
    cache: Mutex<Cache>,
    inflight: Mutex<HashMap<String, Shared<BoxFuture<'static, Fetched>>>>,
    counters: Counters,
}

/// The cached resolver. Cheap to clone.
#[derive(Clone)]
pub struct CachedResolver(Arc<Inner>);

/// `name` with a trailing dot: search domains never apply.
pub fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

impl CachedResolver {
    /// Builds on the playbook's nameservers, or `/etc/resolv.conf`'s.
    pub fn new(settings: &ResolverSettings) -> Result<CachedResolver, DnsError> {
        let config = if settings.nameservers.is_empty() {
            read_resolv_conf(&settings.resolv_conf)?
        } else {
            let servers = settings
                .nameservers
                .iter()
                .map(|a| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = a.port();
                    NameServerConfig::new(a.ip(), true, vec![udp])
                })
                .collect();
            ResolverConfig::from_name_servers(servers)
        };
        Self::with_config(config, settings)
    }

    fn with_config(
        config: ResolverConfig,
        settings: &ResolverSettings,
    ) -> Result<CachedResolver, DnsError> {
        let mut opts = ResolverOpts::default();
        opts.timeout = settings.timeout;
        opts.attempts = settings.attempts as usize;
        opts.ip_strategy = LookupIpStrategy::Ipv4Only;
        // Our cache is the cache (stale answers, metrics, LRU): hickory's
        // would hide upstream queries and never serve stale.
        opts.cache_size = 0;
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        opts.ndots = 0;
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        *builder.options_mut() = opts;
        let upstream = builder
            .build()
            .map_err(|e| DnsError::Config(e.to_string()))?;
        Ok(CachedResolver(Arc::new(Inner {
            upstream,
            settings: settings.clone(),
            cache: Mutex::new(Cache {
                map: HashMap::new(),
                cap: settings.cache_size.max(1),
                tick: 0,
            }),
            inflight: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        })))
    }

    /// The IPv4 addresses of `name` (made fully qualified).
    pub async fn lookup(&self, name: &str) -> Result<Arc<[IpAddr]>, DnsError> {
        let name = fqdn(name);
        let now = Instant::now();
        let stale = {
            let mut cache = self.0.cache.lock().unwrap();
            match cache.get(&name) {
                Some(e) if e.expires > now => {
                    self.0.counters.hits.fetch_add(1, Relaxed);
                    return answer(&name, &e.answer);
                }
                Some(e) => Some((e.answer.clone(), e.expires)),
                None => None,
            }
        };
        let fetch = {
            let mut inflight = self.0.inflight.lock().unwrap();
            match inflight.get(&name) {
                Some(f) => {
                    self.0.counters.collapsed.fetch_add(1, Relaxed);
                    f.clone()
                }
                None => {
                    // A fetch files its answer before it leaves this table:
                    // look again, or a caller that missed the cache just
                    // before a fetch finished would send a second query.
                    if let Some(e) = self
                        .0
                        .cache
                        .lock()
                        .unwrap()
                        .get(&name)
                        .filter(|e| e.expires > Instant::now())
                    {
                        self.0.counters.hits.fetch_add(1, Relaxed);
                        return answer(&name, &e.answer);
                    }
                    self.0.counters.misses.fetch_add(1, Relaxed);
                    let f = fetch(self.0.clone(), name.clone()).boxed().shared();
                    inflight.insert(name.clone(), f.clone());
                    f
                }
            }
        };
        match fetch.await {
            Fetched::Found(ips, _) => Ok(ips),
            Fetched::Missing(_) => Err(DnsError::NotFound { name }),
            Fetched::Failed(reason) => match stale {
                Some((a, expires)) if Instant::now() < expires + self.0.settings.serve_stale => {
                    self.0.counters.stale_served.fetch_add(1, Relaxed);
                    tracing::debug!(name = %name, reason = %reason, "upstream failed: serving a stale answer");
                    answer(&name, &a)
                }
                _ => Err(DnsError::Upstream { name, reason }),
            },
        }
    }

    /// One upstream query for `name`, past the cache: how fast the
    /// resolver answers now, or `None` when it did not (the adaptive
    /// budget's probe).
    pub async fn probe_upstream(&self, name: &str) -> Option<Duration> {
        let (result, latency) = upstream(&self.0, &fqdn(name)).await;
        let answered = !matches!(result, Err(ref e) if !is_no_records(e));
        answered.then_some(latency)
    }

    /// Seeds the cache with a known answer (names rekindle already knows,
    /// e.g. from an inventory), fresh for `ttl`.
    pub fn prime(&self, name: &str, ips: &[IpAddr], ttl: Duration) {
        self.0.cache.lock().unwrap().insert(
            fqdn(name),
            Answer::Found(ips.to_vec().into()),
            Instant::now() + ttl,
        );
    }

    /// The counters now.
    pub fn metrics(&self) -> DnsMetrics {
        let c = &self.0.counters;
        let q = c.upstream_queries.load(Relaxed);
        DnsMetrics {
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            collapsed: c.collapsed.load(Relaxed),
            stale_served: c.stale_served.load(Relaxed),
            upstream_queries: q,
            upstream_errors: c.upstream_errors.load(Relaxed),
            upstream_latency_mean_ms: if q == 0 {
                0.0
            } else {
                c.latency_us_sum.load(Relaxed) as f64 / q as f64 / 1000.0
            },
            upstream_latency_max_ms: c.latency_us_max.load(Relaxed) as f64 / 1000.0,
        }
    }

    /// Names held (fresh or stale).
    pub fn cached_names(&self) -> usize {
        self.0.cache.lock().unwrap().map.len()
    }
}

/// A real resolver as the adaptive budget's probe: upstream queries for
/// `name`, and the resolver's own counters when configured. A counter that
/// cannot be read or parsed before it was ever read is logged once, naming
/// it, and dropped: the probe goes on with its queries alone. One that was
/// read before and fails now is kept and read again each sample (a
/// resolver that is down or restarting answers neither its queries nor its
/// control channel; the counter is the strongest signal once it is back),
/// warned about once per run of failures.
pub struct ResolverProbe {
    /// The resolver the probe queries.
    pub resolver: CachedResolver,
    /// The name it looks up.
    pub name: String,
    counter: std::sync::Mutex<Option<Arc<counter::ResolverCounter>>>,
    /// The counter was read at least once.
    counter_read: std::sync::atomic::AtomicBool,
    /// The last reading failed (warned about).
    counter_failing: std::sync::atomic::AtomicBool,
}

impl ResolverProbe {
    /// A probe of `name` through `resolver`, with the resolver's own counters when given.
    pub fn new(
        resolver: CachedResolver,
        name: String,
        counter: Option<counter::ResolverCounter>,
    ) -> Self {
        ResolverProbe {
            resolver,
            name,
            counter: std::sync::Mutex::new(counter.map(Arc::new)),
            counter_read: false.into(),
            counter_failing: false.into(),
        }
    }

    /// Whether the counter is still read.
    pub fn counter_active(&self) -> bool {
        self.counter.lock().unwrap().is_some()
    }
}

impl budget::DnsProbe for ResolverProbe {
    fn probe(&self) -> BoxFuture<'_, Option<Duration>> {
        Box::pin(self.resolver.probe_upstream(&self.name))
    }

    fn counters(&self) -> BoxFuture<'_, Option<budget::CounterReading>> {
        Box::pin(async move {
            let c = self.counter.lock().unwrap().clone()?;
            match c.read().await {
                Ok(r) => {
                    self.counter_read.store(true, Relaxed);
                    if self.counter_failing.swap(false, Relaxed) {
                        tracing::info!(counter = %c.name(), "the resolver's counter reads again");
                    }
                    Some(r)
                }
                Err(e) if self.counter_read.load(Relaxed) => {
                    if !self.counter_failing.swap(true, Relaxed) {
                        tracing::warn!(error = %e, "the resolver's counter could not be read: adapting on probe queries until it reads again");
                    }
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the resolver's counter is unusable: adapting on probe queries alone");
                    *self.counter.lock().unwrap() = None;
                    None
                }
            }
        })
    }

    fn describe(&self) -> String {
        let mut s = format!("probe queries for {}", self.name);
        if let Some(c) = self.counter.lock().unwrap().as_ref() {
            s += &format!(
                ", the resolver's counters from {} ({}{})",
                c.name(),
                c.key,
                c.dropped_key
                    .as_ref()
                    .map(|k| format!(", dropped: {k}"))
                    .unwrap_or_default()
            );
        }
        s
    }
}

/// Reads a resolv.conf strictly: a `nameserver` line that is not an IP
/// address is an error naming the file and line (hickory would only warn
/// and carry on without it), and so is a file with no nameserver.
pub fn read_resolv_conf(path: &std::path::Path) -> Result<ResolverConfig, DnsError> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| DnsError::Config(format!("{shown}: {e}")))?;
    let mut servers = 0;
    for (i, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            // An IPv6 address may carry a zone (fe80::1%eth0).
            if addr
                .split('%')
                .next()
                .unwrap_or("")
                .parse::<IpAddr>()
                .is_err()
            {
                return Err(DnsError::Config(format!(
                    "{shown}:{}: `nameserver` needs an IP address, found {addr:?}",
                    i + 1
                )));
            }
            servers += 1;
        }
    }
    if servers == 0 {
        return Err(DnsError::Config(format!(
            "{shown} names no nameserver: add one, or set [resolver] nameservers in the playbook"
        )));
    }
    let (config, _) = hickory_resolver::system_conf::parse_resolv_conf(text.as_bytes())
        .map_err(|e| DnsError::Config(format!("{shown}: {e}")))?;
    Ok(config)
}

fn answer(name: &str, a: &Answer) -> Result<Arc<[IpAddr]>, DnsError> {
    match a {
        Answer::Found(ips) => Ok(ips.clone()),
        Answer::Missing => Err(DnsError::NotFound {
            name: name.to_string(),
        }),
    }
}

fn is_no_records(e: &NetError) -> bool {
    matches!(e, NetError::Dns(HickoryDnsError::NoRecordsFound(_)))
}

/// One query to the upstream, counted in the metrics (a "no such name"
/// is an answer, not an upstream error).
async fn upstream(
    inner: &Inner,
    name: &str,
) -> (
    Result<hickory_resolver::lookup_ip::LookupIp, NetError>,
    Duration,
) {
    let started = Instant::now();
    inner.counters.upstream_queries.fetch_add(1, Relaxed);
    let result = inner.upstream.lookup_ip(name).await;
    let took = started.elapsed();
    let us = took.as_micros() as u64;
    inner.counters.latency_us_sum.fetch_add(us, Relaxed);
    inner.counters.latency_us_max.fetch_max(us, Relaxed);
    if matches!(result, Err(ref e) if !is_no_records(e)) {
        inner.counters.upstream_errors.fetch_add(1, Relaxed);
    }
    (result, took)
}

/// One upstream query; files its answer and leaves the in-flight table.
async fn fetch(inner: Arc<Inner>, name: String) -> Fetched {
    let s = &inner.settings;
    let (result, _) = upstream(&inner, &name).await;
    let fetched = match result {
        Ok(l) => {
            let ips: Arc<[IpAddr]> = l.iter().collect::<Vec<_>>().into();
            let ttl = l
                .valid_until()
                .saturating_duration_since(Instant::now())
                .clamp(s.min_ttl, s.max_ttl);
            if ips.is_empty() {
                Fetched::Missing(s.min_ttl)
            } else {
                Fetched::Found(ips, ttl)
            }
        }
        Err(NetError::Dns(HickoryDnsError::NoRecordsFound(nr))) => {
            let ttl =
                Duration::from_secs(nr.negative_ttl.unwrap_or(0) as u64).min(s.negative_max_ttl);
            Fetched::Missing(ttl)
        }
        Err(e) => Fetched::Failed(e.to_string()),
    };
    let now = Instant::now();
    match &fetched {
        Fetched::Found(ips, ttl) => {
            inner
                .cache
                .lock()
                .unwrap()
                .insert(name.clone(), Answer::Found(ips.clone()), now + *ttl)
        }
        Fetched::Missing(ttl) if !ttl.is_zero() => {
            inner
                .cache
                .lock()
                .unwrap()
                .insert(name.clone(), Answer::Missing, now + *ttl)
        }
        _ => {}
    }
    inner.inflight.lock().unwrap().remove(&name);
    fetched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdn_adds_one_trailing_dot() {
        assert_eq!(fqdn("a.b"), "a.b.");
        assert_eq!(fqdn("a.b."), "a.b.");
    }

    #[test]
    fn cache_evicts_least_recently_used() {
        let mut c = Cache {
            map: HashMap::new(),
            cap: 10,
            tick: 0,
        };
        let far = Instant::now() + Duration::from_secs(60);
        for i in 0..10 {
            c.insert(format!("n{i}."), Answer::Missing, far);
        }
        // Touch n0: it is now the most recent.
        assert!(c.get("n0.").is_some());
        c.insert("n10.".into(), Answer::Missing, far);
        assert!(c.map.len() <= 10);
        assert!(c.map.contains_key("n0."), "recently used entry evicted");
        assert!(!c.map.contains_key("n1."), "least recently used entry kept");
        assert!(c.map.contains_key("n10."));
    }
}
