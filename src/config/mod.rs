//! The playbook: what to restart, in which order, under which limits. This
//! module owns the schema ([`raw`]) and its validation into a resolved
//! [`Playbook`]; it must never touch the network or a container. Every
//! error names the file, line, column and field (see [`SourceError`]).

pub mod raw;
mod resolve;
mod roles;

use resolve::Resolver;

use crate::source::{SourceError, SourceText};
use raw::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated playbook, ready for planning.
#[derive(Debug, Clone, Serialize)]
pub struct Playbook {
    /// The playbook's name, as reports and the API show it.
    pub name: String,
    /// Free text from the playbook, if any.
    pub description: Option<String>,
    /// The file the playbook was read from.
    pub source: PathBuf,
    /// Label key whose value names a container's group (e.g. `db.cluster`):
    /// dependencies between roles are evaluated within one group.
    pub cluster_label: String,
    /// Label key naming a container's replica set, if any.
    pub replset_label: Option<String>,
    /// Roles in a valid topological order (dependencies first).
    pub roles: Vec<Role>,
    /// Wave and pacing limits (`[limits]`).
    pub limits: Limits,
    /// The canary wave that goes first, alone (`[canary]`), if any.
    pub canary: Option<Canary>,
    /// The DNS budget and how it adapts (`[dns]`).
    pub dns: DnsBudgetConfig,
    /// Retries, backoff and when a run halts (`[policy]`).
    pub policy: Policy,
    /// Figures used only for estimates (`[estimates]`).
    pub estimates: Estimates,
    /// How containers are found on the Docker hosts (`[discovery]`).
    pub discovery: Discovery,
    /// Docker hosts; empty means `DOCKER_HOST` or the local socket.
    pub hosts: Vec<HostSpec>,
    /// rekindle's own resolver.
    pub resolver: ResolverSettings,
    /// Credentials for the MongoDB gates (`[mongo]`), when the servers
    /// require authentication.
    pub mongo: Option<MongoAuth>,
    /// TLS for the MongoDB gates (`[mongo.tls]`).
    pub mongo_tls: Option<MongoTls>,
}

/// TLS to the MongoDB servers: the CA to trust, and a client certificate
/// when the servers ask for one.
#[derive(Debug, Clone, Serialize)]
pub struct MongoTls {
    /// PEM file of the CA that signed the servers' certificates.
    pub ca: PathBuf,
    /// PEM files of a client certificate and its key, for servers that ask for one.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Who the MongoDB gates authenticate as, and where the password is read
/// from — never the password itself (it is read when a run starts, and
/// held in a value that never prints).
#[derive(Debug, Clone, Serialize)]
pub struct MongoAuth {
    /// The user to authenticate as (never empty).
    pub user: String,
    /// Where the password is read when a run starts.
    pub password: PasswordSource,
    /// The database holding the user (default `admin`).
    pub auth_source: String,
}

/// Where the MongoDB password is read from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordSource {
    /// A file readable by its owner (and group) only.
    File(PathBuf),
    /// An environment variable's name.
    Env(String),
}

impl PasswordSource {
    /// Where the password comes from, for messages (never the password).
    pub fn describe(&self) -> String {
        match self {
            PasswordSource::File(p) => format!("password file {}", p.display()),
            PasswordSource::Env(v) => format!("environment variable {v}"),
        }
    }
}

/// A password file must exist and not be readable by every user.
pub(crate) fn check_password_file(p: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", p.display()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(format!(
            "{} is readable by every user (mode {mode:o}): chmod o-r it (600 or 640)",
            p.display()
        ));
    }
    Ok(())
}

/// A role (`[[roles]]`): the containers a selector picks, the roles they wait for, and their health gate.
#[derive(Debug, Clone, Serialize)]
pub struct Role {
    /// Unique name of the role.
    pub name: String,
    /// Labels a container must carry (all of them) to have this role.
    pub selector: BTreeMap<String, String>,
    /// Indexes (into `Playbook::roles`) of the roles this one waits for.
    pub after: Vec<usize>,
    /// DNS lookups one restarted process makes as it starts: its cost in the DNS budget.
    pub startup_lookups: u32,
    /// Expected time from start to healthy (estimates only).
    pub ready_estimate: Duration,
    /// The gate a restarted container must pass.
    pub health: HealthCheck,
}

