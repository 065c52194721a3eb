//! The two services a run stands on: a real unbound serving the fake
//! fleet's zone, rate-limited at the scenario's capacity (`ip-ratelimit`,
//! every query from 127.0.0.1, `ip-ratelimit-factor: 0`: nothing above the
//! limit of a second is answered), read through `unbound-control`; and the
//! fake fleet (`rekindle-fakefleet`), read and steered through its control
//! port with rekindle's own HTTP client.

use crate::procs::{self, Proc};
use anyhow::{bail, Context, Result};
use rekindle::http::{self, Request, Url};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// unbound's `server:` and `remote-control:` for one run.
pub fn unbound_conf(
    dir: &Path,
    zone: &Path,
    dns_port: u16,
    control_port: u16,
    capacity: u64,
) -> String {
    format!(
        r#"server:
    interface: 127.0.0.1
    port: {dns_port}
    do-ip6: no
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    use-syslog: no
    logfile: "{dir}/unbound.log"
    verbosity: 1
    access-control: 127.0.0.0/8 allow
    statistics-cumulative: yes
    extended-statistics: yes
    num-threads: 2
    so-rcvbuf: 8m
    so-sndbuf: 8m
    num-queries-per-thread: 4096
    ip-ratelimit: {capacity}
    ip-ratelimit-factor: 0
    include: "{zone}"
remote-control:
    control-enable: yes
    control-interface: 127.0.0.1
    control-port: {control_port}
    control-use-cert: no
"#,
        dir = dir.display(),
        zone = zone.display(),
    )
}

/// A running unbound and its config file.
pub struct Unbound {
    /// Its config (for `unbound-control -c`).
    pub conf: PathBuf,
    /// The port it answers DNS on.
    pub port: u16,
    /// The process (stopped when dropped).
    pub proc: Proc,
}

impl Unbound {
    /// Writes the config into `dir` and starts unbound; waits until
    /// `unbound-control status` answers.
    pub fn start(dir: &Path, zone: &Path, capacity: u64) -> Result<Unbound> {
        let port = procs::free_port()?;
        let control = procs::free_port()?;
        let conf = dir.join("unbound.conf");
        std::fs::write(&conf, unbound_conf(dir, zone, port, control, capacity))?;
        let proc = Self::spawn(&conf)?;
        let u = Unbound { conf, port, proc };
        for _ in 0..100 {
            if u.control(&["status"]).is_ok() {
                return Ok(u);
            }
            procs::sleep(Duration::from_millis(100))?;
        }
        let log = std::fs::read_to_string(dir.join("unbound.log")).unwrap_or_default();
        bail!("unbound did not start:\n{log}")
    }

    fn spawn(conf: &Path) -> Result<Proc> {
        Proc::spawn(
            "unbound",
            Command::new("unbound").arg("-d").arg("-c").arg(conf),
        )
    }

    /// Stops it now (by PID).
    pub fn stop(&mut self) {
        self.proc.stop();
    }

    /// Starts it again with the same config (after [`Unbound::stop`]).
    pub fn restart(&mut self) -> Result<()> {
        self.proc = Self::spawn(&self.conf)?;
        Ok(())
    }

