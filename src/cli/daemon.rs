//! `rekindle daemon`: loads the config file's playbooks and scenarios,
//! takes the state-dir lock, picks up the runs a previous daemon left, and
//! serves the API on TCP or a unix socket until SIGTERM or Ctrl-C.

use super::Usage;
use crate::api;
use crate::config::Playbook;
use crate::daemon::{self, Daemon, DaemonFile};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// The daemon's config file (TOML; see config/daemon.toml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Address to listen on (default: the file's `listen`, else 127.0.0.1:7878; port 0 = any free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where journals and the audit log live (default: the file's `state_dir`, else the user state dir).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Serve mutating calls without a token (for tests; refused unless the
    /// address is loopback).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Serve plain HTTP on an address that is not loopback (tokens then
    /// cross the network in clear): refused without it unless the config
    /// gives tls_cert and tls_key.
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// HA mode: the name of the cluster of daemons that take over from one
    /// another through etcd (needs --etcd, and a build with the `etcd`
    /// feature; see docs/ha.md). Without it the daemon runs alone.
    #[arg(long, value_name = "NAME", requires = "etcd")]
    pub cluster: Option<String>,
    /// HA mode: etcd's client endpoints, comma-separated (`host:port`).
    #[arg(
        long,
        value_name = "ENDPOINTS",
        value_delimiter = ',',
        requires = "cluster"
    )]
    pub etcd: Vec<String>,
    /// HA mode: the leader's lease; a leader that goes silent is replaced
    /// this long after its last keep-alive.
    #[arg(long, value_name = "DURATION", default_value = "6s", value_parser = crate::duration::parse_duration)]
    pub lease_ttl: Duration,
    /// HA mode: the address followers give for this daemon (default: the
    /// one it listens on).
    #[arg(long, value_name = "URL")]
    pub advertise: Option<String>,
}

/// The tokens the config names: its `[[tokens]]`, each secret from its
/// variable or file, and the single operator's token of `token_file` or
/// `token_env` (`$REKINDLE_TOKEN` by default; that default only when there
/// is no `[[tokens]]`). A token file that group or others may read, an
/// empty secret, or one named twice is refused, naming it.
fn tokens(
    config: &std::path::Path,
    base: &std::path::Path,
    file: &DaemonFile,
    env: &str,
) -> anyhow::Result<Vec<daemon::Token>> {
    use daemon::{Role, Token};
    let read = |f: &PathBuf, what: &str| -> anyhow::Result<String> {
        let path = base.join(f);
        api::tls::private_only(&path).map_err(|e| Usage(format!("{what} {e}")))?;
        let secret = std::fs::read_to_string(&path)
            .map_err(|e| Usage(format!("{what} {}: {e}", path.display())))?
            .trim()
            .to_string();
        if secret.is_empty() {
            return Err(Usage(format!("{what} {}: empty", path.display())).into());
        }
        Ok(secret)
    };
    let mut out: Vec<Token> = Vec::new();
    for (i, t) in file.tokens.iter().enumerate() {
        let at = format!("{}: tokens[{i}] ({:?})", config.display(), t.name);
        let secret = match (&t.env, &t.file) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(Usage(format!(
                    "{at}: give its secret in `env` or in `file`, one of them"
                ))
                .into())
            }
            (Some(var), None) => std::env::var(var)
                .ok()
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| Usage(format!("{at}: ${var} is not set")))?,
            (None, Some(f)) => read(f, &format!("{at}: file"))?,
        };
        if t.name.trim().is_empty() {
            return Err(Usage(format!("{at}: an empty name")).into());
        }
        if out.iter().any(|o| o.name == t.name || o.secret == secret) {
            return Err(Usage(format!("{at}: its name or its secret is another token's")).into());
        }
        out.push(Token {
            name: t.name.clone(),
            role: t.role,
            secret,
        });
    }
    let single = match &file.token_file {
        Some(f) => Some(read(f, "token_file")?),
        None if file.tokens.is_empty() || file.token_env.is_some() => {
            std::env::var(env).ok().filter(|t| !t.is_empty())
        }
        None => None,
    };
    if let Some(secret) = single {
        out.push(Token {
            name: file.token_name.clone().unwrap_or_else(|| "token".into()),
            role: Role::Operator,
            secret,
        });
    }
    Ok(out)
}