/// What a health probe checks, per kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum HealthKind {
    /// The container is running (and healthy, if it has a HEALTHCHECK).
    Docker,
    /// A TCP connect to the container's DNS name on a port succeeds.
    Tcp {
        /// Port probed.
        port: u16,
    },
    /// A command run in the container exits with 0.
    Exec {
        /// The argv run in the container.
        command: Vec<String>,
    },
    /// MongoDB's `hello` on a port, classified as the drivers do (SDAM
    /// server types): a container with a replica-set label passes only as
    /// that set's primary or secondary (or arbiter with `arbiters`); one
    /// without, also as a standalone or a mongos. A member without a
    /// replica-set config (RSGhost) or in STARTUP2/RECOVERING (RSOther)
    /// never passes. With `max_lag`, a secondary's `replSetGetStatus` must
    /// show a primary it trails by no more than that.
    Mongo {
        /// Port probed (default 27017).
        port: u16,
        /// A secondary passes only once it trails its primary by no more than this; `None`: `hello` alone.
        #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
        max_lag: Option<Duration>,
        /// MongoDB's rolling order: the set's primary goes last and is
        /// asked to step down (`replSetStepDown`) before its restart, with
        /// this catch-up period for a secondary.
        #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
        step_down: Option<Duration>,
        /// A member that answers as an arbiter passes (it holds no data, so
        /// by default it does not).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        arbiters: bool,
    },
    /// The router gate: a mongos (`hello` says `isdbgrid`) whose replica-set
    /// monitor (`connPoolStats`) has a reachable primary for every replica
    /// set of its cluster. One that answers but fails that for
    /// `stuck_after` is stuck.
    Mongos {
        /// Port probed (default 27017).
        port: u16,
        /// How long a router may answer yet fail the gate before it counts as stuck.
        #[serde(with = "humantime_secs")]
        stuck_after: Duration,
        /// The replica sets it must reach: filled per cluster from the
        /// inventory's replset labels (empty: every set it monitors).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        sets: Vec<String>,
    },
}

/// Durations in JSON output as seconds.
mod humantime_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

mod opt_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

/// A role's health gate: what is probed, and its timings.
#[derive(Debug, Clone, Serialize)]
pub struct HealthCheck {
    /// What a probe checks.
    pub kind: HealthKind,
    /// Timeout of one probe.
    pub timeout: Duration,
    /// Pause between probes of one container.
    pub interval: Duration,
    /// How long after its restart a container may take to pass.
    pub deadline: Duration,
}

/// `max_unavailable_per_replset`: how many members of one replica set may be down at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unavailable {
    /// At most this many members of a set in one wave.
    Count(u32),
    /// No limit: whole replica sets restart together (recovery).
    All,
}

/// Limits on waves and the pace of restarts (`[limits]`).
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// Max containers of one host in one wave.
    pub max_per_host: u32,
    /// Max members of one replica set in one wave.
    pub max_unavailable_per_replset: Unavailable,
    /// Max containers in one wave.
    pub max_wave_size: u32,
    /// Restarts per second across the fleet (0 = unlimited).
    pub restart_rate: f64,
    /// Docker's stop timeout for each restart.
    pub stop_timeout: Duration,
    /// Concurrent stop and start calls per host (the engine's API is the
    /// bottleneck of a busy host; bollard itself sets no cap).
    pub api_calls_per_host: u32,
    /// Concurrent start calls per host: as many as the engine serves at
    /// once (measured: 2), so that a start granted its DNS lookups is
    /// served at once and its process begins when the pacer planned, not
    /// seconds later behind other starts (docs/docker-world.md).
    pub starts_per_host: u32,
    /// Each host's pool: concurrent short calls (inspect, list, exec) and
    /// the idle connections kept open between calls. Stops and starts
    /// hold a connection of their own while they last.
    pub connections_per_host: u32,
    /// Restarts admitted and not yet started, across the fleet: each
    /// stop in flight holds a connection (and a file descriptor) of its
    /// own, whatever the number of hosts.
    pub restarts_in_flight: u32,
}

