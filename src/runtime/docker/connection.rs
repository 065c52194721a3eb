//! The connection to each Docker host: which hosts (the playbook's, or
//! `DOCKER_HOST` as the docker CLI reads it), their TLS files checked, the
//! API version negotiated, and the hyper connection pool behind bollard
//! (idle connections kept, each one fenced before it writes a stop).

use super::*;

/// The hosts to talk to: the playbook's, or the one `DOCKER_HOST` names
/// (TLS from `DOCKER_CERT_PATH` when `DOCKER_TLS_VERIFY` is set, as the
/// docker CLI does), or the local socket.
pub fn hosts_of(playbook: &Playbook) -> Vec<HostSpec> {
    if !playbook.hosts.is_empty() {
        return playbook.hosts.clone();
    }
    let url =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
    let tls = match (
        std::env::var_os("DOCKER_TLS_VERIFY"),
        std::env::var_os("DOCKER_CERT_PATH"),
    ) {
        (Some(v), path) if !v.is_empty() && v != "0" => {
            let dir = path.map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker")
            });
            Some(TlsPaths {
                ca: dir.join("ca.pem"),
                cert: dir.join("cert.pem"),
                key: dir.join("key.pem"),
            })
        }
        _ => None,
    };
    vec![HostSpec {
        name: "local".to_string(),
        url,
        tls,
        labels: BTreeMap::new(),
    }]
}

/// Why a Docker host has no client: each names what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HostError {
    /// A TLS file is missing, unreadable, or holds no PEM of its kind.
    #[error("tls.{field} {path}: {reason}")]
    TlsFile {
        /// The key under `tls` (`ca`, `cert` or `key`).
        field: &'static str,
        /// The file's path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `https://` host without the TLS files it needs.
    #[error("host {host:?} uses https:// but has no tls = {{ ca, cert, key }}")]
    HttpsWithoutTls {
        /// The host's name.
        host: String,
    },
    /// bollard's error, with its causes (which certificate, which refusal).
    #[error("{0}")]
    Client(String),
    /// The version handshake got no answer in time.
    #[error("no answer within {secs}s")]
    NoAnswer {
        /// How long it waited, in seconds.
        secs: f64,
    },
    /// The host's name did not resolve through rekindle's resolver.
    #[error("{name}: {reason}")]
    Resolve {
        /// The host name.
        name: String,
        /// What the resolver said.
        reason: String,
    },
}

/// A client for one host. `timeout` bounds the wait for each response's
/// headers (bollard counts it in whole seconds; at least 1). Plain TCP and
/// TLS hosts get a pool that keeps up to `idle` connections open between
/// calls (bollard's own clients open a connection per call); a `unix://`
/// socket keeps bollard's client.
///
/// Every connection asks `fence` before it writes a stop
/// ([`super::fenced`]).
pub fn connect(
    spec: &HostSpec,
    timeout: Duration,
    idle: usize,
    fence: &FenceSlot,
) -> Result<Docker, HostError> {
    let secs = timeout.as_secs().max(1);
    let url = spec.url.as_str();
    let result = if let Some(path) = url.strip_prefix("unix://") {
        Docker::connect_with_unix(path, secs, API_DEFAULT_VERSION)
    } else if let Some(tls) = &spec.tls {
        check_tls_files(tls)?;
        let config = crate::health::mongo::tls_config(
            &tls.ca,
            Some((tls.cert.as_path(), tls.key.as_path())),
        )
        .map_err(|reason| HostError::Client(format!("TLS: {reason}")))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let mut https = hyper_rustls::HttpsConnector::from((http, config));
        https.enforce_https();
        let conn = FencedConnector::new(https, fence.clone());
        pooled(conn, format!("https://{}", authority(url)), secs, idle)
    } else if url.starts_with("https://") {
        return Err(HostError::HttpsWithoutTls {
            host: spec.name.clone(),
        });
    } else {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let conn = FencedConnector::new(http, fence.clone());
        pooled(conn, format!("http://{}", authority(url)), secs, idle)
    };
    result.map_err(|e| HostError::Client(with_causes(&e)))
}

/// `tcp://host:port`, `http://…`, `https://…` → `host:port`.
pub(super) fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.trim_end_matches('/')
}

/// Each pooled connection's read buffer: Docker's answers to rekindle's
/// calls are a few KiB (headers, an inspect); longer ones are read through
/// it in turns.
pub(super) const READ_BUF: usize = 4096;

/// Calls that may be tried again: three attempts, 50–100 ms, then
/// 100–200 ms between them (jittered).
pub(super) const CALL_BACKOFF: Backoff = Backoff {
    attempts: 3,
    first: Duration::from_millis(100),
};

/// How long an idle pooled connection stays open.
pub(super) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A bollard client over a hyper client whose pool keeps at most `idle`
/// connections to its host open between calls.
pub(super) fn pooled<C>(
    connector: C,
    addr: String,
    secs: u64,
    idle: usize,
) -> Result<Docker, bollard::errors::Error>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let client = Arc::new(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(idle)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            // A fixed read buffer: hyper's adaptive one starts at 8 KiB and
            // grows, and a host holds as many connections as it has stops
            // in flight (16,000 at 1,000 hosts).
            .http1_read_buf_exact_size(READ_BUF)
            .build(connector),
    );
    Docker::connect_with_custom_transport(
        move |req: bollard::BollardRequest| {
            let client = Arc::clone(&client);
            async move {
                client
                    .request(req)
                    .await
                    .map_err(bollard::errors::Error::from)
            }
        },
        Some(addr),
        secs,
        API_DEFAULT_VERSION,
    )
}

/// An error with its causes: bollard's own text hides them ("client error
/// (Connect)"), and the cause is what says which certificate was refused.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

