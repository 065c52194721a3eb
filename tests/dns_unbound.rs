//! rekindle's cached resolver against a real DNS server (unbound on a
//! loopback port, 5,000-record zone). The server's own query counter is
//! the witness for what reached it.

use crate::common;

use common::unbound::{unbound_available, Unbound};
use rekindle::config::ResolverSettings;
use rekindle::dns::{CachedResolver, DnsError};
use std::time::{Duration, Instant};

fn settings(server: &Unbound) -> ResolverSettings {
    ResolverSettings {
        nameservers: vec![server.addr().parse().unwrap()],
        resolv_conf: Default::default(),
        timeout: Duration::from_millis(500),
        attempts: 1,
        cache_size: 10_000,
        min_ttl: Duration::from_millis(100),
        max_ttl: Duration::from_secs(300),
        negative_max_ttl: Duration::from_secs(30),
        serve_stale: Duration::from_secs(60),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_thousand_concurrent_cold_lookups_send_one_query() {
    if !unbound_available("dns_thousand_concurrent_cold_lookups_send_one_query") {
        return;
    }
    let server = Unbound::start("");
    let r = CachedResolver::new(&settings(&server)).unwrap();
    let before = server.queries();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let r = r.clone();
            tokio::spawn(async move { r.lookup("node-4321.fleet.test").await })
        })
        .collect();
    for t in tasks {
        let ips = t.await.unwrap().unwrap();
        assert_eq!(
            ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
            vec!["10.0.16.225"]
        );
    }
    let reached = server.queries() - before;
    let m = r.metrics();
    println!(
        "1,000 concurrent lookups of one cold name: {reached} query reached unbound; metrics {m:?}"
    );
    assert_eq!(reached, 1, "exactly one query must reach the server");
    assert_eq!(m.misses + m.collapsed + m.hits, 1000);
    assert_eq!(m.upstream_queries, 1);
    // Every other record of the zone resolves too (one query each).
    for i in (0..5000).step_by(499) {
        assert!(r.lookup(&format!("node-{i}.fleet.test.")).await.is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_ttl_expiry_refreshes_once_and_nxdomain_is_cached_for_its_negative_ttl() {
    if !unbound_available(
        "dns_ttl_expiry_refreshes_once_and_nxdomain_is_cached_for_its_negative_ttl",
    ) {
        return;
    }
    let server = Unbound::start("");
    let r = CachedResolver::new(&settings(&server)).unwrap();
    let q0 = server.queries();
    // short.fleet.test has TTL 1 s.
    r.lookup("short.fleet.test").await.unwrap();
    r.lookup("short.fleet.test").await.unwrap();
    assert_eq!(
        server.queries() - q0,
        1,
        "a fresh answer is served from the cache"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let again: Vec<_> = (0..50).map(|_| r.lookup("short.fleet.test")).collect();
    for x in futures_util::future::join_all(again).await {
        x.unwrap();
    }
    assert_eq!(
        server.queries() - q0,
        2,
        "TTL expiry triggers exactly one refresh"
    );

    // NXDOMAIN: negative TTL 2 s (the SOA's minimum).
    let q1 = server.queries();
    let e = r.lookup("missing.fleet.test").await.unwrap_err();
    assert!(matches!(e, DnsError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("missing.fleet.test."), "{e}");
    assert!(matches!(
        r.lookup("missing.fleet.test").await,
        Err(DnsError::NotFound { .. })
    ));
    assert_eq!(server.queries() - q1, 1, "NXDOMAIN is cached");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(matches!(
        r.lookup("missing.fleet.test").await,
        Err(DnsError::NotFound { .. })
    ));
    assert_eq!(
        server.queries() - q1,
        2,
        "after its negative TTL, NXDOMAIN is asked again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_server_down_serves_stale_and_fails_fast_for_uncached_names() {
    if !unbound_available("dns_server_down_serves_stale_and_fails_fast_for_uncached_names") {
        return;
    }
    let mut server = Unbound::start("");
    let r = CachedResolver::new(&settings(&server)).unwrap();
    let fresh = r.lookup("short.fleet.test").await.unwrap();
    let long = r.lookup("node-7.fleet.test").await.unwrap();
    // The adaptive budget's probe sees the server, then loses it.
    let probe = rekindle::dns::ResolverProbe::new(r.clone(), "node-9.fleet.test".into(), None);
    use rekindle::dns::budget::DnsProbe;
    assert!(probe.probe().await.is_some());
    server.stop();
    assert_eq!(
        probe.probe().await,
        None,
        "a probe of a stopped server is lost"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await; // short.fleet.test has expired
    let stale = r
        .lookup("short.fleet.test")
        .await
        .expect("an expired answer is served while the upstream is down");
    assert_eq!(stale, fresh);
    assert_eq!(
        r.lookup("node-7.fleet.test").await.unwrap(),
        long,
        "a fresh answer needs no upstream"
    );
    let m = r.metrics();
    assert_eq!(m.stale_served, 1, "{m:?}");
    assert!(m.upstream_errors >= 2, "{m:?}");
    assert!(m.upstream_errors >= 1, "{m:?}");
    let t = Instant::now();
    let e = r.lookup("node-8.fleet.test").await.unwrap_err();
    let took = t.elapsed();
    println!("uncached lookup with the server down: {e} (after {took:?})");
    assert!(matches!(e, DnsError::Upstream { .. }), "{e}");
    assert!(
        e.to_string().contains("node-8.fleet.test."),
        "the error names the name: {e}"
    );
    // Bounded by the playbook's timeout × attempts (0.5 s × 1), not hung.
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn dns_malformed_resolv_conf_is_a_clear_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("resolv.conf");
    std::fs::write(
        &bad,
        "search example.internal\nnameserver 10.0.0.2\nnameserver dns.example.internal\n",
    )
    .unwrap();
    let s = ResolverSettings {
        resolv_conf: bad.clone(),
        ..ResolverSettings::default()
    };
    let e = CachedResolver::new(&s)
        .err()
        .expect("a malformed resolv.conf is refused");
    assert!(
        e.to_string().contains(&format!("{}:3", bad.display())),
        "{e}"
    );
    assert!(e.to_string().contains("dns.example.internal"), "{e}");
    std::fs::write(&bad, "search example.internal\n").unwrap();
    let e = CachedResolver::new(&s)
        .err()
        .expect("no nameserver is refused");
    assert!(e.to_string().contains("names no nameserver"), "{e}");
    std::fs::write(&bad, "nameserver 127.0.0.1\noptions ndots:2\n").unwrap();
    assert!(CachedResolver::new(&s).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_paced_burst_is_never_rate_limited_where_an_unpaced_one_is() {
    if !unbound_available("dns_paced_burst_is_never_rate_limited_where_an_unpaced_one_is") {
        return;
    }
    const LIMIT: u32 = 200; // queries per second per client, above it dropped
    const BURST: usize = 400;
    let server = Unbound::start(&format!(
        "    ip-ratelimit: {LIMIT}\n    ip-ratelimit-factor: 0\n"
    ));
    let limited = || server.stat("total.num.queries_ip_ratelimited");

    // Unpaced: every lookup at once (distinct names: nothing is cached).
    let r = CachedResolver::new(&settings(&server)).unwrap();
    let before = limited();
    let all: Vec<_> = (0..BURST)
        .map(|i| {
            let r = r.clone();
            tokio::spawn(async move { r.lookup(&format!("node-{i}.fleet.test")).await.is_ok() })
        })
        .collect();
    let mut ok_unpaced = 0;
    for t in all {
        ok_unpaced += t.await.unwrap() as usize;
    }
    let dropped_unpaced = limited() - before;
    tokio::time::sleep(Duration::from_secs(3)).await; // let the server's rate window pass

    // Paced through the DNS budget: half the server's limit.
    let r = CachedResolver::new(&settings(&server)).unwrap();
    let pacer =
        rekindle::engine::pacer::Pacer::new(LIMIT as f64 / 2.0, 0.0, Duration::from_secs(1));
    let before = limited();
    let started = Instant::now();
    let mut paced = Vec::new();
    for i in 0..BURST {
        pacer.acquire((0, 0), 1).await.unwrap();
        let r = r.clone();
        paced.push(tokio::spawn(async move {
            r.lookup(&format!("node-{}.fleet.test", 1000 + i))
                .await
                .is_ok()
        }));
    }
    let mut ok_paced = 0;
    for t in paced {
        ok_paced += t.await.unwrap() as usize;
    }
    let dropped_paced = limited() - before;
    println!(
        "burst of {BURST} lookups against unbound (ip-ratelimit {LIMIT}/s): unpaced {dropped_unpaced} rate-limited, {ok_unpaced} answered; \
         paced at {}/s ({:.1}s): {dropped_paced} rate-limited, {ok_paced} answered",
        LIMIT / 2,
        started.elapsed().as_secs_f64()
    );
    assert!(
        dropped_unpaced >= 50,
        "the unpaced burst must overrun the server: {dropped_unpaced} rate-limited"
    );
    // (Unpaced lookups may still end answered: the client retries after its
    // timeout, in the server's next second. What matters is what the server
    // had to refuse.)
    assert_eq!(
        dropped_paced, 0,
        "the paced burst must never be rate-limited"
    );
    assert_eq!(ok_paced, BURST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_probe_reads_the_counter_keeps_it_through_an_outage_drops_garbage() {
    if !unbound_available("dns_probe_reads_the_counter_keeps_it_through_an_outage_drops_garbage") {
        return;
    }
    use rekindle::config::CounterConfig;
    use rekindle::config::CounterSource;
    use rekindle::dns::budget::DnsProbe;
    use rekindle::dns::counter::ResolverCounter;
    let mut server = Unbound::start("");
    let r = CachedResolver::new(&settings(&server)).unwrap();
    let config = |cmd: Vec<String>| CounterConfig {
        source: CounterSource::Command(cmd),
        key: "total.num.queries".into(),
        dropped_key: Some("total.num.queries_ip_ratelimited".into()),
    };
    let counter = ResolverCounter::new(&config(server.stats_command()), Duration::from_secs(5));
    let probe =
        rekindle::dns::ResolverProbe::new(r.clone(), "node-1.fleet.test".into(), Some(counter));
    let first = probe.counters().await.expect("unbound's counters read");
    // Another client loads the server: 300 lookups of distinct names.
    let other = CachedResolver::new(&settings(&server)).unwrap();
    for i in 0..300 {
        other
            .lookup(&format!("node-{}.fleet.test", 2000 + i))
            .await
            .unwrap();
    }
    let then = probe.counters().await.expect("unbound's counters read");
    println!("unbound's counters: {first:?} then {then:?}");
    assert!(
        then.received - first.received >= 300.0,
        "{first:?} {then:?}"
    );
    assert_eq!(then.dropped, Some(0.0), "nothing rate-limited");
    assert!(probe.counter_active());
    assert!(
        probe
            .describe()
            .contains("total.num.queries_ip_ratelimited"),
        "{}",
        probe.describe()
    );

    // The resolver goes down: its counter cannot be read, but it was read
    // before, so it is kept (a resolver down answers neither queries nor
    // its control channel) and read again once the resolver is back, its
    // counters from zero.
    server.stop();
    assert!(probe.counters().await.is_none());
    assert!(
        probe.counter_active(),
        "a counter read before is kept through the resolver's outage"
    );
    server.restart();
    let back = probe
        .counters()
        .await
        .expect("the counter reads again once unbound is back");
    assert!(back.received < then.received, "{back:?} after {then:?}");

    // A counter that prints garbage: one warning naming it, then the probe
    // goes on with its queries alone.
    let garbage = config(vec!["echo".into(), "<html>not metrics</html>".into()]);
    let err = ResolverCounter::new(&garbage, Duration::from_secs(5))
        .read()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("total.num.queries") && err.to_string().contains("<html>"),
        "{err}"
    );
    let probe = rekindle::dns::ResolverProbe::new(
        r,
        "node-1.fleet.test".into(),
        Some(ResolverCounter::new(&garbage, Duration::from_secs(5))),
    );
    assert!(probe.counters().await.is_none());
    assert!(
        !probe.counter_active(),
        "a garbage counter is dropped after the first failure"
    );
    assert!(probe.probe().await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_docker_host_names_resolve_through_rekindles_resolver() {
    if !unbound_available("dns_docker_host_names_resolve_through_rekindles_resolver") {
        return;
    }
    let server = Unbound::start("    local-data: \"dockerhost.fleet.test. 300 IN A 127.0.0.1\"\n");
    let closed = common::closed_port();
    let text = format!(
        r#"name = "host-names"
[groups]
cluster = "db.cluster"
replset = "db.replset"
[[roles]]
name = "node"
selector = {{ "db.role" = "node" }}
startup_lookups = 1
[dns]
capacity_qps = 100
[discovery]
timeout = "2s"
[resolver]
nameservers = ["{}"]
timeout = "500ms"
attempts = 1
[[hosts]]
name = "named"
url = "tcp://dockerhost.fleet.test:{closed}"
[[hosts]]
name = "unknown"
url = "tcp://nx.fleet.test:2375"
"#,
        server.addr()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pb.toml");
    std::fs::write(&path, text).unwrap();
    let pb = rekindle::config::Playbook::parse(&rekindle::source::SourceText::read(&path).unwrap())
        .unwrap();
    let before = server.queries();
    let inv = rekindle::inventory::InventorySource::Docker
        .load(&pb)
        .await
        .unwrap();
    let named = inv.hosts.iter().find(|h| h.name == "named").unwrap();
    let unknown = inv.hosts.iter().find(|h| h.name == "unknown").unwrap();
    println!("named: {:?}\nunknown: {:?}", named.error, unknown.error);
    assert!(!named.reachable && !unknown.reachable);
    // The name resolved (to 127.0.0.1, where nothing listens): a connection error, not a DNS one.
    assert!(
        !named.error.as_deref().unwrap().contains("no such name"),
        "{named:?}"
    );
    assert!(
        unknown.error.as_deref().unwrap().contains("nx.fleet.test."),
        "{unknown:?}"
    );
    assert!(
        unknown.error.as_deref().unwrap().contains("no such name"),
        "{unknown:?}"
    );
    assert_eq!(
        server.queries() - before,
        2,
        "both host names were asked of rekindle's nameserver"
    );
}
