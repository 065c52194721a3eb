//! The playbook exactly as written (stage one of two): serde structures with
//! spans, unknown keys rejected. No validation beyond types lives here.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The whole playbook file as written (validated into [`super::Playbook`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlaybook {
    /// `name`: the playbook's name.
    pub name: Spanned<String>,
    /// `description`: free text.
    #[serde(default)]
    pub description: Option<String>,
    /// `[groups]`: the label keys naming clusters and replica sets.
    pub groups: Spanned<RawGroups>,
    /// `[[roles]]`, in file order.
    pub roles: Spanned<Vec<Spanned<RawRole>>>,
    /// `[limits]`: wave limits and the restart rate.
    #[serde(default)]
    pub limits: Option<Spanned<RawLimits>>,
    /// `[canary]`: a first wave that runs alone.
    #[serde(default)]
    pub canary: Option<Spanned<RawCanary>>,
    /// `[dns]`: the DNS budget.
    pub dns: Spanned<RawDns>,
    /// `[policy]`: retries and halting.
    #[serde(default)]
    pub policy: Option<Spanned<RawPolicy>>,
    /// `[estimates]`: figures for `plan`'s estimates.
    #[serde(default)]
    pub estimates: Option<Spanned<RawEstimates>>,
    /// `[discovery]`: labels every container carries, and unreachable hosts.
    #[serde(default)]
    pub discovery: Option<Spanned<RawDiscovery>>,
    /// `[[hosts]]`: the Docker hosts.
    #[serde(default)]
    pub hosts: Option<Vec<Spanned<RawHost>>>,
    /// `[resolver]`: rekindle's own resolver.
    #[serde(default)]
    pub resolver: Option<Spanned<RawResolver>>,
    /// `[mongo]`: credentials and TLS for the MongoDB gates.
    #[serde(default)]
    pub mongo: Option<Spanned<RawMongo>>,
}

/// How the MongoDB gates authenticate. The password itself has no key:
/// only where to read it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMongo {
    /// `user`: who to authenticate as.
    #[serde(default)]
    pub user: Option<Spanned<String>>,
    /// `password_file`: a file whose first line is the password.
    #[serde(default)]
    pub password_file: Option<Spanned<String>>,
    /// `password_env`: the name of a variable holding the password.
    #[serde(default)]
    pub password_env: Option<Spanned<String>>,
    /// Caught to say why it is refused (never the password in the playbook).
    #[serde(default)]
    pub password: Option<Spanned<toml::Value>>,
    /// `auth_source`: the database holding the user (default `admin`).
    #[serde(default)]
    pub auth_source: Option<Spanned<String>>,
    /// `[mongo.tls]`: TLS to the servers.
    #[serde(default)]
    pub tls: Option<Spanned<RawMongoTls>>,
}

/// `[mongo.tls]` as written (validated into [`super::MongoTls`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMongoTls {
    /// `ca`: PEM file of the CA to trust.
    pub ca: Spanned<String>,
    /// `cert`: PEM file of a client certificate.
    #[serde(default)]
    pub cert: Option<Spanned<String>>,
    /// `key`: PEM file of the client certificate's key.
    #[serde(default)]
    pub key: Option<Spanned<String>>,
}

/// rekindle's own resolver (health probes, host names).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResolver {
    /// `nameservers`: `ip` or `ip:port` of each nameserver.
    #[serde(default)]
    pub nameservers: Option<Vec<Spanned<String>>>,
    /// `resolv_conf`: the file read when there are no `nameservers`.
    #[serde(default)]
    pub resolv_conf: Option<String>,
    /// `timeout`: of one query (a duration).
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    /// `attempts`: tries per lookup.
    #[serde(default)]
    pub attempts: Option<Spanned<i64>>,
    /// `cache_size`: names kept.
    #[serde(default)]
    pub cache_size: Option<Spanned<i64>>,
    /// `min_ttl`: shortest time an answer is cached (a duration).
    #[serde(default)]
    pub min_ttl: Option<Spanned<String>>,
    /// `max_ttl`: longest time an answer is cached (a duration).
    #[serde(default)]
    pub max_ttl: Option<Spanned<String>>,
    /// `negative_max_ttl`: cap on how long a "no such name" is believed (a duration).
    #[serde(default)]
    pub negative_max_ttl: Option<Spanned<String>>,
    /// `serve_stale`: how long past its TTL an answer is served when the upstream fails (a duration).
    #[serde(default)]
    pub serve_stale: Option<Spanned<String>>,
}

/// `[groups]`: the label keys that group containers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroups {
    /// `cluster`: label key naming a container's group.
    pub cluster: Spanned<String>,
    /// `replset`: label key naming a container's replica set.
    #[serde(default)]
    pub replset: Option<Spanned<String>>,
}

