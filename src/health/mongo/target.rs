//! Where a probe connects: a server's address, and the TLS client
//! configuration (CA, client certificate) when the servers require it.

/// Where a probe connects: an address, and TLS when the servers require it.
#[derive(Clone)]
pub struct Target {
    /// The server's address.
    pub addr: std::net::SocketAddr,
    /// TLS settings, when the servers require TLS.
    pub tls: Option<Tls>,
}

/// TLS to one server: the client configuration (CA, client certificate)
/// and the name the server's certificate must carry.
#[derive(Clone)]
pub struct Tls {
    /// The client configuration: the CA, and the client certificate if any.
    pub config: std::sync::Arc<rustls::ClientConfig>,
    /// The name the server's certificate must carry.
    pub name: rustls::pki_types::ServerName<'static>,
}

impl Target {
    /// `addr` without TLS.
    pub fn plain(addr: std::net::SocketAddr) -> Target {
        Target { addr, tls: None }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tls {
            None => write!(f, "{}", self.addr),
            Some(t) => write!(f, "{} (TLS, {})", self.addr, t.name.to_str()),
        }
    }
}

/// Why a TLS client configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsFileError {
    /// A PEM file could not be read or held nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the configuration (the client certificate and key).
    #[error("{0}")]
    Config(String),
}

/// The client side of TLS for the MongoDB gates: trust `ca` (PEM), and
/// present `cert` + `key` (PEM) when given (servers with
/// `net.tls.mode: requireTLS` and `CAFile` ask for one).
pub fn tls_config(
    ca: &std::path::Path,
    client: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, TlsFileError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    let at = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |e: &dyn std::fmt::Display| TlsFileError::File {
            path: path.clone(),
            reason: e.to_string(),
        }
    };
    let bad_ca = at(ca);
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad_ca(&e))? {
        let cert = cert.map_err(|e| bad_ca(&e))?;
        roots.add(cert).map_err(|e| bad_ca(&e))?;
    }
    if roots.is_empty() {
        return Err(bad_ca(&"no certificate in it"));
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsFileError::Config(e.to_string()))?
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| at(cert)(&e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| at(key)(&e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsFileError::Config(format!("client certificate: {e}")))?
        }
    };
    Ok(std::sync::Arc::new(config))
}
