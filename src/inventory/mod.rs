//! The inventory's sources: the containers rekindle may act on come from
//! Docker hosts, a static JSON file or a reference scenario, as a
//! [`crate::model::Inventory`]; once loaded, an inventory is never
//! refreshed behind the planner's back.

pub mod file;

use crate::config::Playbook;
use crate::model::Inventory;
use crate::scenario::Scenario;
use crate::source::SourceError;
use std::path::PathBuf;
use thiserror::Error;

/// Where the inventory comes from.
#[derive(Debug, Clone)]
pub enum InventorySource {
    /// The playbook's Docker hosts (or `DOCKER_HOST`).
    Docker,
    /// A static JSON inventory file.
    File(PathBuf),
    /// A reference scenario (a simulated fleet generated from its seed).
    Scenario(PathBuf),
}

/// Why no inventory could be loaded.
#[derive(Debug, Error)]
pub enum InventoryError {
    /// The inventory or scenario file is unreadable or invalid.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Docker discovery refused to go on.
    #[error(transparent)]
    Docker(#[from] crate::runtime::docker::discover::DiscoveryError),
}

impl InventorySource {
    /// Loads the inventory for a playbook over hosts already connected (a
    /// run's: the runtime then reuses the connections).
    pub async fn load_on(
        &self,
        playbook: &Playbook,
        hosts: &crate::runtime::docker::DockerHosts,
    ) -> Result<Inventory, InventoryError> {
        match self {
            InventorySource::Docker => {
                Ok(crate::runtime::docker::discover::discover(playbook, hosts).await?)
            }
            other => other.load(playbook).await,
        }
    }

    /// Loads the inventory for a playbook (connecting to its Docker hosts
    /// for this alone, when they are the source).
    pub async fn load(&self, playbook: &Playbook) -> Result<Inventory, InventoryError> {
        match self {
            InventorySource::Docker => {
                let hosts = crate::runtime::docker::DockerHosts::connect(playbook).await;
                Ok(crate::runtime::docker::discover::discover(playbook, &hosts).await?)
            }
            InventorySource::File(path) => Ok(file::load(path)?),
            InventorySource::Scenario(path) => Ok(Scenario::load(path)?.fleet().into_inventory()),
        }
    }
}