/// The TLS files must be there and hold PEM of the right kind: bollard
/// reads them only at the first call, and reports a missing file as a
/// cancelled request.
pub(super) fn check_tls_files(tls: &TlsPaths) -> Result<(), HostError> {
    for (field, path, want) in [
        ("ca", &tls.ca, "CERTIFICATE"),
        ("cert", &tls.cert, "CERTIFICATE"),
        ("key", &tls.key, "PRIVATE KEY"),
    ] {
        let failed = |reason: String| HostError::TlsFile {
            field,
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
        let pem = text
            .lines()
            .any(|l| l.starts_with("-----BEGIN ") && l.contains(want));
        if !pem {
            return Err(failed(format!("no PEM {want} in it")));
        }
    }
    Ok(())
}

/// Connects and agrees on an API version with the engine (older engines
/// reject the newest client version). `timeout` bounds the handshake;
/// `call_timeout` is the client's own ceiling for any later call.
pub async fn connect_negotiated(
    spec: &HostSpec,
    timeout: Duration,
    call_timeout: Duration,
    resolver: Option<&CachedResolver>,
    idle: usize,
    fence: &FenceSlot,
) -> Result<Docker, HostError> {
    let spec = match resolver {
        Some(r) => resolve_host(spec, r).await?,
        None => spec.clone(),
    };
    let docker = connect(&spec, call_timeout.max(timeout), idle, fence)?;
    match tokio::time::timeout(timeout, docker.negotiate_version()).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(HostError::Client(with_causes(&e))),
        Err(_) => Err(HostError::NoAnswer {
            secs: timeout.as_secs_f64(),
        }),
    }
}

/// A plain-TCP host's name resolved through rekindle's resolver (cached,
/// collapsed, stale-tolerant) rather than the system's. TLS hosts keep
/// their name: certificate verification needs it.
pub async fn resolve_host(
    spec: &HostSpec,
    resolver: &CachedResolver,
) -> Result<HostSpec, HostError> {
    let Some(rest) = spec
        .url
        .strip_prefix("tcp://")
        .or_else(|| spec.url.strip_prefix("http://"))
    else {
        return Ok(spec.clone());
    };
    if spec.tls.is_some() {
        return Ok(spec.clone());
    }
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "2375"));
    if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
        return Ok(spec.clone());
    }
    let unresolved = |reason: String| HostError::Resolve {
        name: host.to_string(),
        reason,
    };
    let ips = resolver
        .lookup(host)
        .await
        .map_err(|e| unresolved(e.to_string()))?;
    let ip = ips.first().ok_or_else(|| unresolved("no address".into()))?;
    Ok(HostSpec {
        url: format!("tcp://{ip}:{port}"),
        ..spec.clone()
    })
}

/// The label filters that select a host entry's share of an engine.
pub fn host_label_filters(spec: &HostSpec) -> Vec<String> {
    spec.labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// The playbook's Docker hosts, connected once for a whole run: discovery
/// and the runtime share each host's client (one version handshake per
/// host), and one resolver (one cache) serves host names, TCP probes and
/// the DNS budget's probe.
pub struct DockerHosts {
    /// The hosts, in the playbook's order.
    pub(super) specs: Vec<HostSpec>,
    /// Each host's client, or why it has none (in `specs`' order).
    pub(super) clients: Vec<Result<Docker, HostError>>,
    /// The run's one resolver, if one could be built.
    pub(super) resolver: Option<CachedResolver>,
    /// The run's fence, asked by every host's connections.
    pub(super) fence: FenceSlot,
}

impl DockerHosts {
    /// Connects to every host of the playbook at once, the handshake bounded
    /// by the discovery timeout; a host that does not answer keeps its
    /// reason.
    pub async fn connect(pb: &Playbook) -> DockerHosts {
        let specs = hosts_of(pb);
        let timeouts = CallTimeouts::of(pb);
        let handshake = pb.discovery.timeout;
        let resolver = resolver_for(pb, true);
        let fence = FenceSlot::default();
        let clients = futures_util::future::join_all(specs.iter().map(|s| {
            connect_negotiated(
                s,
                handshake,
                timeouts.restart,
                resolver.as_ref(),
                pb.limits.connections_per_host as usize,
                &fence,
            )
        }))
        .await;
        DockerHosts {
            specs,
            clients,
            resolver,
            fence,
        }
    }

    /// Each host with its client, or why it has none.
    pub fn iter(&self) -> impl Iterator<Item = (&HostSpec, Result<&Docker, &HostError>)> {
        self.specs
            .iter()
            .zip(&self.clients)
            .map(|(s, c)| (s, c.as_ref()))
    }

    /// The run's resolver, if one could be built.
    pub fn resolver(&self) -> Option<&CachedResolver> {
        self.resolver.as_ref()
    }
}

/// rekindle's resolver, built when a host is named by DNS name or `probes`
/// needs one. Without a usable resolver, host names go to the system's and
/// TCP probes by DNS name fail (saying why); probes by container IP work.
fn resolver_for(pb: &Playbook, probes: bool) -> Option<CachedResolver> {
    let named = hosts_of(pb).iter().any(|h| {
        let rest = h
            .url
            .strip_prefix("tcp://")
            .or_else(|| h.url.strip_prefix("http://"));
        rest.is_some_and(|r| {
            r.rsplit_once(':')
                .map(|x| x.0)
                .unwrap_or(r)
                .parse::<IpAddr>()
                .is_err()
        })
    });
    if !named && !probes {
        return None;
    }
    match CachedResolver::new(&pb.resolver) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "no resolver of rekindle's own: host names go to the system's, TCP probes by DNS name fail");
            None
        }
    }
}