/// The canary (`[canary]`): a first wave that runs alone before the rest.
#[derive(Debug, Clone, Serialize)]
pub struct Canary {
    /// How many containers go first: one from each group's first root stage in turn.
    pub containers: u32,
    /// Wait after the canary wave before going on.
    pub soak: Duration,
    /// Ask for confirmation after the canary (interactive runs).
    pub confirm: bool,
}

/// rekindle's own resolver: where it asks and how long it keeps answers.
#[derive(Debug, Clone, Serialize)]
pub struct ResolverSettings {
    /// `ip:port` of the nameservers; empty = those of `resolv_conf`.
    pub nameservers: Vec<std::net::SocketAddr>,
    /// The resolv.conf read when `nameservers` is empty (default `/etc/resolv.conf`).
    pub resolv_conf: PathBuf,
    /// Timeout of one query to a nameserver.
    pub timeout: Duration,
    /// Tries per lookup before it fails.
    pub attempts: u32,
    /// Names kept (least recently used evicted first).
    pub cache_size: usize,
    /// Shortest time an answer is cached, whatever its TTL says.
    pub min_ttl: Duration,
    /// Longest time an answer is cached, whatever its TTL says.
    pub max_ttl: Duration,
    /// Cap on how long a "no such name" is believed.
    pub negative_max_ttl: Duration,
    /// How long past its TTL an answer is served when the upstream fails.
    pub serve_stale: Duration,
}

impl Default for ResolverSettings {
    fn default() -> Self {
        ResolverSettings {
            nameservers: vec![],
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            timeout: Duration::from_secs(2),
            attempts: 2,
            cache_size: 10_000,
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(300),
            negative_max_ttl: Duration::from_secs(30),
            serve_stale: Duration::from_secs(300),
        }
    }
}

/// The DNS budget (`[dns]`): what the fleet's resolver can answer, and how much of it restarts may use.
#[derive(Debug, Clone, Serialize)]
pub struct DnsBudgetConfig {
    /// Queries per second the fleet's resolver answers.
    pub capacity_qps: f64,
    /// Fraction of the capacity rekindle's restarts may use, in (0, 1].
    pub headroom: f64,
    /// Move the budget with the resolver's strain (never above the static one).
    pub adaptive: bool,
    /// A probe slower than this is strain.
    pub latency_threshold: Duration,
    /// How often the resolver is probed.
    pub adapt_interval: Duration,
    /// The name probed in real runs (fully qualified, resolvable); without
    /// it a real run paces statically.
    pub probe_name: Option<String>,
    /// How the fleet's resolver library turns a lookup into queries.
    pub fleet: FleetResolver,
    /// The resolver's own counters, if readable.
    pub counter: Option<CounterConfig>,
    /// When a restart's DNS cost is granted.
    pub grant_at: GrantAt,
}

/// When the pacer grants a restart's DNS cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantAt {
    /// Right before the start call, after the stop (the default): the
    /// process's lookups begin within milliseconds of their grant.
    Start,
    /// Before the stop, for the whole restart (how the first version paced;
    /// kept to measure what the split is worth): the lookups begin a stop
    /// time after their grant, whatever that time turns out to be.
    Restart,
}

/// What one lookup by a fleet process costs the resolver, from the
/// settings of the fleet's resolver library (glibc semantics).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FleetResolver {
    /// 1 = A only (e.g. mongod with net.ipv6 off), 2 = A and AAAA (getaddrinfo AF_UNSPEC).
    pub families: u32,
    /// The fleet's resolv.conf search list.
    pub search: Vec<String>,
    /// The fleet's resolv.conf ndots.
    pub ndots: u32,
    /// Dots in the names the fleet looks up ("mongo-0.rs0.dc1.example.com" has 4).
    pub name_dots: u32,
    /// Where names resolve: as written (`absolute`), or under the first
    /// search domain (`search`).
    pub names: FleetNames,
    /// A trailing dot on the names: search never applies.
    pub trailing_dot: bool,
}