/// Whether `listen` (host:port) is a loopback address (`localhost`, 127/8, ::1).
fn is_loopback(listen: &str) -> bool {
    let host = match listen.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => listen,
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub async fn daemon(args: DaemonArgs) -> anyhow::Result<()> {
    let config = &args.config;
    let Loaded {
        file,
        base,
        playbooks,
        digest,
    } = load(config)?;
    let ha = ha_setup(&args, digest)?;
    let scenarios = scenarios(config, &base, &file)?;
    let env = file
        .token_env
        .clone()
        .unwrap_or_else(|| "REKINDLE_TOKEN".into());
    let tokens = tokens(config, &base, &file, &env)?;
    let listen = listen(&args, &file, &base, tokens.is_empty(), &env)?;
    let notifier = daemon::notify::Notifier::start(&file.webhooks)
        .map_err(|e| Usage(format!("{}: {e}", config.display())))?;
    let (state_dir, lock) = take_state_dir(&args, &file)?;
    let d = Arc::new(Daemon::new(daemon::DaemonSetup {
        playbooks,
        scenarios,
        tokens,
        metrics_public: file.metrics_public,
        state_dir,
        notifier,
        ha,
    })?);
    let app = api::router(d.clone());
    let shutdown = shutdown_on_signal(d.clone(), Duration::from_secs(120))?;
    match listen {
        Listen::Unix(path) => serve_unix(&path, app, shutdown, &d, &args.advertise).await?,
        Listen::Tcp { addr, tls } => {
            serve_tcp(&addr, tls, app, shutdown, &d, &args.advertise).await?
        }
    }
    drop(lock);
    Ok(())
}

/// The config file read, its playbooks loaded.
struct Loaded {
    file: DaemonFile,
    /// The config file's directory: its paths are relative to it.
    base: PathBuf,
    playbooks: BTreeMap<String, Playbook>,
    /// The playbook set's digest (names and texts): the daemons of one HA
    /// cluster must serve the same set.
    digest: String,
}

fn load(config: &std::path::Path) -> anyhow::Result<Loaded> {
    let text =
        std::fs::read_to_string(config).map_err(|e| Usage(format!("{}: {e}", config.display())))?;
    let file: DaemonFile =
        toml::from_str(&text).map_err(|e| Usage(format!("{}: {e}", config.display())))?;
    let base = config.parent().map(PathBuf::from).unwrap_or_default();
    let mut playbooks = BTreeMap::new();
    let mut digest = 0u32;
    for (name, path) in &file.playbooks {
        let pb = Playbook::load(&base.join(path))
            .map_err(|e| Usage(format!("{}: playbooks.{name}: {e}", config.display())))?;
        digest = crc32c::crc32c_append(digest, name.as_bytes());
        digest = crc32c::crc32c_append(digest, &std::fs::read(base.join(path))?);
        playbooks.insert(name.clone(), pb);
    }
    Ok(Loaded {
        file,
        base,
        playbooks,
        digest: format!("{digest:08x}"),
    })
}

/// The config's scenarios, each of which must exist.
fn scenarios(
    config: &std::path::Path,
    base: &std::path::Path,
    file: &DaemonFile,
) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let scenarios: BTreeMap<String, PathBuf> = file
        .scenarios
        .iter()
        .map(|(n, p)| (n.clone(), base.join(p)))
        .collect();
    for (n, p) in &scenarios {
        if !p.exists() {
            return Err(Usage(format!(
                "{}: scenario {n:?}: {} does not exist",
                config.display(),
                p.display()
            ))
            .into());
        }
    }
    Ok(scenarios)
}

/// Where the daemon listens, and how.
enum Listen {
    /// A unix socket (0600): only its owner reaches it.
    Unix(PathBuf),
    /// TCP, with TLS when the config gives its files.
    Tcp {
        addr: String,
        tls: Option<(api::tls::TlsFiles, api::tls::Current)>,
    },
}

