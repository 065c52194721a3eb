//! The MongoDB gates over TLS, against a real TLS server (rustls, with
//! certificates the openssl CLI made): a CA to trust, a client certificate
//! when the server demands one, and refusals that say why — a server
//! certificate from another CA, a name it does not carry, a missing client
//! certificate. The server behind TLS answers `hello` as a secondary.

use crate::common;

use common::tls::{Ca, Leaf};
use rekindle::health::mongo::{hello, tls_config, Target, Tls};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TLS server on loopback answering every OP_MSG with a secondary's
/// hello; with `client_ca`, it demands a client certificate from it.
async fn serve(server: &Leaf, client_ca: Option<&Ca>) -> std::net::SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&server.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&server.key).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let config = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&ca.cert).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    }
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut header = [0u8; 16];
                if s.read_exact(&mut header).await.is_err() {
                    return;
                }
                let len = i32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
                let mut rest = vec![0u8; len - 16];
                if s.read_exact(&mut rest).await.is_err() {
                    return;
                }
                let request = i32::from_le_bytes(header[4..8].try_into().unwrap());
                let mut reply = rekindle::health::mongo::command_request(
                    7,
                    &bson::doc! { "setName": "rs0", "isWritablePrimary": false, "secondary": true, "ok": 1.0 },
                );
                reply[8..12].copy_from_slice(&request.to_le_bytes());
                let _ = s.write_all(&reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn target(addr: std::net::SocketAddr, config: Arc<rustls::ClientConfig>, name: &str) -> Target {
    Target {
        addr,
        tls: Some(Tls {
            config,
            name: rustls::pki_types::ServerName::try_from(name.to_string()).unwrap(),
        }),
    }
}

#[test]
fn mongo_gates_speak_tls_with_a_ca_and_a_client_certificate_and_say_why_when_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "mongo");
    let other = Ca::new(dir.path(), "other");
    let server = ca.server("mongod");
    let client = ca.client("rekindle");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = Duration::from_secs(5);
        let path = std::path::Path::new;
        let trusting = tls_config(path(&ca.cert), None).unwrap();
        let with_cert = tls_config(
            path(&ca.cert),
            Some((path(&client.cert), path(&client.key))),
        )
        .unwrap();

        // TLS with the CA: the hello comes through.
        let open = serve(&server, None).await;
        let h = hello(&target(open, trusting.clone(), "localhost"), t)
            .await
            .unwrap();
        assert!(h.secondary && h.set_name.as_deref() == Some("rs0"), "{h:?}");
        // By address too (the certificate carries 127.0.0.1).
        assert!(hello(&target(open, trusting.clone(), "127.0.0.1"), t)
            .await
            .is_ok());
        // A name the certificate does not carry, a CA that did not sign it,
        // plain TCP to a TLS port: refused, each saying so.
        let e = hello(&target(open, trusting.clone(), "db.example"), t)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("TLS: ") && e.contains("certificate"), "{e}");
        let stranger = tls_config(path(&other.cert), None).unwrap();
        let e = hello(&target(open, stranger, "localhost"), t)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("TLS: ") && e.contains("certificate"), "{e}");
        assert!(hello(&Target::plain(open), t).await.is_err());

        // A server that demands a client certificate.
        let strict = serve(&server, Some(&ca)).await;
        assert!(hello(&target(strict, with_cert, "localhost"), t)
            .await
            .is_ok());
        assert!(hello(&target(strict, trusting, "localhost"), t)
            .await
            .is_err());
    });

    // Bad files: errors naming them.
    let e = tls_config(std::path::Path::new("/nonexistent/ca.pem"), None).unwrap_err();
    assert!(
        matches!(&e, rekindle::health::mongo::TlsFileError::File { path, .. } if path == "/nonexistent/ca.pem"),
        "{e}"
    );
}