/// One `[[roles]]` entry as written (validated into [`super::Role`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    /// `name`: unique role name.
    pub name: Spanned<String>,
    /// `selector`: labels a container must carry (all of them) to have this role.
    pub selector: Spanned<BTreeMap<String, Spanned<String>>>,
    /// `after`: names of the roles this one waits for.
    #[serde(default)]
    pub after: Option<Spanned<Vec<Spanned<String>>>>,
    /// `startup_lookups`: DNS lookups one restarted process makes as it starts.
    pub startup_lookups: Spanned<i64>,
    /// `ready_estimate`: expected time from start to healthy (a duration).
    #[serde(default)]
    pub ready_estimate: Option<Spanned<String>>,
    /// `health`: the role's health gate.
    #[serde(default)]
    pub health: Option<Spanned<RawHealth>>,
}

/// A role's `health` table as written (validated into [`super::HealthCheck`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// `kind`: `docker`, `tcp`, `exec`, `mongo` or `mongos`.
    pub kind: Spanned<String>,
    /// `port`: for `tcp`, `mongo` and `mongos`.
    #[serde(default)]
    pub port: Option<Spanned<i64>>,
    /// `command`: for `exec`, the argv run in the container.
    #[serde(default)]
    pub command: Option<Spanned<Vec<String>>>,
    /// `timeout`: of one probe (a duration).
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    /// `interval`: pause between probes (a duration).
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    /// `deadline`: time a restarted container has to pass (a duration).
    #[serde(default)]
    pub deadline: Option<Spanned<String>>,
    /// `max_lag`: for `mongo`, how far a secondary may trail its primary (a duration).
    #[serde(default)]
    pub max_lag: Option<Spanned<String>>,
    /// `step_down`: for `mongo`, the catch-up period of a primary's step-down (a duration).
    #[serde(default)]
    pub step_down: Option<Spanned<String>>,
    /// `stuck_after`: for `mongos`, how long a router may fail the gate before it is stuck (a duration).
    #[serde(default)]
    pub stuck_after: Option<Spanned<String>>,
    /// `arbiters`: for `mongo`, whether a member that answers as an
    /// arbiter passes (default false).
    #[serde(default)]
    pub arbiters: Option<Spanned<bool>>,
}

/// `max_unavailable_per_replset`: a count or `"all"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawUnavailable {
    /// A number of members.
    Count(i64),
    /// A word; only `"all"` is valid.
    Word(String),
}

/// `[limits]` as written (validated into [`super::Limits`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// `max_per_host`: max containers of one host in one wave.
    #[serde(default)]
    pub max_per_host: Option<Spanned<i64>>,
    /// `max_unavailable_per_replset`: max members of one replica set in one wave.
    #[serde(default)]
    pub max_unavailable_per_replset: Option<Spanned<RawUnavailable>>,
    /// `max_wave_size`: max containers in one wave.
    #[serde(default)]
    pub max_wave_size: Option<Spanned<i64>>,
    /// `restart_rate`: restarts per second across the fleet (0 = unlimited).
    #[serde(default)]
    pub restart_rate: Option<Spanned<f64>>,
    /// `stop_timeout`: Docker's stop timeout for each restart (a duration).
    #[serde(default)]
    pub stop_timeout: Option<Spanned<String>>,
    /// `starts_per_host`: concurrent start calls per host.
    #[serde(default)]
    pub starts_per_host: Option<Spanned<i64>>,
    /// `api_calls_per_host`: concurrent stop and start calls per host.
    #[serde(default)]
    pub api_calls_per_host: Option<Spanned<i64>>,
    /// `connections_per_host`: each host's pool of connections for the
    /// other calls (and the idle ones kept).
    #[serde(default)]
    pub connections_per_host: Option<Spanned<i64>>,
    /// `restarts_in_flight`: restarts admitted and not yet started,
    /// across the fleet.
    #[serde(default)]
    pub restarts_in_flight: Option<Spanned<i64>>,
}

/// `[canary]` as written (validated into [`super::Canary`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCanary {
    /// `containers`: how many containers go first.
    pub containers: Spanned<i64>,
    /// `soak`: wait after the canary wave (a duration).
    #[serde(default)]
    pub soak: Option<Spanned<String>>,
    /// `confirm`: ask for confirmation after the canary.
    #[serde(default)]
    pub confirm: Option<bool>,
}

