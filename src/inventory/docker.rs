//! Discovery on Docker hosts through bollard: every host listed at once,
//! each with a timeout; a host that does not answer is reported by name and
//! is fatal only when the playbook says `on_unreachable = "fail"`. Read-only:
//! discovery never changes a container.

use super::{Container, ContainerState, HostReport, Inventory, Labels};
use crate::config::{HostSpec, OnUnreachable, Playbook, TlsPaths};
use bollard::query_parameters::ListContainersOptions;
use bollard::{Docker, API_DEFAULT_VERSION};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DiscoveryError {
    #[error("{} Docker host(s) unreachable and the playbook says on_unreachable = \"fail\": {}", .0.len(), describe(.0))]
    Unreachable(Vec<HostReport>),
}

fn describe(hosts: &[HostReport]) -> String {
    hosts
        .iter()
        .map(|h| format!("{} ({})", h.name, h.error.as_deref().unwrap_or("no answer")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The hosts to talk to: the playbook's, or the one `DOCKER_HOST` names
/// (TLS from `DOCKER_CERT_PATH` when `DOCKER_TLS_VERIFY` is set), or the
/// local socket.
pub fn hosts_of(playbook: &Playbook) -> Vec<HostSpec> {
    if !playbook.hosts.is_empty() {
        return playbook.hosts.clone();
    }
    let url = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
    let tls = match (std::env::var_os("DOCKER_TLS_VERIFY"), std::env::var_os("DOCKER_CERT_PATH")) {
        (Some(v), path) if !v.is_empty() && v != "0" => {
            let dir = path.map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker")
            });
            Some(TlsPaths { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") })
        }
        _ => None,
    };
    vec![HostSpec { name: "local".to_string(), url, tls }]
}

/// A client for one host. `timeout` bounds the wait for each response's
/// headers (bollard counts it in whole seconds; at least 1).
pub fn connect(spec: &HostSpec, timeout: Duration) -> Result<Docker, String> {
    let secs = timeout.as_secs().max(1);
    let url = spec.url.as_str();
    let result = if let Some(path) = url.strip_prefix("unix://") {
        Docker::connect_with_unix(path, secs, API_DEFAULT_VERSION)
    } else if let Some(tls) = &spec.tls {
        Docker::connect_with_ssl(url, &tls.key, &tls.cert, &tls.ca, secs, API_DEFAULT_VERSION)
    } else if url.starts_with("https://") {
        return Err(format!("host {:?} uses https:// but has no tls = {{ ca, cert, key }}", spec.name));
    } else {
        Docker::connect_with_http(url, secs, API_DEFAULT_VERSION)
    };
    result.map_err(|e| e.to_string())
}

/// Connects and agrees on an API version with the engine (older engines
/// reject the newest client version).
pub async fn connect_negotiated(spec: &HostSpec, timeout: Duration) -> Result<Docker, String> {
    let docker = connect(spec, timeout)?;
    match tokio::time::timeout(timeout, docker.negotiate_version()).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", timeout.as_secs_f64())),
    }
}

/// Lists the playbook's containers on every host concurrently.
pub async fn discover(playbook: &Playbook) -> Result<Inventory, DiscoveryError> {
    let hosts = hosts_of(playbook);
    let timeout = playbook.discovery.timeout;
    let results = futures_util::future::join_all(hosts.iter().map(|h| list_host(h, playbook, timeout))).await;
    let mut inv = Inventory::default();
    for (spec, result) in hosts.iter().zip(results) {
        match result {
            Ok(mut cs) => {
                inv.hosts.push(HostReport { name: spec.name.clone(), reachable: true, error: None, containers: cs.len() });
                inv.containers.append(&mut cs);
            }
            Err(e) => {
                tracing::warn!(host = %spec.name, url = %spec.url, error = %e, "Docker host unreachable");
                inv.hosts.push(HostReport { name: spec.name.clone(), reachable: false, error: Some(e), containers: 0 });
            }
        }
    }
    let down: Vec<HostReport> = inv.unreachable_hosts().cloned().collect();
    if !down.is_empty() && playbook.discovery.on_unreachable == OnUnreachable::Fail {
        return Err(DiscoveryError::Unreachable(down));
    }
    Ok(inv)
}

async fn list_host(spec: &HostSpec, playbook: &Playbook, timeout: Duration) -> Result<Vec<Container>, String> {
    let work = async {
        let docker = connect_negotiated(spec, timeout).await?;
        // One query per role: Docker ANDs the label filters of one query.
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for role in &playbook.roles {
            let labels: Vec<String> = role
                .selector
                .iter()
                .chain(playbook.discovery.labels.iter())
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let filters = HashMap::from([("label".to_string(), labels)]);
            let opts = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
            let list = docker.list_containers(Some(opts)).await.map_err(|e| e.to_string())?;
            for s in list {
                let Some(id) = s.id.clone() else { continue };
                if seen.insert(id.clone()) {
                    out.push(summary_to_container(spec, id, s));
                }
            }
        }
        Ok::<_, String>(out)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}s", timeout.as_secs_f64())),
    }
}

fn summary_to_container(spec: &HostSpec, id: String, s: bollard::models::ContainerSummary) -> Container {
    let name = s
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_else(|| id.chars().take(12).collect());
    let labels: Labels = s.labels.unwrap_or_default().into_iter().collect();
    let dns_name = labels.get("rekindle.dns_name").map(str::to_string);
    let mut ports: Vec<u16> = s.ports.unwrap_or_default().iter().map(|p| p.private_port).collect();
    ports.sort_unstable();
    ports.dedup();
    Container {
        id,
        name,
        host: spec.name.clone(),
        labels,
        dns_name,
        ports,
        state: s.state.map(|st| ContainerState::parse(&st.to_string())).unwrap_or_default(),
    }
}
