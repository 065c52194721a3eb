//! The preparation of a fleet on Docker hosts (the pipeline's
//! `DockerFleet`): discover the fleet (over one client per Docker host,
//! kept for the runtime), cut the plan, and for MongoDB's rolling order ask
//! which member is primary and cut it again with each primary last in its
//! set. What comes after (the pre-flight, the journal, the engine) takes
//! the [`Prober`] the [`Connection`] hands over, built on the same clients.

use crate::config::Playbook;
use crate::inventory::{InventoryError, InventorySource};
use crate::model::Inventory;
use crate::plan::{Plan, PlanError};
use crate::probe::Prober;
use crate::runtime::docker::{DockerHosts, DockerRuntime};
use thiserror::Error;

/// Why a run could not be prepared.
#[derive(Debug, Error)]
pub enum PrepareError {
    /// No inventory (the file is invalid, or discovery refused to go on).
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// The fleet cannot be planned under the playbook.
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// The Docker hosts' clients discovery connected, until the runtime
/// takes them over (and the probes built on them for the rolling order).
pub struct Connection {
    /// Discovery's hosts (`None`: the inventory came from a file or a
    /// scenario; the hosts connect when the runtime is asked for).
    hosts: Option<DockerHosts>,
    /// The probes over them, once built.
    prober: Option<Prober<DockerRuntime>>,
}

/// A fleet, its plan, how many primaries the rolling order found (`None`:
/// no role steps primaries down), and the connection they were found over.
pub type Prepared = (Inventory, Plan, Option<usize>, Connection);

/// Loads the inventory from `source` (on Docker: connecting each host
/// once), cuts the plan, and, when a role steps primaries down, asks each
/// running member whether it is primary and cuts the plan again.
pub async fn prepare(pb: &Playbook, source: &InventorySource) -> Result<Prepared, PrepareError> {
    let (mut inventory, hosts) = match source {
        InventorySource::Docker => {
            let hosts = DockerHosts::connect(pb).await;
            (source.load_on(pb, &hosts).await?, Some(hosts))
        }
        other => (other.load(pb).await?, None),
    };
    let mut plan = Plan::build(&inventory, pb)?;
    let mut conn = Connection {
        hosts,
        prober: None,
    };
    let mut primaries = None;
    if super::steps_down(pb) {
        let prober = conn.prober(pb).await;
        let n = super::mark_primaries(pb, &mut inventory, &plan, &prober).await;
        plan = Plan::build(&inventory, pb)?;
        primaries = Some(n);
        conn.prober = Some(prober);
    }
    Ok((inventory, plan, primaries, conn))
}

impl Connection {
    /// Whether the fleet came from Docker hosts already connected (so a
    /// pre-flight costs no new connection).
    pub fn on_docker(&self) -> bool {
        self.hosts.is_some() || self.prober.is_some()
    }

    /// The probes, and under them the runtime, over the hosts discovery
    /// connected; an inventory read from a file connects them now.
    pub async fn prober(&mut self, pb: &Playbook) -> Prober<DockerRuntime> {
        if let Some(p) = self.prober.take() {
            return p;
        }
        let hosts = match self.hosts.take() {
            Some(h) => h,
            None => DockerHosts::connect(pb).await,
        };
        Prober::docker(pb, DockerRuntime::from_hosts(pb, hosts))
    }
}