/// The address from the flag or the config, refused where tokens would be
/// missing or cross the network in clear: without a token only on a unix
/// socket, or on loopback with --insecure-no-auth; plain HTTP only on
/// loopback or a unix socket, unless --insecure-plaintext. The TLS files,
/// when given, must go together and load.
fn listen(
    args: &DaemonArgs,
    file: &DaemonFile,
    base: &std::path::Path,
    no_token: bool,
    env: &str,
) -> anyhow::Result<Listen> {
    let config = args.config.display();
    let listen = args
        .listen
        .clone()
        .or(file.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:7878".into());
    let unix = listen.strip_prefix("unix:").map(PathBuf::from);
    let no_token = no_token && unix.is_none();
    if no_token && !args.insecure_no_auth {
        return Err(Usage(format!("no token: set ${env} or token_file in {config}, listen on a unix: socket, or pass --insecure-no-auth")).into());
    }
    if no_token && !is_loopback(&listen) {
        return Err(Usage(format!(
            "--insecure-no-auth serves every call without a token: only on a loopback address or a unix: socket, not {listen}; set ${env} or token_file in {config}"
        ))
        .into());
    }
    let tls = match (&file.tls_cert, &file.tls_key, &file.tls_client_ca) {
        (Some(cert), Some(key), ca) => Some(api::tls::TlsFiles {
            cert: base.join(cert),
            key: base.join(key),
            client_ca: ca.as_ref().map(|c| base.join(c)),
        }),
        (None, None, None) => None,
        _ => {
            return Err(Usage(format!(
                "{config}: tls_cert and tls_key go together (and tls_client_ca needs them)"
            ))
            .into())
        }
    };
    if tls.is_none() && unix.is_none() && !is_loopback(&listen) && !args.insecure_plaintext {
        return Err(Usage(format!(
            "listen on {listen}: an address other machines reach needs TLS (tls_cert and tls_key in {config}), or --insecure-plaintext: tokens would cross the network in clear"
        ))
        .into());
    }
    let tls = match tls {
        Some(files) => {
            let loaded = api::tls::load(&files, api::tls::unix_now())
                .map_err(|e| Usage(format!("{config}: TLS: {e}")))?;
            Some((files, Arc::new(std::sync::RwLock::new(Arc::new(loaded)))))
        }
        None => None,
    };
    Ok(match unix {
        Some(path) => Listen::Unix(path),
        None => Listen::Tcp { addr: listen, tls },
    })
}

/// The state dir (the flag's, the config's, or the user's), 0700, with its
/// lock held: one daemon per state dir (its runs' journals and records).
/// From here on what the daemon writes is its own: files 0600.
fn take_state_dir(
    args: &DaemonArgs,
    file: &DaemonFile,
) -> anyhow::Result<(PathBuf, std::fs::File)> {
    let state_dir = args
        .state_dir
        .clone()
        .or(file.state_dir.clone())
        .unwrap_or_else(|| crate::recovery::default_state_dir().join("daemon"));
    // SAFETY: umask only sets the process's file-mode mask; it cannot fail.
    unsafe { libc::umask(0o077) };
    std::fs::create_dir_all(&state_dir)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700))
        })
        .map_err(|e| Usage(format!("state dir {}: {e}", state_dir.display())))?;
    let lock_path = state_dir.join("daemon.lock");
    let lock = std::fs::File::create(&lock_path)?;
    if lock.try_lock().is_err() {
        return Err(Usage(format!(
            "another daemon holds {}: one daemon per state dir",
            lock_path.display()
        ))
        .into());
    }
    Ok((state_dir, lock))
}

/// SIGTERM or SIGINT: active real runs stop starting restarts (they resume
/// when a daemon starts again) within `grace`. The handlers are installed
/// now, before runs resume and before "listening on": a SIGTERM right
/// after the start must stop the daemon gracefully, not kill it (a handler
/// installed when the future is first polled comes late).
fn shutdown_on_signal(
    d: Arc<Daemon>,
    grace: Duration,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| anyhow::anyhow!("installing the SIGTERM handler: {e}"))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| anyhow::anyhow!("installing the SIGINT handler: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("shutting down: active real runs stop starting restarts and resume when a daemon starts again");
        d.shut_down(grace).await;
    })
}

/// Serves on a unix socket that gets its final mode before anyone can
/// reach it: bound inside a fresh private (0700) directory next to its
/// place, made 0600 there, then renamed into place. A socket a live server
/// answers on is refused; a stale one is replaced.
async fn serve_unix(
    path: &std::path::Path,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    d: &Arc<Daemon>,
    advertise: &Option<String>,
) -> anyhow::Result<()> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Usage(format!(
                "{}: a server already listens there",
                path.display()
            ))
            .into());
        }
        std::fs::remove_file(path)?;
    }
    let listen_err = |e: std::io::Error| Usage(format!("listen on {}: {e}", path.display()));
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let private = tempfile::Builder::new()
        .prefix(".rekindle-socket-")
        .tempdir_in(&parent)
        .map_err(listen_err)?;
    let staged = private.path().join("s");
    let listener = tokio::net::UnixListener::bind(&staged).map_err(listen_err)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
        .map_err(listen_err)?;
    std::fs::rename(&staged, path).map_err(listen_err)?;
    drop(private);
    announce(d, &format!("unix:{}", path.display()), advertise)?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// Serves on TCP, over TLS (reloaded on SIGHUP) when it is configured.
