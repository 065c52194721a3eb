//! The playbook exactly as written (stage one of two): serde structures with
//! spans, unknown keys rejected. No validation beyond types lives here.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlaybook {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub groups: Spanned<RawGroups>,
    pub roles: Spanned<Vec<Spanned<RawRole>>>,
    #[serde(default)]
    pub limits: Option<Spanned<RawLimits>>,
    #[serde(default)]
    pub canary: Option<Spanned<RawCanary>>,
    pub dns: Spanned<RawDns>,
    #[serde(default)]
    pub policy: Option<Spanned<RawPolicy>>,
    #[serde(default)]
    pub estimates: Option<Spanned<RawEstimates>>,
    #[serde(default)]
    pub discovery: Option<Spanned<RawDiscovery>>,
    #[serde(default)]
    pub hosts: Option<Vec<Spanned<RawHost>>>,
    #[serde(default)]
    pub resolver: Option<Spanned<RawResolver>>,
    #[serde(default)]
    pub mongo: Option<Spanned<RawMongo>>,
}

/// How the MongoDB gates authenticate. The password itself has no key:
/// only where to read it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMongo {
    #[serde(default)]
    pub user: Option<Spanned<String>>,
    #[serde(default)]
    pub password_file: Option<Spanned<String>>,
    #[serde(default)]
    pub password_env: Option<Spanned<String>>,
    /// Caught to say why it is refused (never the password in the playbook).
    #[serde(default)]
    pub password: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub auth_source: Option<Spanned<String>>,
    #[serde(default)]
    pub tls: Option<Spanned<RawMongoTls>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMongoTls {
    pub ca: Spanned<String>,
    #[serde(default)]
    pub cert: Option<Spanned<String>>,
    #[serde(default)]
    pub key: Option<Spanned<String>>,
}

/// rekindle's own resolver (health probes, host names).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResolver {
    #[serde(default)]
    pub nameservers: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub resolv_conf: Option<String>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub attempts: Option<Spanned<i64>>,
    #[serde(default)]
    pub cache_size: Option<Spanned<i64>>,
    #[serde(default)]
    pub min_ttl: Option<Spanned<String>>,
    #[serde(default)]
    pub max_ttl: Option<Spanned<String>>,
    #[serde(default)]
    pub negative_max_ttl: Option<Spanned<String>>,
    #[serde(default)]
    pub serve_stale: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroups {
    pub cluster: Spanned<String>,
    #[serde(default)]
    pub replset: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    pub name: Spanned<String>,
    pub selector: Spanned<BTreeMap<String, Spanned<String>>>,
    #[serde(default)]
    pub after: Option<Spanned<Vec<Spanned<String>>>>,
    pub startup_lookups: Spanned<i64>,
    #[serde(default)]
    pub ready_estimate: Option<Spanned<String>>,
    #[serde(default)]
    pub health: Option<Spanned<RawHealth>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub kind: Spanned<String>,
    #[serde(default)]
    pub port: Option<Spanned<i64>>,
    #[serde(default)]
    pub command: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub deadline: Option<Spanned<String>>,
    #[serde(default)]
    pub max_lag: Option<Spanned<String>>,
    #[serde(default)]
    pub step_down: Option<Spanned<String>>,
    #[serde(default)]
    pub stuck_after: Option<Spanned<String>>,
}

/// `max_unavailable_per_replset`: a count or `"all"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawUnavailable {
    Count(i64),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    #[serde(default)]
    pub max_per_host: Option<Spanned<i64>>,
    #[serde(default)]
    pub max_unavailable_per_replset: Option<Spanned<RawUnavailable>>,
    #[serde(default)]
    pub max_wave_size: Option<Spanned<i64>>,
    #[serde(default)]
    pub restart_rate: Option<Spanned<f64>>,
    #[serde(default)]
    pub stop_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub api_calls_per_host: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCanary {
    pub containers: Spanned<i64>,
    #[serde(default)]
    pub soak: Option<Spanned<String>>,
    #[serde(default)]
    pub confirm: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub capacity_qps: Spanned<f64>,
    #[serde(default)]
    pub headroom: Option<Spanned<f64>>,
    #[serde(default)]
    pub adaptive: Option<bool>,
    #[serde(default)]
    pub latency_threshold: Option<Spanned<String>>,
    #[serde(default)]
    pub adapt_interval: Option<Spanned<String>>,
    #[serde(default)]
    pub probe_name: Option<Spanned<String>>,
    #[serde(default)]
    pub grant_at: Option<Spanned<String>>,
    #[serde(default)]
    pub fleet: Option<Spanned<RawFleetResolver>>,
    #[serde(default)]
    pub counter: Option<Spanned<RawCounter>>,
}

/// The resolver's own query counter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCounter {
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    pub key: Spanned<String>,
    #[serde(default)]
    pub dropped_key: Option<Spanned<String>>,
}

/// How the fleet's own resolver library turns one lookup into queries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleetResolver {
    #[serde(default)]
    pub families: Option<Spanned<i64>>,
    #[serde(default)]
    pub search: Option<Vec<String>>,
    #[serde(default)]
    pub ndots: Option<Spanned<i64>>,
    #[serde(default)]
    pub name_dots: Option<Spanned<i64>>,
    #[serde(default)]
    pub names: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    #[serde(default)]
    pub retries: Option<Spanned<i64>>,
    #[serde(default)]
    pub max_failed_fraction: Option<Spanned<f64>>,
    #[serde(default)]
    pub backoff_initial: Option<Spanned<String>>,
    #[serde(default)]
    pub backoff_max: Option<Spanned<String>>,
    #[serde(default)]
    pub stuck_rerestarts: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEstimates {
    #[serde(default)]
    pub restart: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscovery {
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub on_unreachable: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub name: Spanned<String>,
    pub url: Spanned<String>,
    #[serde(default)]
    pub tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub ca: String,
    pub cert: String,
    pub key: String,
}