/// `[dns]` as written (validated into [`super::DnsBudgetConfig`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    /// `capacity_qps`: queries per second the fleet's resolver answers.
    pub capacity_qps: Spanned<f64>,
    /// `headroom`: fraction of the capacity restarts may use.
    #[serde(default)]
    pub headroom: Option<Spanned<f64>>,
    /// `adaptive`: move the budget with the resolver's strain.
    #[serde(default)]
    pub adaptive: Option<bool>,
    /// `latency_threshold`: a probe slower than this is strain (a duration).
    #[serde(default)]
    pub latency_threshold: Option<Spanned<String>>,
    /// `adapt_interval`: how often the resolver is probed (a duration).
    #[serde(default)]
    pub adapt_interval: Option<Spanned<String>>,
    /// `probe_name`: the name probed in real runs.
    #[serde(default)]
    pub probe_name: Option<Spanned<String>>,
    /// `grant_at`: `"start"` or `"restart"`, when a restart's DNS cost is granted.
    #[serde(default)]
    pub grant_at: Option<Spanned<String>>,
    /// `[dns.fleet]`: the fleet's resolver library.
    #[serde(default)]
    pub fleet: Option<Spanned<RawFleetResolver>>,
    /// `[dns.counter]`: the resolver's own counters.
    #[serde(default)]
    pub counter: Option<Spanned<RawCounter>>,
}

/// The resolver's own query counter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCounter {
    /// `command`: argv of a command that prints the counters.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// `url`: an `http://` or `https://` address serving Prometheus text.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// `key`: the counter of queries received.
    pub key: Spanned<String>,
    /// `dropped_key`: the counter of queries dropped.
    #[serde(default)]
    pub dropped_key: Option<Spanned<String>>,
}

/// How the fleet's own resolver library turns one lookup into queries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleetResolver {
    /// `families`: 1 (A only) or 2 (A and AAAA).
    #[serde(default)]
    pub families: Option<Spanned<i64>>,
    /// `search`: the fleet's resolv.conf search list.
    #[serde(default)]
    pub search: Option<Vec<String>>,
    /// `ndots`: the fleet's resolv.conf ndots.
    #[serde(default)]
    pub ndots: Option<Spanned<i64>>,
    /// `name_dots`: dots in the names the fleet looks up.
    #[serde(default)]
    pub name_dots: Option<Spanned<i64>>,
    /// `names`: `"absolute"` or `"search"`, where the names resolve.
    #[serde(default)]
    pub names: Option<Spanned<String>>,
}

/// `[policy]` as written (validated into [`super::Policy`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// `retries`: restarts of one container before it counts as failed.
    #[serde(default)]
    pub retries: Option<Spanned<i64>>,
    /// `max_failed_fraction`: failed fraction of a wave above which the run halts.
    #[serde(default)]
    pub max_failed_fraction: Option<Spanned<f64>>,
    /// `backoff_initial`: first pause between retries (a duration).
    #[serde(default)]
    pub backoff_initial: Option<Spanned<String>>,
    /// `backoff_max`: longest pause between retries (a duration).
    #[serde(default)]
    pub backoff_max: Option<Spanned<String>>,
    /// `stuck_rerestarts`: extra restarts of a container found stuck.
    #[serde(default)]
    pub stuck_rerestarts: Option<Spanned<i64>>,
    /// `only`: what a run restarts unless told otherwise (`"all"` or `"broken"`).
    #[serde(default)]
    pub only: Option<Spanned<String>>,
    /// `restart_routers_with_members`: with `only = "broken"`, also restart
    /// a router that passes its gate when members of its cluster restart.
    #[serde(default)]
    pub restart_routers_with_members: Option<bool>,
}

/// `[estimates]` as written (validated into [`super::Estimates`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEstimates {
    /// `restart`: expected time of one Docker restart call (a duration).
    #[serde(default)]
    pub restart: Option<Spanned<String>>,
}

/// `[discovery]` as written (validated into [`super::Discovery`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscovery {
    /// `labels`: labels every container must carry.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// `timeout`: per-host timeout of discovery (a duration).
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    /// `on_unreachable`: `"warn"` or `"fail"`.
    #[serde(default)]
    pub on_unreachable: Option<Spanned<String>>,
}

/// One `[[hosts]]` entry as written (validated into [`super::HostSpec`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// `name`: a unique name.
    pub name: Spanned<String>,
    /// `url`: the engine's address.
    pub url: Spanned<String>,
    /// `tls`: `{ ca, cert, key }` paths.
    #[serde(default)]
    pub tls: Option<Spanned<RawTls>>,
    /// `labels`: only containers carrying these labels belong to this entry.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// A host's `tls` table as written (validated into [`super::TlsPaths`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// `ca`: PEM file of the CA that signed the engine's certificate.
    pub ca: String,
    /// `cert`: PEM file of the client certificate.
    pub cert: String,
    /// `key`: PEM file of the client certificate's key.
    pub key: String,
}
