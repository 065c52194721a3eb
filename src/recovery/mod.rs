//! A real recovery's surroundings, shared by `rekindle run` and the daemon:
//! its preparation ([`prepare`]: inventory, plan, rolling order), the
//! pre-flight, where a playbook's journal lives, the adaptive budget's
//! probe, and archiving a finished journal (the journal itself is opened by
//! [`crate::session`]). It never restarts anything itself: that is the engine's.

pub mod preflight;
pub mod prepare;

use crate::config::Playbook;
use crate::dns::budget::DnsProbe;
use crate::dns::CachedResolver;
use crate::model::Inventory;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `$XDG_STATE_HOME/rekindle`, `~/.local/state/rekindle`, or `./.rekindle`.
pub fn default_state_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("rekindle");
    }
    match std::env::var_os("HOME").filter(|x| !x.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/state/rekindle"),
        None => PathBuf::from(".rekindle"),
    }
}

/// The journal of a playbook's run in `dir`.
pub fn journal_path(dir: &Path, playbook: &str) -> PathBuf {
    let safe: String = playbook
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{safe}.journal"))
}

/// Moves a finished run's journal aside (`<name>.<unix seconds>.done`).
pub fn archive(path: &Path) -> std::io::Result<PathBuf> {
    let done = archive_name(path);
    std::fs::rename(path, &done)?;
    Ok(done)
}

/// Where [`archive`] moves a journal now (so a caller can record the name
/// before the move).
pub fn archive_name(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    path.with_extension(format!("{secs}.done"))
}

/// MongoDB's rolling order needs each replica set's primary before the
/// plan is cut (the primary goes last): for the roles whose gate steps
/// primaries down, every running member is asked `hello` (64 at a time)
/// and the one that says PRIMARY is marked. A member that does not answer
/// is left unmarked (logged): it is not serving as primary. Returns how
/// many primaries were found; the caller cuts the plan again.
pub async fn mark_primaries(
    pb: &Playbook,
    inv: &mut Inventory,
    plan: &crate::plan::Plan,
    probe: &crate::probe::Prober<crate::runtime::docker::DockerRuntime>,
) -> usize {
    use crate::config::HealthKind;
    use futures_util::StreamExt;
    let asks: Vec<(usize, u16, std::time::Duration)> = plan
        .waves
        .iter()
        .filter_map(|w| match &pb.roles[w.role].health.kind {
            HealthKind::Mongo {
                port,
                step_down: Some(_),
                ..
            } => Some((w, *port, pb.roles[w.role].health.timeout)),
            _ => None,
        })
        .flat_map(|(w, port, t)| w.containers.iter().map(move |&ci| (ci as usize, port, t)))
        .filter(|(ci, _, _)| inv.containers[*ci].state == crate::model::ContainerState::Running)
        .collect();
    let containers = &inv.containers;
    let found: Vec<usize> = futures_util::stream::iter(asks)
        .map(|(ci, port, t)| async move {
            match probe.is_primary(&containers[ci], port, t).await {
                Ok(p) => p.then_some(ci),
                Err(e) => {
                    tracing::warn!(container = %containers[ci].name, error = %e, "could not ask whether it is primary");
                    None
                }
            }
        })
        .buffer_unordered(64)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    for &ci in &found {
        inv.containers[ci].primary = true;
    }
    found.len()
}

/// Whether any role's gate steps primaries down (the rolling order).
pub fn steps_down(pb: &Playbook) -> bool {
    pb.roles.iter().any(|r| {
        matches!(
            r.health.kind,
            crate::config::HealthKind::Mongo {
                step_down: Some(_),
                ..
            }
        )
    })
}

/// The name the adaptive budget probes: the playbook's `dns.probe_name`,
/// or else the first name of the fleet's own inventory (what the
/// restarted processes will look up), with where it came from.
pub fn probe_name(pb: &Playbook, inv: &Inventory) -> Option<(String, &'static str)> {
    if let Some(n) = &pb.dns.probe_name {
        return Some((n.clone(), "dns.probe_name"));
    }
    inv.containers
        .iter()
        .find_map(|c| c.dns_name.clone())
        .map(|n| (n, "the inventory"))
}

/// The adaptive DNS budget's probe name does not resolve: the run stops
/// before anything is restarted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the adaptive DNS budget's probe name {name:?} (from {from}) does not resolve: {reason}; set dns.probe_name to a name the fleet's resolver answers, or dns.adaptive = false")]
pub struct ProbeNameError {
    /// The name.
    pub name: String,
    /// Where it came from (`dns.probe_name`, a container's DNS name).
    pub from: &'static str,
    /// What the resolver said.
    pub reason: String,
}

/// The adaptive budget's probe, on by default: probe queries for
/// [`probe_name`] through rekindle's resolver, and the resolver's counters
/// when the playbook names them. Static pacing only when the playbook says
/// `adaptive = false`, pacing is off, or there is nothing to probe (the log
/// says so once). The name is looked up once here, before anything is
/// restarted: a name that does not resolve is an error naming it.
pub async fn dns_probe(
    pb: &Playbook,
    inv: &Inventory,
    no_pacing: bool,
    resolver: Option<&CachedResolver>,
) -> Result<Option<Arc<dyn DnsProbe>>, ProbeNameError> {
    if no_pacing || !pb.dns.adaptive {
        return Ok(None);
    }
    let Some((name, from)) = probe_name(pb, inv) else {
        tracing::warn!("no dns.probe_name and no DNS name in the inventory: the DNS budget stays at its static {:.0} q/s", pb.dns.budget_qps());
        return Ok(None);
    };
    let Some(resolver) = resolver.cloned() else {
        tracing::warn!("no resolver to probe: the DNS budget stays static");
        return Ok(None);
    };
    if let Err(e) = resolver.lookup(&name).await {
        return Err(ProbeNameError {
            name,
            from,
            reason: e.to_string(),
        });
    }
    let counter = pb
        .dns
        .counter
        .as_ref()
        .map(|c| crate::dns::counter::ResolverCounter::new(c, pb.resolver.timeout));
    let probe = crate::dns::ResolverProbe::new(resolver, name, counter);
    tracing::info!(signals = %probe.describe(), name_from = from, "adaptive DNS budget");
    Ok(Some(Arc::new(probe)))
}