async fn serve_tcp(
    addr: &str,
    tls: Option<(api::tls::TlsFiles, api::tls::Current)>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    d: &Arc<Daemon>,
    advertise: &Option<String>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Usage(format!("listen on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    let app = app.into_make_service_with_connect_info::<api::tls::Remote>();
    match tls {
        Some((files, current)) => {
            reload_on_sighup(files, current.clone())?;
            let listener = api::tls::TlsListener::new(listener, current)?;
            announce(d, &format!("https://{local}"), advertise)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        None => {
            announce(d, &format!("http://{local}"), advertise)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
    }
    Ok(())
}

/// SIGHUP reads the TLS files again: new connections get them, those in
/// progress (and every run) go on; files that do not load leave the
/// previous ones in place, and the log says why.
fn reload_on_sighup(files: api::tls::TlsFiles, current: api::tls::Current) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())
        .map_err(|e| anyhow::anyhow!("installing the SIGHUP handler: {e}"))?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match api::tls::load(&files, api::tls::unix_now()) {
                Ok(config) => {
                    *current.write().unwrap() = Arc::new(config);
                    tracing::info!(cert = %files.cert.display(), "SIGHUP: TLS certificate and key reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: the TLS files did not load; the previous ones stay")
                }
            }
        }
    });
    Ok(())
}

/// HA mode from the flags: etcd connected (an error names the endpoints).
#[cfg(feature = "etcd")]
fn ha_setup(args: &DaemonArgs, digest: String) -> anyhow::Result<Option<Arc<daemon::Ha>>> {
    let Some(cluster) = &args.cluster else {
        return Ok(None);
    };
    if cluster.is_empty() || cluster.contains('/') {
        return Err(Usage(format!("--cluster {cluster:?}: a name without '/'")).into());
    }
    let settings = crate::coord::EtcdSettings {
        endpoints: args.etcd.clone(),
        cluster: cluster.clone(),
        ttl: args.lease_ttl.max(Duration::from_secs(2)),
        outage_limit: Duration::from_secs(300),
    };
    let ha =
        daemon::ha::Ha::connect(settings, digest).map_err(|e| Usage(format!("--etcd: {e}")))?;
    Ok(Some(Arc::new(ha)))
}

/// Without the `etcd` feature there is no HA mode: asking for it is an
/// error that says how to get it.
#[cfg(not(feature = "etcd"))]
fn ha_setup(args: &DaemonArgs, _digest: String) -> anyhow::Result<Option<Arc<daemon::Ha>>> {
    if args.cluster.is_some() {
        return Err(Usage(
            "--cluster: this rekindle is built without the `etcd` feature (cargo build --features etcd; docs/ha.md)".into(),
        )
        .into());
    }
    Ok(None)
}

/// Picks up what a previous daemon left, joins its cluster (HA mode), then
/// says where it listens (the first line of stdout: scripts and tests wait
/// for it).
fn announce(d: &Arc<Daemon>, url: &str, advertise: &Option<String>) -> anyhow::Result<()> {
    let (interrupted, resumed) = d.recover()?;
    d.start_ha(advertise.as_deref().unwrap_or(url))
        .map_err(|e| Usage(format!("--cluster: {e}")))?;
    tracing::info!(%url, state_dir = %d.state_dir.display(), interrupted, resumed, "daemon listening");
    println!("listening on {url}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_addresses_only() {
        for ok in [
            "127.0.0.1:7878",
            "127.1.2.3:0",
            "[::1]:7878",
            "localhost:7878",
        ] {
            assert!(super::is_loopback(ok), "{ok}");
        }
        for no in [
            "0.0.0.0:7878",
            "10.0.0.1:7878",
            "[::]:7878",
            "example.com:7878",
        ] {
            assert!(!super::is_loopback(no), "{no}");
        }
    }
}