    /// `unbound-control -c CONF ARGS...`: its stdout.
    pub fn control(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("unbound-control")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .context("unbound-control")?;
        if !out.status.success() {
            bail!("unbound-control {args:?}: {}", out.status);
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Its counters (`stats_noreset`), empty if it does not answer.
    pub fn stats(&self) -> BTreeMap<String, String> {
        parse_stats(&self.control(&["stats_noreset"]).unwrap_or_default())
    }
}

/// `key=value` lines of `unbound-control stats_noreset`.
pub fn parse_stats(text: &str) -> BTreeMap<String, String> {
    text.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The first name of the fleet's zone (an unbound `local-data` line).
pub fn probe_name(zone: &str) -> Option<String> {
    zone.lines().find_map(|l| {
        let rest = l.strip_prefix("local-data: \"")?;
        let (name, tail) = rest.split_once(' ')?;
        tail.starts_with("300 IN A").then(|| name.to_string())
    })
}

/// A running fake fleet and its control port.
pub struct FakeFleet {
    /// Its `fakefleet ready ...` line.
    pub ready: String,
    /// The relay's port (`--relay-dns`), if any.
    pub relay_port: Option<u16>,
    control: Url,
    rt: tokio::runtime::Runtime,
    /// The process, held to be stopped when this is dropped.
    _proc: Proc,
}

impl FakeFleet {
    /// Starts `rekindle-fakefleet` for `scenario` against unbound at
    /// `dns_port`, writing its hosts to `dir/hosts.toml` and its output to
    /// `dir/fakefleet.{out,err}`; waits for its ready line (2 minutes).
    pub fn start(
        bin: &Path,
        scenario: &Path,
        dns_port: u16,
        dir: &Path,
        faults: Option<&str>,
        relay: bool,
    ) -> Result<FakeFleet> {
        let out_path = dir.join("fakefleet.out");
        let mut cmd = Command::new(bin.join("rekindle-fakefleet"));
        cmd.arg("--scenario")
            .arg(scenario)
            .arg("--dns")
            .arg(format!("127.0.0.1:{dns_port}"))
            .arg("--hosts-out")
            .arg(dir.join("hosts.toml"))
            .stdout(std::fs::File::create(&out_path)?)
            .stderr(std::fs::File::create(dir.join("fakefleet.err"))?);
        if let Some(f) = faults {
            cmd.arg("--faults").arg(f);
        }
        if relay {
            cmd.arg("--relay-dns");
        }
        let proc = Proc::spawn("rekindle-fakefleet", &mut cmd)?;
        let mut ready = None;
        for _ in 0..1200 {
            let out = std::fs::read_to_string(&out_path).unwrap_or_default();
            ready = out
                .lines()
                .find(|l| l.starts_with("fakefleet ready"))
                .map(String::from);
            if ready.is_some() || !proc.running() {
                break;
            }
            procs::sleep(Duration::from_millis(100))?;
        }
        let Some(ready) = ready else {
            let err = std::fs::read_to_string(dir.join("fakefleet.err")).unwrap_or_default();
            bail!("the fake fleet did not come up:\n{err}");
        };
        let field = |k: &str| {
            ready
                .split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .map(String::from)
        };
        let control = field("control=").context("no control= in the ready line")?;
        let relay_port = match field("relay=") {
            Some(a) => Some(
                a.rsplit_once(':')
                    .and_then(|(_, p)| p.parse().ok())
                    .context("relay port")?,
            ),
            None if relay => bail!("no relay address in: {ready}"),
            None => None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let control =
            Url::parse(&format!("http://{control}")).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(FakeFleet {
            ready,
            relay_port,
            control,
            rt,
            _proc: proc,
        })
    }

    fn call(&self, req: Request<'_>) -> Result<Value> {
        let resp = self
            .rt
            .block_on(http::send(&self.control, req, Duration::from_secs(60)))
            .map_err(|e| anyhow::anyhow!("fake fleet control: {e}"))?;
        if resp.status != 200 {
            bail!("fake fleet control: status {}", resp.status);
        }
        Ok(resp.json().unwrap_or(Value::Null))
    }

    /// `GET /stats`.
    pub fn stats(&self) -> Result<Value> {
        self.call(Request::new("GET", "/stats"))
    }

    /// `GET /containers`: every container by name.
    pub fn containers(&self) -> Result<Value> {
        self.call(Request::new("GET", "/containers"))
    }

    /// One figure of `/stats` as a number.
    pub fn stat(&self, key: &str) -> Result<f64> {
        self.stats()?[key]
            .as_f64()
            .with_context(|| format!("no {key} in /stats"))
    }

    /// Sets a host's mode (`ok`, `refuse`, `hang`).
    pub fn set_mode(&self, host: &str, mode: &str) -> Result<()> {
        let path = format!("/hosts/{host}/mode");
        self.call(Request::new("POST", &path).json(&serde_json::json!({ "mode": mode })))?;
        Ok(())
    }

    /// Waits until the fleet counts `n` starts while `alive` holds; false
    /// if `alive` stopped holding first.
    pub fn wait_starts(&self, n: f64, alive: impl Fn() -> bool) -> Result<bool> {
        while alive() {
            if self.stat("starts_total")? >= n {
                return Ok(true);
            }
            procs::sleep(Duration::from_millis(200))?;
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_name_is_the_first_a_record_of_the_zone() {
        let zone =
            "server:\nlocal-zone: \"db.x.\" static\nlocal-data: \"m-0.db.x. 300 IN A 10.0.0.1\"\n\
                    local-data: \"m-1.db.x. 300 IN A 10.0.0.2\"\n";
        assert_eq!(probe_name(zone).as_deref(), Some("m-0.db.x."));
        assert_eq!(probe_name("server:\n"), None);
    }

    #[test]
    fn unbound_stats_are_key_value_words() {
        let s = parse_stats("total.num.queries=120\ntotal.num.queries_ip_ratelimited=3\nnoise\n");
        assert_eq!(s["total.num.queries"], "120");
        assert_eq!(s["total.num.queries_ip_ratelimited"], "3");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn the_unbound_config_limits_at_the_capacity() {
        let c = unbound_conf(Path::new("/w"), Path::new("/w/zone.conf"), 5300, 5301, 1500);
        assert!(c.contains("    ip-ratelimit: 1500\n    ip-ratelimit-factor: 0\n"));
        assert!(c.contains("port: 5300\n") && c.contains("control-port: 5301\n"));
        assert!(c.contains("include: \"/w/zone.conf\""));
    }
}
