//! The daemon's TLS (rustls): its certificate chain and key (PEM files)
//! loaded and checked at start — a key that group or others may read, a
//! key that is not the certificate's, or a certificate outside its
//! validity is refused, naming the file — optionally a CA whose client
//! certificates are required; reloaded on SIGHUP (new connections get the
//! new files, connections and runs in progress go on; a reload that fails
//! keeps the previous files and says why). [`TlsListener`] hands axum
//! connections whose handshake is done: handshakes run beside one another,
//! each bounded, so one slow client holds no one else.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// A handshake that takes longer than this is dropped.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The files of the daemon's TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain (PEM), the server's first.
    pub cert: PathBuf,
    /// Its private key (PEM), readable by the daemon's user only.
    pub key: PathBuf,
    /// A CA (PEM) whose client certificates every caller must present.
    pub client_ca: Option<PathBuf>,
}

/// The server's TLS settings, read from `files` and checked (at `now`,
/// Unix seconds). Every error names the file.
pub fn load(files: &TlsFiles, now: i64) -> Result<ServerConfig, String> {
    fn at(p: &Path) -> impl Fn(&dyn std::fmt::Display) -> String + '_ {
        move |e| format!("{}: {e}", p.display())
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| at(&files.cert)(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| at(&files.cert)(&e))?;
    let Some(leaf) = chain.first() else {
        return Err(format!("{}: no certificate in it", files.cert.display()));
    };
    check_validity(leaf, now).map_err(|e| at(&files.cert)(&e))?;
    private_only(&files.key)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| at(&files.key)(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| at(ca)(&e))? {
                roots
                    .add(c.map_err(|e| at(ca)(&e))?)
                    .map_err(|e| at(ca)(&e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| at(ca)(&e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "{} and {}: {e} (is the key the certificate's?)",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A key file that group or others may read is refused, naming it.
pub fn private_only(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: group or others may read it (mode {:o}): chmod 600 it",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

/// The certificate is within its validity at `now` (Unix seconds).
fn check_validity(cert: &CertificateDer<'_>, now: i64) -> Result<(), String> {
    let (not_before, not_after) =
        validity(cert).ok_or("cannot read its validity (not an X.509 certificate?)")?;
    if now > not_after {
        return Err(format!(
            "the certificate expired {} days ago (notAfter is {} s after the epoch)",
            (now - not_after) / 86_400,
            not_after
        ));
    }
    if now < not_before {
        return Err(format!(
            "the certificate is not valid yet (notBefore is {} s after the epoch)",
            not_before
        ));
    }
    Ok(())
}

/// One DER element: (tag, content, the rest after it).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// (notBefore, notAfter) of an X.509 certificate, Unix seconds.
fn validity(cert: &[u8]) -> Option<(i64, i64)> {
    let (0x30, cert, _) = der(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = der(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, after) = der(rest)?;
    if tag == 0xa0 {
        rest = after; // the version
    }
    for _ in 0..3 {
        rest = der(rest)?.2; // serial, signature algorithm, issuer
    }
    let (0x30, validity, _) = der(rest)? else {
        return None;
    };
    let (t1, nb, rest) = der(validity)?;
    let (t2, na, _) = der(rest)?;
    Some((time(t1, nb)?, time(t2, na)?))
}

/// An ASN.1 UTCTime (tag 0x17) or GeneralizedTime (0x18) in Z form.
fn time(tag: u8, v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = s.get(..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let n = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, h, m, sec) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// Seconds since the epoch now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Where a call comes from: the peer's address (TCP, with or without TLS),
/// for the audit log.
#[derive(Debug, Clone)]
pub struct Remote(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for Remote
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        Remote(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for Remote
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        Remote(*stream.remote_addr())
    }
}

/// The daemon's settings now (replaced on SIGHUP).
pub type Current = Arc<RwLock<Arc<ServerConfig>>>;

/// TCP connections after their TLS handshake, for axum.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp`, each handshake with the settings current then.
    pub fn new(tcp: TcpListener, current: Current) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (io, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let config = current.read().unwrap().clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(io)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The accept loop never ends on its own.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn1_times_are_read_as_unix_seconds() {
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(time(0x17, b"261207044500Z"), Some(1_796_618_700));
        assert_eq!(time(0x18, b"20261207044500Z"), Some(1_796_618_700));
        assert_eq!(time(0x18, b"99991231235959Z"), Some(253_402_300_799));
        assert_eq!(time(0x17, b"2612070445Z"), None, "seconds are required");
        assert_eq!(time(0x17, b"261207044500+0100"), None);
        assert_eq!(der(&[0x30, 0x85, 1, 2, 3, 4, 5]), None);
        assert_eq!(validity(&[0x30, 0x00]), None);
    }
}
