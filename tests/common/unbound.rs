//! A real DNS server for tests: unbound on a loopback port, serving the
//! zone `fleet.test.` (5,000 A records `node-N.fleet.test.`, TTL 300; one
//! short-lived name; negative TTL 2 s from the SOA) or a zone of the test's
//! own names ([`Unbound::start_zone`]), with its own counters read through
//! `unbound-control` (cumulative). Stopped (killed) on drop.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub const ZONE_RECORDS: usize = 5000;

pub struct Unbound {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    conf: PathBuf,
}

/// Whether unbound is installed; under CI it must be.
pub fn unbound_available(test: &str) -> bool {
    let ok = Command::new("unbound")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: unbound is not installed, and CI=true requires it (scripts/test.sh installs it)");
        }
        eprintln!("SKIPPED {test}: unbound is not installed (scripts/test.sh installs it)");
    }
    ok
}

fn free_port() -> u16 {
    // A port free for both UDP and TCP on loopback.
    loop {
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// unbound in the foreground on `conf`, its stderr to `stderr`.
fn spawn(conf: &std::path::Path, stderr: std::fs::File) -> Child {
    Command::new("unbound")
        .args(["-d", "-c"])
        .arg(conf)
        .stderr(stderr)
        .spawn()
        .expect("start unbound")
}

/// An A record's address for the i-th name of a zone: 10.x.y.z.
fn address(i: usize) -> String {
    format!("10.{}.{}.{}", (i / 65536) % 256, (i / 256) % 256, i % 256)
}

impl Unbound {
    /// Starts unbound with the `fleet.test.` zone; `extra` is added to its
    /// `server:` section.
    pub fn start(extra: &str) -> Unbound {
        let names: Vec<String> = (0..ZONE_RECORDS)
            .map(|i| format!("node-{i}.fleet.test."))
            .collect();
        let short = "    local-data: \"short.fleet.test. 1 IN A 10.255.0.1\"\n";
        Self::start_zone("fleet.test", &names, &format!("{short}{extra}"))
    }

    /// Starts unbound serving the static zone `domain` with one A record
    /// (TTL 300) for each of `names` (fully qualified); `extra` is added to
    /// its `server:` section (e.g. `ip-ratelimit: 5`).
    pub fn start_zone(domain: &str, names: &[String], extra: &str) -> Unbound {
        // Its ports are found free and released before unbound binds them:
        // a test starting in parallel may take one in between. Unbound then
        // exits at once ("Address already in use"), and is started again on
        // other ports.
        for _ in 0..4 {
            if let Some(u) = Self::try_start_zone(domain, names, extra) {
                return u;
            }
        }
        Self::try_start_zone(domain, names, extra).expect("unbound did not come up on free ports")
    }

    fn try_start_zone(domain: &str, names: &[String], extra: &str) -> Option<Unbound> {
        let domain = domain.trim_end_matches('.');
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let control = free_port();
        let mut zone = String::new();
        for (i, name) in names.iter().enumerate() {
            zone += &format!("local-data: \"{name} 300 IN A {}\"\n", address(i));
        }
        std::fs::write(dir.path().join("zone.conf"), zone).unwrap();
        let d = dir.path().display();
        let conf = dir.path().join("unbound.conf");
        std::fs::write(
            &conf,
            format!(
                r#"server:
    interface: 127.0.0.1
    port: {port}
    do-ip6: no
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    use-syslog: no
    logfile: "{d}/unbound.log"
    verbosity: 1
    access-control: 127.0.0.0/8 allow
    statistics-cumulative: yes
    extended-statistics: yes
    num-threads: 1
    local-zone: "{domain}." static
    local-data: "{domain}. 3600 IN SOA ns.{domain}. admin.{domain}. 1 3600 600 86400 2"
    include: "{d}/zone.conf"
{extra}
remote-control:
    control-enable: yes
    control-interface: 127.0.0.1
    control-port: {control}
    control-use-cert: no
"#
            ),
        )
        .unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let child = spawn(&conf, stderr);
        let mut u = Unbound {
            port,
            dir,
            child: Some(child),
            conf,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while u.control(&["status"]).is_none() {
            let exited = u.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() {
                let log = u.log();
                eprintln!("unbound exited at its start (a port taken meanwhile?), starting it again on others: {log}");
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "unbound did not come up: {}",
                u.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(u)
    }

    fn control(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("unbound-control")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// One of unbound's own counters (`total.num.queries`, …).
    pub fn stat(&self, key: &str) -> u64 {
        let text = self
            .control(&["stats_noreset"])
            .expect("unbound-control stats_noreset");
        text.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{key}="))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// The argv that prints unbound's counters (for rekindle's counter signal).
    pub fn stats_command(&self) -> Vec<String> {
        vec![
            "unbound-control".into(),
            "-c".into(),
            self.conf.display().to_string(),
            "stats_noreset".into(),
        ]
    }

    pub fn queries(&self) -> u64 {
        self.stat("total.num.queries")
    }

    /// Queries dropped by `ip-ratelimit` (not answered at all).
    pub fn ratelimited(&self) -> u64 {
        self.stat("total.num.queries_ip_ratelimited")
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its log file, and what it wrote to stderr before it opened it.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("stderr"), read("unbound.log"))
    }

    /// Stops unbound (by its PID) and starts it again with the same
    /// config and ports: a resolver restarted, its counters back at zero.
    pub fn restart(&mut self) {
        self.stop();
        let stderr = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("stderr"))
            .unwrap();
        self.child = Some(spawn(&self.conf, stderr));
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.control(&["status"]).is_none() {
            assert!(
                Instant::now() < deadline,
                "unbound did not come back: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        self.stop();
    }
}
