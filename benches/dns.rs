//! The cached resolver: the hit path (names already cached, one core,
//! rotating over 10,000 names), and cold names looked up by 100 callers at
//! once (collapsed into one query) against a minimal in-process UDP DNS
//! responder on loopback.
//!
//!     cargo bench --bench dns

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rekindle::config::ResolverSettings;
use rekindle::dns::CachedResolver;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

fn hit_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = ResolverSettings {
        nameservers: vec!["127.0.0.1:9".parse().unwrap()],
        ..ResolverSettings::default()
    };
    let r = rt.block_on(async { CachedResolver::new(&settings).unwrap() });
    let names: Vec<String> = (0..10_000)
        .map(|i| format!("node-{i}.fleet.test."))
        .collect();
    for (i, n) in names.iter().enumerate() {
        r.prime(
            n,
            &[IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32))],
            Duration::from_secs(3600),
        );
    }
    let mut g = c.benchmark_group("dns_cache");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("hit_fqdn", |b| {
        b.iter(|| {
            i = (i + 1) % names.len();
            rt.block_on(r.lookup(&names[i])).unwrap()
        })
    });
    let short: Vec<String> = names
        .iter()
        .map(|n| n.trim_end_matches('.').to_string())
        .collect();
    g.bench_function("hit_not_fully_qualified", |b| {
        b.iter(|| {
            i = (i + 1) % short.len();
            rt.block_on(r.lookup(&short[i])).unwrap()
        })
    });
    g.finish();
    assert_eq!(
        r.metrics().upstream_queries,
        0,
        "the hit path never reaches upstream"
    );
}

/// Answers every A query with 10.0.0.1, TTL 60 (header, question echoed,
/// one answer by name pointer; EDNS records dropped).
async fn responder(
    sock: tokio::net::UdpSocket,
    queries: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let mut buf = [0u8; 512];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            return;
        };
        if n < 12 {
            continue;
        }
        queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut end = 12;
        while end < n && buf[end] != 0 {
            end += buf[end] as usize + 1;
        }
        end += 5; // root label + type + class
        if end > n {
            continue;
        }
        let mut out = Vec::with_capacity(end + 16);
        out.extend_from_slice(&buf[..2]);
        out.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        out.extend_from_slice(&buf[12..end]);
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
        let _ = sock.send_to(&out, from).await;
    }
}

fn collapsed_cold(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let queries = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (r, addr) = rt.block_on(async {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(responder(sock, queries.clone()));
        let settings = ResolverSettings {
            nameservers: vec![addr],
            ..ResolverSettings::default()
        };
        (CachedResolver::new(&settings).unwrap(), addr)
    });
    let mut g = c.benchmark_group("dns_cache");
    g.throughput(Throughput::Elements(100));
    let mut n = 0u64;
    g.bench_function("cold_name_100_callers", |b| {
        b.iter(|| {
            n += 1;
            let name = format!("cold-{n}.bench.test.");
            rt.block_on(async {
                let all = (0..100).map(|_| r.lookup(&name));
                for x in futures_util::future::join_all(all).await {
                    x.unwrap();
                }
            })
        })
    });
    g.finish();
    let sent = queries.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        sent,
        r.metrics().upstream_queries,
        "one query per cold name ({addr})"
    );
    println!(
        "cold names: {} upstream queries for {} lookups",
        sent,
        r.metrics().misses + r.metrics().collapsed
    );
}

criterion_group!(benches, hit_path, collapsed_cold);
criterion_main!(benches);
