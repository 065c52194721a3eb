//! Certificates made with the openssl CLI for TLS tests, and a TLS front
//! for the local Docker Engine (Python's ssl module) that demands client
//! certificates, as a `dockerd --tlsverify` does.

use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority in a directory of its own.
pub struct Ca {
    dir: PathBuf,
    pub cert: String,
    key: String,
}

/// A certificate and its key, signed by a [`Ca`].
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
        let (cert, key) = (p("ca.pem"), p("ca.key"));
        let subject = format!("/CN=rekindle test CA {name}");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "2",
            "-subj",
            &subject,
        ]);
        Ca { dir, cert, key }
    }

    /// A server certificate for `localhost` (and 127.0.0.1).
    pub fn server(&self, name: &str) -> Leaf {
        self.issue(
            name,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
    }

    /// A client certificate (what a Docker client presents to a TLS engine).
    pub fn client(&self, name: &str) -> Leaf {
        self.issue(name, "extendedKeyUsage=clientAuth\n")
    }

    /// A certificate with the given extensions (`subjectAltName=…` lines).
    pub fn issue(&self, name: &str, ext: &str) -> Leaf {
        let p = |f: &str| {
            self.dir
                .join(format!("{name}.{f}"))
                .to_str()
                .unwrap()
                .to_string()
        };
        std::fs::write(
            p("ext"),
            format!("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n{ext}"),
        )
        .unwrap();
        let subject = format!("/CN={name}");
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p("key"),
            "-out",
            &p("csr"),
            "-subj",
            &subject,
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p("csr"),
            "-CA",
            &self.cert,
            "-CAkey",
            &self.key,
            "-CAcreateserial",
            "-out",
            &p("pem"),
            "-days",
            "2",
            "-extfile",
            &p("ext"),
        ]);
        Leaf {
            cert: p("pem"),
            key: p("key"),
        }
    }
}

/// TLS in front of a unix socket: verifies each client's certificate
/// against the CA (refused handshakes are logged on stderr), then relays
/// bytes both ways. Prints its port first.
const TLS_FRONT: &str = r#"
import select, socket, ssl, sys, threading
ca, cert, key, target = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(ca)
ctx.verify_mode = ssl.CERT_REQUIRED
srv = socket.socket()
srv.bind(('127.0.0.1', 0))
srv.listen(256)
print(srv.getsockname()[1], flush=True)
def serve(c):
    try:
        t = ctx.wrap_socket(c, server_side=True)
    except (ssl.SSLError, OSError) as e:
        sys.stderr.write("refused: %s\n" % e); sys.stderr.flush(); c.close(); return
    u = socket.socket(socket.AF_UNIX)
    u.connect(target)
    try:
        while True:
            ready = [t] if t.pending() else select.select([t, u], [], [])[0]
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (u if s is t else t).sendall(data)
    except OSError:
        pass
    finally:
        t.close(); u.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// A running TLS front, killed when dropped.
pub struct TlsFront {
    child: std::process::Child,
    pub port: u16,
    refusals: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TlsFront {
    /// Serves `server` (signed by `ca`) and admits clients `ca` signed.
    pub fn start(ca: &Ca, server: &Leaf, target: &str) -> TlsFront {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .args(["-c", TLS_FRONT, &ca.cert, &server.cert, &server.key, target])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("TLS front printed {line:?}"));
        let refusals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (r, stderr) = (refusals.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .for_each(|l| r.lock().unwrap().push(l))
        });
        TlsFront {
            child,
            port,
            refusals,
        }
    }

    /// The handshakes it refused so far.
    pub fn refusals(&self) -> Vec<String> {
        self.refusals.lock().unwrap().clone()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
