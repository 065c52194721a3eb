//! The processes the driver starts, and how they end: every child is held
//! by a [`Proc`] guard that stops it by PID when dropped (SIGTERM, up to
//! 10 s to exit, then SIGKILL), so an error or a panic leaves nothing
//! running. SIGINT and SIGTERM only set a flag ([`interrupted`]); every wait
//! of the driver polls it and returns an error, and the guards stop the
//! children on the way out. Also the /proc sampler of `--measure`.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to the interrupted flag.
pub fn handle_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Whether SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// An error if the driver was interrupted.
pub fn check() -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps `d`, waking every 100 ms to see whether the driver was interrupted.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

/// A child process this driver started; stopped by PID when dropped.
pub struct Proc {
    name: String,
    child: Option<Child>,
}

impl Proc {
    /// Starts `cmd` (stdin closed), named `name` in messages.
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Proc> {
        let child = cmd
            .stdin(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("start {name}"))?;
        Ok(Proc {
            name: name.into(),
            child: Some(child),
        })
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether it still runs: it exists and is not a zombie (never reaps,
    /// so its /proc entry stays readable until [`Proc::wait`]).
    pub fn running(&self) -> bool {
        self.child.is_some() && proc_state(self.pid()).is_some_and(|s| s != 'Z')
    }

    /// Waits for it to exit (polling the interrupted flag); its exit code
    /// (128 + the signal if a signal ended it).
    pub fn wait(&mut self) -> Result<i32> {
        let child = self.child.as_mut().context("no process")?;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(exit_code(status));
            }
            if interrupted() {
                self.stop();
                bail!("interrupted");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL now, and reaped.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, up to 10 s to exit (an interrupted `rekindle run` aborts
    /// and watches its restarts in flight), then SIGKILL; reaped.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // SAFETY: kill(2) on the PID of our own unreaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "rekindle-bench: {} did not exit on SIGTERM: SIGKILL",
            self.name
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// The state letter of /proc/PID/stat (`R`, `S`, `Z`, ...), if it exists.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat)?.first()?.chars().next()
}

/// The fields of /proc/PID/stat after the command name (state first).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().collect())
}

/// What `--measure` reads of a process from /proc.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ProcFigures {
    /// CPU time, user + system, in seconds (final once it is a zombie).
    pub cpu_s: f64,
    /// Peak resident set (VmHWM), in kB.
    pub peak_rss_kb: u64,
    /// The most sockets it held at one sample.
    pub peak_sockets: u64,
    /// The most threads it had at one sample.
    pub peak_threads: u64,
}

/// Reads /proc/PID every 200 ms until the process is a zombie or gone (its
/// CPU times are final as a zombie; the caller reaps it only after this).
pub fn sample(pid: u32) -> ProcFigures {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut f = ProcFigures::default();
    while let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        let Some(fields) = stat_fields(&stat) else {
            break;
        };
        let time = |i: usize| {
            fields
                .get(i)
                .and_then(|x| x.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        f.cpu_s = (time(11) + time(12)) / tick;
        if fields[0] == "Z" {
            break;
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in status.lines() {
                let value = || line.split_whitespace().nth(1).and_then(|v| v.parse().ok());
                if line.starts_with("VmHWM:") {
                    f.peak_rss_kb = f.peak_rss_kb.max(value().unwrap_or(0));
                } else if line.starts_with("Threads:") {
                    f.peak_threads = f.peak_threads.max(value().unwrap_or(0));
                }
            }
        }
        f.peak_sockets = f.peak_sockets.max(sockets(pid));
        std::thread::sleep(Duration::from_millis(200));
    }
    f
}

fn sockets(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count() as u64
}

/// A loopback port free for both TCP and UDP (unbound serves both).
pub fn free_port() -> Result<u16> {
    for _ in 0..100 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no loopback port free for both TCP and UDP")
}

/// Whether `name` is an executable on PATH.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| is_executable(&d.join(name))))
}

/// Whether `path` is an executable file.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_skip_a_command_name_with_spaces_and_parens() {
        let stat = "42 (a (b) c) Z 1 2 3 4 5 6 7 8 9 10 700 300 0";
        let f = stat_fields(stat).unwrap();
        assert_eq!(f[0], "Z");
        assert_eq!((f[11], f[12]), ("700", "300"));
    }

    #[test]
    fn a_dropped_guard_stops_its_process() {
        let p = Proc::spawn("sleep", Command::new("sleep").arg("30")).unwrap();
        let pid = p.pid();
        assert!(p.running());
        drop(p);
        assert_eq!(proc_state(pid), None, "sleep {pid} still exists");
    }
}
