//! The model: the plain data every layer shares — a container (its
//! labels, state and address), what discovery saw of each host, the
//! inventory, and a container's health. It uses no other module of the
//! crate and does no I/O: the lowest room of the house.

use serde::{Deserialize, Serialize};

/// Labels of a container, sorted by key (few per container; a sorted vector
/// is smaller and faster than a map at fleet scale).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    from = "std::collections::BTreeMap<String, String>",
    into = "std::collections::BTreeMap<String, String>"
)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// The value of label `key`, if the container carries it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// All labels as (key, value), sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut v: Vec<(String, String)> = iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        Labels(v)
    }
}

impl From<std::collections::BTreeMap<String, String>> for Labels {
    fn from(m: std::collections::BTreeMap<String, String>) -> Self {
        Labels(m.into_iter().collect())
    }
}

impl From<Labels> for std::collections::BTreeMap<String, String> {
    fn from(l: Labels) -> Self {
        l.0.into_iter().collect()
    }
}

/// A container's state as the runtime reports it (Docker's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Its process is up.
    Running,
    /// The runtime is restarting it.
    Restarting,
    /// Frozen by `docker pause`.
    Paused,
    /// Created but never started.
    Created,
    /// Its process ended.
    Exited,
    /// Defunct: Docker tried to remove it and failed.
    Dead,
    /// Being removed.
    Removing,
    /// A state this version does not know (or none reported).
    #[default]
    Unknown,
}

impl ContainerState {
    /// Reads Docker's state name, any case; an unknown one is `Unknown`.
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "running" => Self::Running,
            "restarting" => Self::Restarting,
            "paused" => Self::Paused,
            "created" => Self::Created,
            "exited" => Self::Exited,
            "dead" => Self::Dead,
            "removing" => Self::Removing,
            _ => Self::Unknown,
        }
    }
}

/// One container, as discovered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// The runtime's id of the container.
    pub id: String,
    /// The container's name (without Docker's leading `/`).
    pub name: String,
    /// The name of the host entry it was found on.
    pub host: String,
    /// Its labels.
    #[serde(default)]
    pub labels: Labels,
    /// Fully qualified DNS name, when known.
    #[serde(default)]
    pub dns_name: Option<String>,
    /// Its private (container-side) ports, sorted, without duplicates.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Its state when discovered.
    #[serde(default)]
    pub state: ContainerState,
    /// A replica-set member that said it was PRIMARY when discovered (asked
    /// only for roles whose gate steps primaries down): a rolling restart
    /// puts it last in its set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub primary: bool,
}

/// What discovery saw of one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    /// The host entry's name.
    pub name: String,
    /// Whether the host answered discovery.
    pub reachable: bool,
    /// Why it did not answer, if it did not.
    #[serde(default)]
    pub error: Option<String>,
    /// Containers found on it.
    pub containers: usize,
}

/// Containers plus how each host answered.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Inventory {
    /// Every container found, on every host.
    pub containers: Vec<Container>,
    /// How each host answered.
    #[serde(default)]
    pub hosts: Vec<HostReport>,
}

impl Inventory {
    /// The hosts that did not answer discovery.
    pub fn unreachable_hosts(&self) -> impl Iterator<Item = &HostReport> {
        self.hosts.iter().filter(|h| !h.reachable)
    }
}

/// A container's health as its check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not decided yet (starting, within its start period).
    Starting,
    /// Passes its check.
    Healthy,
    /// Up but failing its check (e.g. disconnected from its peers).
    Unhealthy,
    /// Not running at all.
    Down,
}