/// Where the fleet's names resolve.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FleetNames {
    /// As written (search domains glibc tries first find nothing).
    Absolute,
    /// Under the first search domain.
    Search,
}

impl Default for FleetResolver {
    fn default() -> Self {
        FleetResolver {
            families: 2,
            search: vec![],
            ndots: 1,
            name_dots: 3,
            names: FleetNames::Absolute,
            trailing_dot: false,
        }
    }
}

impl FleetResolver {
    /// Names tried per lookup: glibc tries the name as written first when it
    /// has at least `ndots` dots, else the search list first.
    pub fn names_tried(&self) -> u32 {
        let search = self.search.len() as u32;
        if self.trailing_dot || search == 0 {
            return 1;
        }
        let as_is_first = self.name_dots >= self.ndots;
        match (self.names, as_is_first) {
            (FleetNames::Absolute, true) => 1,
            (FleetNames::Absolute, false) => search + 1,
            (FleetNames::Search, true) => 2,
            (FleetNames::Search, false) => 1,
        }
    }

    /// Queries the resolver receives per lookup.
    pub fn queries_per_lookup(&self) -> u32 {
        self.families * self.names_tried()
    }
}

impl Playbook {
    /// What restarting one container of `role` costs the resolver: its
    /// startup lookups × the queries each lookup sends.
    pub fn restart_queries(&self, role: usize) -> u32 {
        self.roles[role]
            .startup_lookups
            .saturating_mul(self.dns.fleet.queries_per_lookup())
    }
}

/// Where a resolver's counters are read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum CounterSource {
    /// argv of a command that prints `key=value` or `key value` lines.
    Command(Vec<String>),
    /// `http://` or `https://host:port/path` serving Prometheus text.
    Url(String),
}

/// Where the resolver's own counters are read, and which keys.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CounterConfig {
    /// Where the counters are read.
    pub source: CounterSource,
    /// Queries received (e.g. unbound's `total.num.queries`).
    pub key: String,
    /// Queries dropped (e.g. `total.num.queries_ip_ratelimited`): the
    /// strongest signal, when the resolver has one.
    pub dropped_key: Option<String>,
}

impl DnsBudgetConfig {
    /// The query rate restarts may cause.
    pub fn budget_qps(&self) -> f64 {
        self.capacity_qps * self.headroom
    }
}

/// Retries and failure policy (`[policy]`).
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// Restarts of one container before it counts as failed.
    pub retries: u32,
    /// Failed fraction of a wave above which the run halts (0.0 to 1.0).
    pub max_failed_fraction: f64,
    /// First pause between retries of one container (doubles up to `backoff_max`, with jitter).
    pub backoff_initial: Duration,
    /// Longest pause between retries of one container.
    pub backoff_max: Duration,
    /// Extra restarts of a container found stuck (up but disconnected).
    pub stuck_rerestarts: u32,
    /// What a run restarts unless its command says otherwise.
    pub only: Only,
    /// With [`Only::Broken`]: a router (a role that starts `after` others)
    /// that passes its gate restarts too when members of its cluster do.
    pub restart_routers_with_members: bool,
}

/// What a run restarts (`[policy] only`, `--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Only {
    /// Every container its roles select.
    #[default]
    All,
    /// What a survey finds broken, down or silent, plus what the rules
    /// require (`survey::select`).
    Broken,
}

impl std::str::FromStr for Only {
    type Err = String;
    fn from_str(s: &str) -> Result<Only, String> {
        match s {
            "all" => Ok(Only::All),
            "broken" => Ok(Only::Broken),
            other => Err(format!("expected \"all\" or \"broken\", found {other:?}")),
        }
    }
}

/// Figures used only for estimates (`[estimates]`).
#[derive(Debug, Clone, Serialize)]
pub struct Estimates {
    /// Expected time of one Docker restart call.
    pub restart: Duration,
}

/// What discovery does when a Docker host does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnreachable {
    /// Report the host by name and plan the rest.
    Warn,
    /// Refuse to go on.
    Fail,
}

