//! The playbook: what to restart, in which order, under which limits. This
//! module owns the schema ([`raw`]) and its validation into a resolved
//! [`Playbook`]; it must never touch the network or a container. Every
//! error names the file, line, column and field (see [`SourceError`]).

pub mod raw;

use crate::dag::{topo_order, Cycle};
use crate::duration::parse_duration;
use crate::source::{SourceError, SourceText};
use raw::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

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

struct Resolver<'a> {
    src: &'a SourceText,
}

impl Resolver<'_> {
    fn err<T>(
        &self,
        spanned: &Spanned<T>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) -> SourceError {
        self.src.error(spanned.span(), field, msg)
    }

    fn duration(&self, s: &Spanned<String>, field: &str) -> Result<Duration, SourceError> {
        parse_duration(s.get_ref()).map_err(|m| self.err(s, field, m.to_string()))
    }

    fn opt_duration(
        &self,
        s: &Option<Spanned<String>>,
        field: &str,
        default: Duration,
    ) -> Result<Duration, SourceError> {
        s.as_ref()
            .map(|s| self.duration(s, field))
            .transpose()
            .map(|d| d.unwrap_or(default))
    }

    fn count(&self, v: &Spanned<i64>, field: &str, min: i64, max: i64) -> Result<i64, SourceError> {
        let x = *v.get_ref();
        if x < min || x > max {
            return Err(self.err(
                v,
                field,
                format!("expected an integer from {min} to {max}, found {x}"),
            ));
        }
        Ok(x)
    }

    fn opt_count(
        &self,
        v: &Option<Spanned<i64>>,
        field: &str,
        min: i64,
        max: i64,
        default: i64,
    ) -> Result<i64, SourceError> {
        v.as_ref()
            .map(|v| self.count(v, field, min, max))
            .transpose()
            .map(|x| x.unwrap_or(default))
    }

    fn fraction(
        &self,
        v: &Spanned<f64>,
        field: &str,
        min_exclusive: bool,
    ) -> Result<f64, SourceError> {
        let x = *v.get_ref();
        let ok = x.is_finite() && x <= 1.0 && if min_exclusive { x > 0.0 } else { x >= 0.0 };
        if !ok {
            let range = if min_exclusive {
                "greater than 0 and at most 1"
            } else {
                "from 0 to 1"
            };
            return Err(self.err(v, field, format!("expected a fraction {range}, found {x}")));
        }
        Ok(x)
    }

    fn non_empty(&self, s: &Spanned<String>, field: &str) -> Result<String, SourceError> {
        let v = s.get_ref().trim();
        if v.is_empty() {
            return Err(self.err(s, field, "must not be empty"));
        }
        Ok(v.to_string())
    }

    /// The whole playbook: each section resolved by its own method.
    fn resolve(&self, raw: RawPlaybook) -> Result<Playbook, SourceError> {
        let name = self.non_empty(&raw.name, "name")?;
        let groups = raw.groups.get_ref();
        let cluster_label = self.non_empty(&groups.cluster, "groups.cluster")?;
        let replset_label = groups
            .replset
            .as_ref()
            .map(|r| self.non_empty(r, "groups.replset"))
            .transpose()?;

        let roles = self.roles(&raw.roles)?;
        let limits = self.limits(raw.limits.as_ref())?;
        let canary = self.canary(raw.canary.as_ref())?;
        let dns = self.dns(raw.dns.get_ref())?;
        let policy = self.policy(raw.policy.as_ref().map(|p| p.get_ref()))?;
        let estimates = self.estimates(raw.estimates.as_ref())?;
        let discovery = self.discovery(raw.discovery.as_ref().map(|d| d.get_ref()))?;
        let hosts = self.hosts(raw.hosts.as_deref().unwrap_or(&[]))?;
        let resolver = self.resolver(raw.resolver.as_ref().map(|r| r.get_ref()))?;
        Ok(Playbook {
            name,
            description: raw.description,
            source: self.src.file.clone(),
            cluster_label,
            replset_label,
            roles,
            limits,
            canary,
            dns,
            policy,
            estimates,
            discovery,
            hosts,
            resolver,
            mongo: match &raw.mongo {
                Some(m) => self.mongo(m)?,
                None => None,
            },
            mongo_tls: raw
                .mongo
                .as_ref()
                .and_then(|m| m.get_ref().tls.as_ref())
                .map(|t| self.mongo_tls(t))
                .transpose()?,
        })
    }

    /// `[canary]`: a first small wave, and how long it soaks.
    fn canary(&self, c: Option<&Spanned<raw::RawCanary>>) -> Result<Option<Canary>, SourceError> {
        c.map(|c| {
            let c = c.get_ref();
            Ok::<_, SourceError>(Canary {
                containers: self.count(&c.containers, "canary.containers", 1, 1_000_000)? as u32,
                soak: self.opt_duration(&c.soak, "canary.soak", Duration::ZERO)?,
                confirm: c.confirm.unwrap_or(false),
            })
        })
        .transpose()
    }

    /// `[dns]`: the resolver's capacity, the budget under it, how it adapts.
    fn dns(&self, d: &raw::RawDns) -> Result<DnsBudgetConfig, SourceError> {
        let cap = *d.capacity_qps.get_ref();
        if !(cap.is_finite() && cap > 0.0) {
            return Err(self.err(
                &d.capacity_qps,
                "dns.capacity_qps",
                format!("expected a positive number of queries per second, found {cap}"),
            ));
        }
        let headroom = d
            .headroom
            .as_ref()
            .map(|h| self.fraction(h, "dns.headroom", true))
            .transpose()?
            .unwrap_or(0.8);
        let probe_name = match &d.probe_name {
            Some(n) if n.get_ref().trim().is_empty() => {
                return Err(self.err(
                    n,
                    "dns.probe_name",
                    "expected a resolvable name, found an empty string",
                ))
            }
            Some(n) => Some(n.get_ref().clone()),
            None => None,
        };
        let fleet = self.dns_fleet(d.fleet.as_ref().map(|f| f.get_ref()))?;
        let counter = self.dns_counter(d.counter.as_ref())?;
        Ok(DnsBudgetConfig {
            counter,
            fleet,
            capacity_qps: cap,
            headroom,
            adaptive: d.adaptive.unwrap_or(true),
            latency_threshold: self.opt_duration(
                &d.latency_threshold,
                "dns.latency_threshold",
                Duration::from_millis(500),
            )?,
            adapt_interval: self.opt_duration(
                &d.adapt_interval,
                "dns.adapt_interval",
                Duration::from_secs(1),
            )?,
            probe_name,
            grant_at: match d.grant_at.as_ref() {
                None => GrantAt::Start,
                Some(s) => match s.get_ref().as_str() {
                    "start" => GrantAt::Start,
                    "restart" => GrantAt::Restart,
                    other => {
                        return Err(self.err(
                            s,
                            "dns.grant_at",
                            format!("expected \"start\" or \"restart\", found {other:?}"),
                        ))
                    }
                },
            },
        })
    }

    /// `[dns.fleet]`: how the fleet's processes turn a lookup into queries.
    fn dns_fleet(&self, f: Option<&raw::RawFleetResolver>) -> Result<FleetResolver, SourceError> {
        let fleet = match f {
            None => FleetResolver::default(),
            Some(f) => {
                let dflt = FleetResolver::default();
                let names = match f.names.as_ref() {
                    None => dflt.names,
                    Some(n) => match n.get_ref().as_str() {
                        "absolute" => FleetNames::Absolute,
                        "search" => FleetNames::Search,
                        other => {
                            return Err(self.err(
                                n,
                                "dns.fleet.names",
                                format!("expected \"absolute\" or \"search\", found {other:?}"),
                            ))
                        }
                    },
                };
                FleetResolver {
                    families: self.opt_count(
                        &f.families,
                        "dns.fleet.families",
                        1,
                        2,
                        dflt.families as i64,
                    )? as u32,
                    search: f.search.clone().unwrap_or_default(),
                    ndots: self.opt_count(&f.ndots, "dns.fleet.ndots", 0, 15, dflt.ndots as i64)?
                        as u32,
                    name_dots: self.opt_count(
                        &f.name_dots,
                        "dns.fleet.name_dots",
                        0,
                        127,
                        dflt.name_dots as i64,
                    )? as u32,
                    names,
                    trailing_dot: false,
                }
            }
        };
        Ok(fleet)
    }

    /// `[dns.counter]`: where the resolver's own counters are read.
    fn dns_counter(
        &self,
        counter: Option<&Spanned<raw::RawCounter>>,
    ) -> Result<Option<CounterConfig>, SourceError> {
        let counter = match counter {
            None => None,
            Some(c) => {
                let cr = c.get_ref();
                let source = match (&cr.command, &cr.url) {
                    (Some(cmd), None) if !cmd.is_empty() => CounterSource::Command(cmd.clone()),
                    (None, Some(u))
                        if ["http://", "https://"]
                            .iter()
                            .any(|p| u.get_ref().starts_with(p))
                            && crate::http::Url::parse(u.get_ref()).is_ok() =>
                    {
                        CounterSource::Url(u.get_ref().clone())
                    }
                    (None, Some(u)) => {
                        return Err(self.err(
                            u,
                            "dns.counter.url",
                            format!(
                                "expected an http:// or https:// URL, found {:?}",
                                u.get_ref()
                            ),
                        ))
                    }
                    _ => {
                        return Err(self.err(
                            c,
                            "dns.counter",
                            "expected exactly one of `command` (a non-empty list) or `url`",
                        ))
                    }
                };
                let dropped_key = cr
                    .dropped_key
                    .as_ref()
                    .map(|k| self.non_empty(k, "dns.counter.dropped_key"))
                    .transpose()?;
                Some(CounterConfig {
                    source,
                    key: self.non_empty(&cr.key, "dns.counter.key")?,
                    dropped_key,
                })
            }
        };
        Ok(counter)
    }

    /// `[policy]`: retries, backoff, the failure threshold, stuck re-restarts.
    fn policy(&self, p: Option<&raw::RawPolicy>) -> Result<Policy, SourceError> {
        let policy = match p {
            None => Policy::default(),
            Some(p) => {
                let d = Policy::default();
                let policy = Policy {
                    retries: self.opt_count(
                        &p.retries,
                        "policy.retries",
                        0,
                        100,
                        d.retries as i64,
                    )? as u32,
                    max_failed_fraction: p
                        .max_failed_fraction
                        .as_ref()
                        .map(|f| self.fraction(f, "policy.max_failed_fraction", false))
                        .transpose()?
                        .unwrap_or(d.max_failed_fraction),
                    backoff_initial: self.opt_duration(
                        &p.backoff_initial,
                        "policy.backoff_initial",
                        d.backoff_initial,
                    )?,
                    backoff_max: self.opt_duration(
                        &p.backoff_max,
                        "policy.backoff_max",
                        d.backoff_max,
                    )?,
                    stuck_rerestarts: self.opt_count(
                        &p.stuck_rerestarts,
                        "policy.stuck_rerestarts",
                        0,
                        100,
                        d.stuck_rerestarts as i64,
                    )? as u32,
                    only: match &p.only {
                        None => d.only,
                        Some(o) => o
                            .get_ref()
                            .parse()
                            .map_err(|why: String| self.err(o, "policy.only", why))?,
                    },
                    restart_routers_with_members: p
                        .restart_routers_with_members
                        .unwrap_or(d.restart_routers_with_members),
                };
                if policy.backoff_max < policy.backoff_initial {
                    // Name the value the user wrote: the maximum when it is
                    // set, else the initial pause that passes the default.
                    return Err(match (&p.backoff_max, &p.backoff_initial) {
                        (Some(max), _) => self.err(
                            max,
                            "policy.backoff_max",
                            "must be at least policy.backoff_initial",
                        ),
                        (None, Some(initial)) => self.err(
                            initial,
                            "policy.backoff_initial",
                            format!(
                                "must be at most policy.backoff_max ({} s by default; set it too)",
                                d.backoff_max.as_secs()
                            ),
                        ),
                        (None, None) => unreachable!("the defaults are ordered"),
                    });
                }
                policy
            }
        };
        Ok(policy)
    }

    /// `[estimates]`: what the plan's estimates assume.
    fn estimates(&self, e: Option<&Spanned<raw::RawEstimates>>) -> Result<Estimates, SourceError> {
        let estimates = Estimates {
            restart: self.opt_duration(
                &e.and_then(|e| e.get_ref().restart.clone()),
                "estimates.restart",
                Duration::from_secs(2),
            )?,
        };
        Ok(estimates)
    }

    /// `[discovery]`: which containers, how long to wait for a host, what an
    /// unreachable one means.
    fn discovery(&self, d: Option<&raw::RawDiscovery>) -> Result<Discovery, SourceError> {
        let discovery = match d {
            None => Discovery {
                labels: BTreeMap::new(),
                timeout: Duration::from_secs(10),
                on_unreachable: OnUnreachable::Warn,
            },
            Some(d) => Discovery {
                labels: d.labels.clone().unwrap_or_default(),
                timeout: self.opt_duration(
                    &d.timeout,
                    "discovery.timeout",
                    Duration::from_secs(10),
                )?,
                on_unreachable: match d.on_unreachable.as_ref() {
                    None => OnUnreachable::Warn,
                    Some(s) => match s.get_ref().as_str() {
                        "warn" => OnUnreachable::Warn,
                        "fail" => OnUnreachable::Fail,
                        other => {
                            return Err(self.err(
                                s,
                                "discovery.on_unreachable",
                                format!("expected \"warn\" or \"fail\", found {other:?}"),
                            ))
                        }
                    },
                },
            },
        };
        Ok(discovery)
    }

    /// `[resolver]`: rekindle's own resolver (nameservers, timeouts, cache).
    fn resolver(&self, r: Option<&raw::RawResolver>) -> Result<ResolverSettings, SourceError> {
        let resolver = match r {
            None => ResolverSettings::default(),
            Some(r) => {
                let d = ResolverSettings::default();
                let mut nameservers = Vec::new();
                for (i, ns) in r.nameservers.iter().flatten().enumerate() {
                    let text = ns.get_ref();
                    let addr = text.parse::<std::net::SocketAddr>().or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| std::net::SocketAddr::new(ip, 53))).map_err(|_| {
                    self.err(
                        ns,
                        format!("resolver.nameservers[{i}]"),
                        format!("expected an IP address with an optional port (\"10.0.0.2\", \"127.0.0.1:5353\"), found {text:?}"),
                    )
                })?;
                    nameservers.push(addr);
                }
                let settings = ResolverSettings {
                    nameservers,
                    resolv_conf: r
                        .resolv_conf
                        .clone()
                        .map(PathBuf::from)
                        .unwrap_or(d.resolv_conf.clone()),
                    timeout: self.opt_duration(&r.timeout, "resolver.timeout", d.timeout)?,
                    attempts: self.opt_count(
                        &r.attempts,
                        "resolver.attempts",
                        1,
                        10,
                        d.attempts as i64,
                    )? as u32,
                    cache_size: self.opt_count(
                        &r.cache_size,
                        "resolver.cache_size",
                        1,
                        10_000_000,
                        d.cache_size as i64,
                    )? as usize,
                    min_ttl: self.opt_duration(&r.min_ttl, "resolver.min_ttl", d.min_ttl)?,
                    max_ttl: self.opt_duration(&r.max_ttl, "resolver.max_ttl", d.max_ttl)?,
                    negative_max_ttl: self.opt_duration(
                        &r.negative_max_ttl,
                        "resolver.negative_max_ttl",
                        d.negative_max_ttl,
                    )?,
                    serve_stale: self.opt_duration(
                        &r.serve_stale,
                        "resolver.serve_stale",
                        d.serve_stale,
                    )?,
                };
                if settings.max_ttl < settings.min_ttl {
                    if let Some(m) = &r.max_ttl {
                        return Err(self.err(
                            m,
                            "resolver.max_ttl",
                            "must not be below resolver.min_ttl",
                        ));
                    }
                }
                settings
            }
        };
        Ok(resolver)
    }

    fn mongo_tls(&self, raw: &Spanned<raw::RawMongoTls>) -> Result<MongoTls, SourceError> {
        let t = raw.get_ref();
        let file = |s: &Spanned<String>, field: &str| -> Result<PathBuf, SourceError> {
            let p = PathBuf::from(s.get_ref());
            std::fs::metadata(&p)
                .map_err(|e| self.err(s, field, format!("{}: {e}", p.display())))?;
            Ok(p)
        };
        let ca = file(&t.ca, "mongo.tls.ca")?;
        let client = match (&t.cert, &t.key) {
            (Some(c), Some(k)) => Some((file(c, "mongo.tls.cert")?, file(k, "mongo.tls.key")?)),
            (None, None) => None,
            (Some(c), None) => {
                return Err(self.err(c, "mongo.tls.key", "a client certificate needs its key"))
            }
            (None, Some(k)) => {
                return Err(self.err(k, "mongo.tls.cert", "a key needs its client certificate"))
            }
        };
        Ok(MongoTls { ca, client })
    }

    fn mongo(&self, raw: &Spanned<raw::RawMongo>) -> Result<Option<MongoAuth>, SourceError> {
        let m = raw.get_ref();
        if let Some(p) = &m.password {
            return Err(self.err(
                p,
                "mongo.password",
                "the password never goes in the playbook: name a file (password_file) or an environment variable (password_env)",
            ));
        }
        let Some(user) = &m.user else {
            if let Some(p) = m.password_file.as_ref().or(m.password_env.as_ref()) {
                return Err(self.err(p, "mongo.user", "a password needs a user"));
            }
            return Ok(None);
        };
        let user = self.non_empty(user, "mongo.user")?;
        let password = match (&m.password_file, &m.password_env) {
            (Some(f), None) => {
                let path = PathBuf::from(f.get_ref());
                check_password_file(&path).map_err(|e| self.err(f, "mongo.password_file", e))?;
                PasswordSource::File(path)
            }
            (None, Some(v)) => {
                let var = self.non_empty(v, "mongo.password_env")?;
                if std::env::var_os(&var).is_none() {
                    return Err(self.err(
                        v,
                        "mongo.password_env",
                        format!("environment variable {var} is not set"),
                    ));
                }
                PasswordSource::Env(var)
            }
            (Some(f), Some(_)) => {
                return Err(self.err(
                    f,
                    "mongo.password_file",
                    "give password_file or password_env, not both",
                ))
            }
            (None, None) => {
                return Err(self.err(
                    raw,
                    "mongo",
                    "needs password_file or password_env (where to read the password)",
                ))
            }
        };
        let auth_source = match &m.auth_source {
            Some(a) => self.non_empty(a, "mongo.auth_source")?,
            None => "admin".to_string(),
        };
        Ok(Some(MongoAuth {
            user,
            password,
            auth_source,
        }))
    }

    fn roles(&self, raw: &Spanned<Vec<Spanned<RawRole>>>) -> Result<Vec<Role>, SourceError> {
        if raw.get_ref().is_empty() {
            return Err(self.err(
                raw,
                "roles",
                "a playbook needs at least one [[roles]] entry",
            ));
        }
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, r) in raw.get_ref().iter().enumerate() {
            let name = self.non_empty(&r.get_ref().name, &format!("roles[{i}].name"))?;
            if index.insert(name.clone(), i).is_some() {
                return Err(self.err(
                    &r.get_ref().name,
                    format!("roles[{i}].name"),
                    format!("role {name:?} is declared twice"),
                ));
            }
        }
        let mut roles = Vec::new();
        let mut after_spans: Vec<Vec<&Spanned<String>>> = Vec::new();
        for (i, r) in raw.get_ref().iter().enumerate() {
            let r = r.get_ref();
            let field = |f: &str| format!("roles[{i}].{f}");
            let selector = r.selector.get_ref();
            if selector.is_empty() {
                return Err(self.err(
                    &r.selector,
                    field("selector"),
                    "a role needs at least one label, e.g. selector = { \"db.role\" = \"shard\" }",
                ));
            }
            for (k, v) in selector {
                if k.trim().is_empty() {
                    return Err(self.err(
                        &r.selector,
                        field("selector"),
                        "label keys must not be empty",
                    ));
                }
                if v.get_ref().trim().is_empty() {
                    return Err(self.err(
                        v,
                        field(&format!("selector.{k}")),
                        "label values must not be empty",
                    ));
                }
            }
            let mut after = Vec::new();
            let mut spans = Vec::new();
            for dep in r
                .after
                .as_ref()
                .map(|a| a.get_ref().as_slice())
                .unwrap_or(&[])
            {
                let Some(&j) = index.get(dep.get_ref().as_str()) else {
                    let known: Vec<&str> = raw
                        .get_ref()
                        .iter()
                        .map(|r| r.get_ref().name.get_ref().as_str())
                        .collect();
                    return Err(self.err(
                        dep,
                        field("after"),
                        format!(
                            "unknown role {:?}; roles declared: {}",
                            dep.get_ref(),
                            known.join(", ")
                        ),
                    ));
                };
                if j == i {
                    return Err(self.err(
                        dep,
                        field("after"),
                        format!("role {:?} cannot wait for itself", dep.get_ref()),
                    ));
                }
                if !after.contains(&j) {
                    after.push(j);
                    spans.push(dep);
                }
            }
            after_spans.push(spans);
            let health = self.health(r.health.as_ref(), i)?;
            roles.push(Role {
                name: r.name.get_ref().trim().to_string(),
                selector: selector
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                    .collect(),
                after,
                startup_lookups: self.count(
                    &r.startup_lookups,
                    &field("startup_lookups"),
                    0,
                    100_000,
                )? as u32,
                ready_estimate: self.opt_duration(
                    &r.ready_estimate,
                    &field("ready_estimate"),
                    Duration::from_secs(5),
                )?,
                health,
            });
        }
        let deps: Vec<Vec<usize>> = roles.iter().map(|r| r.after.clone()).collect();
        let order = topo_order(&deps).map_err(|Cycle(cycle)| {
            // Point at the `after` entry that closes the cycle.
            let (from, to) = (cycle[cycle.len() - 1], cycle[0]);
            let k = roles[from]
                .after
                .iter()
                .position(|&d| d == to)
                .expect("edge of the cycle");
            let names: Vec<&str> = cycle
                .iter()
                .chain(std::iter::once(&cycle[0]))
                .map(|&i| roles[i].name.as_str())
                .collect();
            self.err(
                after_spans[from][k],
                format!("roles[{from}].after"),
                format!("dependency cycle: {}", names.join(" -> ")),
            )
        })?;
        // Reorder roles topologically and remap `after`.
        let mut new_index = vec![0; roles.len()];
        for (pos, &old) in order.iter().enumerate() {
            new_index[old] = pos;
        }
        let mut sorted: Vec<Option<Role>> = roles.into_iter().map(Some).collect();
        Ok(order
            .iter()
            .map(|&old| {
                let mut r = sorted[old].take().expect("each role once");
                r.after = r.after.iter().map(|&d| new_index[d]).collect();
                r
            })
            .collect())
    }

    fn health(
        &self,
        raw: Option<&Spanned<RawHealth>>,
        i: usize,
    ) -> Result<HealthCheck, SourceError> {
        let field = |f: &str| format!("roles[{i}].health.{f}");
        let Some(h) = raw else {
            return Ok(HealthCheck {
                kind: HealthKind::Docker,
                ..HealthCheck::default()
            });
        };
        let h = h.get_ref();
        let mongo_port = || -> Result<u16, SourceError> {
            Ok(h.port
                .as_ref()
                .map(|p| self.count(p, &field("port"), 1, 65535))
                .transpose()?
                .unwrap_or(27017) as u16)
        };
        let kind = match h.kind.get_ref().as_str() {
            "docker" => HealthKind::Docker,
            "tcp" => {
                let Some(p) = &h.port else {
                    return Err(self.err(
                        &h.kind,
                        field("port"),
                        "kind \"tcp\" needs a port, e.g. port = 27017",
                    ));
                };
                HealthKind::Tcp {
                    port: self.count(p, &field("port"), 1, 65535)? as u16,
                }
            }
            "mongo" => HealthKind::Mongo {
                port: mongo_port()?,
                max_lag: h
                    .max_lag
                    .as_ref()
                    .map(|l| self.duration(l, &field("max_lag")))
                    .transpose()?,
                step_down: h
                    .step_down
                    .as_ref()
                    .map(|l| self.duration(l, &field("step_down")))
                    .transpose()?,
                arbiters: h.arbiters.as_ref().is_some_and(|a| *a.get_ref()),
            },
            "mongos" => HealthKind::Mongos {
                port: mongo_port()?,
                stuck_after: self.opt_duration(
                    &h.stuck_after,
                    &field("stuck_after"),
                    Duration::from_secs(15),
                )?,
                sets: Vec::new(),
            },
            "exec" => {
                let Some(c) = &h.command else {
                    return Err(self.err(&h.kind, field("command"), "kind \"exec\" needs a command, e.g. command = [\"mongosh\", \"--eval\", \"db.hello()\"]"));
                };
                if c.get_ref().is_empty() {
                    return Err(self.err(c, field("command"), "command must not be empty"));
                }
                HealthKind::Exec {
                    command: c.get_ref().clone(),
                }
            }
            other => {
                return Err(self.err(
                    &h.kind,
                    field("kind"),
                    format!("expected \"docker\", \"tcp\", \"exec\", \"mongo\" or \"mongos\", found {other:?}"),
                ))
            }
        };
        if let Some(port) = h.port.as_ref().filter(|_| {
            !matches!(
                kind,
                HealthKind::Tcp { .. } | HealthKind::Mongo { .. } | HealthKind::Mongos { .. }
            )
        }) {
            return Err(self.err(
                port,
                field("port"),
                "port applies only to kinds \"tcp\", \"mongo\" and \"mongos\"",
            ));
        }
        if let Some(a) = h
            .arbiters
            .as_ref()
            .filter(|_| !matches!(kind, HealthKind::Mongo { .. }))
        {
            return Err(self.err(
                a,
                field("arbiters"),
                "arbiters applies only to kind \"mongo\"",
            ));
        }
        for (key, value) in [("max_lag", &h.max_lag), ("step_down", &h.step_down)] {
            if let Some(l) = value
                .as_ref()
                .filter(|_| !matches!(kind, HealthKind::Mongo { .. }))
            {
                return Err(self.err(
                    l,
                    field(key),
                    format!("{key} applies only to kind \"mongo\""),
                ));
            }
        }
        if let Some(l) = h
            .stuck_after
            .as_ref()
            .filter(|_| !matches!(kind, HealthKind::Mongos { .. }))
        {
            return Err(self.err(
                l,
                field("stuck_after"),
                "stuck_after applies only to kind \"mongos\"",
            ));
        }
        if let Some(command) = h
            .command
            .as_ref()
            .filter(|_| !matches!(kind, HealthKind::Exec { .. }))
        {
            return Err(self.err(
                command,
                field("command"),
                "command applies only to kind \"exec\"",
            ));
        }
        let d = HealthCheck::default();
        Ok(HealthCheck {
            kind,
            timeout: self.opt_duration(&h.timeout, &field("timeout"), d.timeout)?,
            interval: self.opt_duration(&h.interval, &field("interval"), d.interval)?,
            deadline: self.opt_duration(&h.deadline, &field("deadline"), d.deadline)?,
        })
    }

    fn limits(&self, raw: Option<&Spanned<RawLimits>>) -> Result<Limits, SourceError> {
        let d = Limits::default();
        let Some(l) = raw.map(|l| l.get_ref()) else {
            return Ok(d);
        };
        let unavailable = match &l.max_unavailable_per_replset {
            None => d.max_unavailable_per_replset,
            Some(s) => match s.get_ref() {
                RawUnavailable::Count(n) if (1..=1000).contains(n) => Unavailable::Count(*n as u32),
                RawUnavailable::Word(w) if w == "all" => Unavailable::All,
                RawUnavailable::Count(n) => {
                    return Err(self.err(
                        s,
                        "limits.max_unavailable_per_replset",
                        format!("expected an integer from 1 to 1000 or \"all\", found {n}"),
                    ))
                }
                RawUnavailable::Word(w) => {
                    return Err(self.err(
                        s,
                        "limits.max_unavailable_per_replset",
                        format!("expected an integer from 1 to 1000 or \"all\", found {w:?}"),
                    ))
                }
            },
        };
        let restart_rate = match &l.restart_rate {
            None => d.restart_rate,
            Some(r) => {
                let x = *r.get_ref();
                if !(x.is_finite() && x >= 0.0) {
                    return Err(self.err(
                        r,
                        "limits.restart_rate",
                        format!("expected restarts per second ≥ 0 (0 = unlimited), found {x}"),
                    ));
                }
                x
            }
        };
        Ok(Limits {
            max_per_host: self.opt_count(
                &l.max_per_host,
                "limits.max_per_host",
                1,
                100_000,
                d.max_per_host as i64,
            )? as u32,
            max_unavailable_per_replset: unavailable,
            max_wave_size: self.opt_count(
                &l.max_wave_size,
                "limits.max_wave_size",
                1,
                10_000_000,
                d.max_wave_size as i64,
            )? as u32,
            restart_rate,
            stop_timeout: self.opt_duration(
                &l.stop_timeout,
                "limits.stop_timeout",
                d.stop_timeout,
            )?,
            api_calls_per_host: self.opt_count(
                &l.api_calls_per_host,
                "limits.api_calls_per_host",
                1,
                1024,
                d.api_calls_per_host as i64,
            )? as u32,
            starts_per_host: self.opt_count(
                &l.starts_per_host,
                "limits.starts_per_host",
                1,
                1024,
                d.starts_per_host as i64,
            )? as u32,
            connections_per_host: self.opt_count(
                &l.connections_per_host,
                "limits.connections_per_host",
                1,
                64,
                d.connections_per_host as i64,
            )? as u32,
            restarts_in_flight: self.opt_count(
                &l.restarts_in_flight,
                "limits.restarts_in_flight",
                1,
                1_000_000,
                d.restarts_in_flight as i64,
            )? as u32,
        })
    }

    fn hosts(&self, raw: &[Spanned<RawHost>]) -> Result<Vec<HostSpec>, SourceError> {
        let mut seen = HashMap::new();
        let mut hosts = Vec::new();
        for (i, h) in raw.iter().enumerate() {
            let h = h.get_ref();
            let name = self.non_empty(&h.name, &format!("hosts[{i}].name"))?;
            if seen.insert(name.clone(), i).is_some() {
                return Err(self.err(
                    &h.name,
                    format!("hosts[{i}].name"),
                    format!("host {name:?} is listed twice"),
                ));
            }
            let url = self.non_empty(&h.url, &format!("hosts[{i}].url"))?;
            let scheme_ok = ["unix://", "tcp://", "http://", "https://"]
                .iter()
                .any(|s| url.starts_with(s));
            if !scheme_ok {
                return Err(self.err(&h.url, format!("hosts[{i}].url"), format!("expected unix:///path, tcp://host:port, http:// or https://, found {url:?}")));
            }
            hosts.push(HostSpec {
                name,
                url,
                tls: h.tls.as_ref().map(|t| {
                    let t = t.get_ref();
                    TlsPaths {
                        ca: t.ca.clone().into(),
                        cert: t.cert.clone().into(),
                        key: t.key.clone().into(),
                    }
                }),
                labels: h.labels.clone().unwrap_or_default(),
            });
        }
        Ok(hosts)
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
