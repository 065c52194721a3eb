//! Discovery on Docker hosts through bollard: every host listed at once,
//! each with a timeout; a host that does not answer is reported by name and
//! is fatal only when the playbook says `on_unreachable = "fail"`. Read-only:
//! discovery never changes a container.

use super::{host_label_filters, summary_to_container, transient, with_causes, DockerHosts};
use crate::config::{HostSpec, OnUnreachable, Playbook};
use crate::model::{Container, HostReport, Inventory};
use crate::retry::{retry, Backoff, Failed};
use bollard::query_parameters::ListContainersOptions;
use bollard::Docker;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use thiserror::Error;

/// A list is a read: an error status of the server's (5xx) or a lost
/// connection is tried again, twice (200 ms, then 400 ms), before the host
/// counts as unreachable (one 500 must not take a host out of the plan).
const LIST_BACKOFF: Backoff = Backoff {
    attempts: 3,
    first: Duration::from_millis(200),
};

/// Why discovery refused to go on.
#[derive(Debug, Error)]
pub enum DiscoveryError {
    /// Hosts did not answer and the playbook says `on_unreachable = "fail"`: the hosts that did not.
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

/// Lists the playbook's containers on every host concurrently, over the
/// run's connections (the runtime reuses them).
pub async fn discover(
    playbook: &Playbook,
    hosts: &DockerHosts,
) -> Result<Inventory, DiscoveryError> {
    let timeout = playbook.discovery.timeout;
    let results = futures_util::future::join_all(hosts.iter().map(|(spec, client)| async move {
        match client {
            Ok(docker) => list_host(spec, docker, playbook, timeout).await,
            Err(e) => Err(e.to_string()),
        }
    }))
    .await;
    let mut inv = Inventory::default();
    for ((spec, _), result) in hosts.iter().zip(results) {
        match result {
            Ok(mut cs) => {
                inv.hosts.push(HostReport {
                    name: spec.name.clone(),
                    reachable: true,
                    error: None,
                    containers: cs.len(),
                });
                inv.containers.append(&mut cs);
            }
            Err(e) => {
                tracing::warn!(host = %spec.name, url = %spec.url, error = %e, "Docker host unreachable");
                inv.hosts.push(HostReport {
                    name: spec.name.clone(),
                    reachable: false,
                    error: Some(e),
                    containers: 0,
                });
            }
        }
    }
    // A stable order (the engines list in no particular one): the same fleet
    // always gives the same plan, which a resumed run relies on.
    inv.containers
        .sort_by(|a, b| (&a.host, &a.name, &a.id).cmp(&(&b.host, &b.name, &b.id)));
    let down: Vec<HostReport> = inv.unreachable_hosts().cloned().collect();
    if !down.is_empty() && playbook.discovery.on_unreachable == OnUnreachable::Fail {
        return Err(DiscoveryError::Unreachable(down));
    }
    Ok(inv)
}

async fn list_host(
    spec: &HostSpec,
    docker: &Docker,
    playbook: &Playbook,
    timeout: Duration,
) -> Result<Vec<Container>, String> {
    let work = async {
        // One query per role: Docker ANDs the label filters of one query.
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for role in &playbook.roles {
            let labels: Vec<String> = role
                .selector
                .iter()
                .chain(playbook.discovery.labels.iter())
                .map(|(k, v)| format!("{k}={v}"))
                .chain(host_label_filters(spec))
                .collect();
            let filters = HashMap::from([("label".to_string(), labels)]);
            let opts = ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            };
            let list = retry(&LIST_BACKOFF, None, |_| async {
                docker
                    .list_containers(Some(opts.clone()))
                    .await
                    .map_err(|e| Failed::new(with_causes(&e), transient(&e)))
            })
            .await?;
            for s in list {
                let Some(c) = summary_to_container(spec, s) else {
                    continue;
                };
                if seen.insert(c.id.clone()) {
                    out.push(c);
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