/// How containers are found (`[discovery]`).
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// Labels every container must carry (ANDed with each role's selector).
    pub labels: BTreeMap<String, String>,
    /// Per-host timeout of discovery.
    pub timeout: Duration,
    /// What to do when a host does not answer.
    pub on_unreachable: OnUnreachable,
}

/// A Docker host (`[[hosts]]`).
#[derive(Debug, Clone, Serialize)]
pub struct HostSpec {
    /// A unique name (reports, errors).
    pub name: String,
    /// The engine's address: `unix://`, `tcp://`, `http://` or `https://`.
    pub url: String,
    /// Paths for TLS to the engine, if any.
    pub tls: Option<TlsPaths>,
    /// Only containers carrying these labels belong to this host entry
    /// (lets several entries share one engine, e.g. a node's slice of it).
    pub labels: BTreeMap<String, String>,
}

/// PEM files for TLS to a Docker engine.
#[derive(Debug, Clone, Serialize)]
pub struct TlsPaths {
    /// The CA that signed the engine's certificate.
    pub ca: PathBuf,
    /// The client certificate.
    pub cert: PathBuf,
    /// The client certificate's key.
    pub key: PathBuf,
}

impl Playbook {
    /// Reads and validates a playbook file.
    pub fn load(path: &Path) -> Result<Self, SourceError> {
        let src = SourceText::read(path)?;
        Self::parse(&src)
    }

    /// Validates a playbook held in memory.
    pub fn parse(src: &SourceText) -> Result<Self, SourceError> {
        let raw: RawPlaybook = toml::from_str(&src.text).map_err(|e| src.toml_error(&e))?;
        Resolver { src }.resolve(raw)
    }

    /// Index of the role named `name` in [`Playbook::roles`], if there is one.
    pub fn role_index(&self, name: &str) -> Option<usize> {
        self.roles.iter().position(|r| r.name == name)
    }
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            kind: HealthKind::Docker,
            timeout: Duration::from_secs(5),
            interval: Duration::from_secs(1),
            deadline: Duration::from_secs(120),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_per_host: 4,
            max_unavailable_per_replset: Unavailable::Count(1),
            max_wave_size: 500,
            restart_rate: 0.0,
            stop_timeout: Duration::from_secs(30),
            api_calls_per_host: 16,
            starts_per_host: 2,
            connections_per_host: 2,
            restarts_in_flight: 4096,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            retries: 3,
            max_failed_fraction: 0.0,
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            stuck_rerestarts: 2,
            only: Only::All,
            restart_routers_with_members: false,
        }
    }
}

#[cfg(test)]
mod fleet_cost_tests {
    use super::*;

    fn fleet(
        families: u32,
        search: usize,
        ndots: u32,
        name_dots: u32,
        names: FleetNames,
    ) -> FleetResolver {
        FleetResolver {
            families,
            search: (0..search).map(|i| format!("s{i}.example")).collect(),
            ndots,
            name_dots,
            names,
            trailing_dot: false,
        }
    }

    #[test]
    fn queries_per_lookup_follow_glibc() {
        // FQDN-looking names, ndots 1: as written, one query per family.
        assert_eq!(
            fleet(1, 3, 1, 4, FleetNames::Absolute).queries_per_lookup(),
            1
        );
        assert_eq!(
            fleet(2, 3, 1, 4, FleetNames::Absolute).queries_per_lookup(),
            2
        );
        // Kubernetes-style ndots 5 with 3 search domains: an absolute name
        // with 2 dots walks the whole search list first: (3 + 1) × 2 = 8.
        assert_eq!(
            fleet(2, 3, 5, 2, FleetNames::Absolute).queries_per_lookup(),
            8
        );
        // Short names found under the first search domain.
        assert_eq!(
            fleet(2, 3, 5, 0, FleetNames::Search).queries_per_lookup(),
            2
        );
        // Enough dots to be tried as written first, but found under search.
        assert_eq!(
            fleet(1, 2, 1, 1, FleetNames::Search).queries_per_lookup(),
            2
        );
        // No search list: one name.
        assert_eq!(
            fleet(2, 0, 5, 0, FleetNames::Absolute).queries_per_lookup(),
            2
        );
    }
}
