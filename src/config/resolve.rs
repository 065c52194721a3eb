//! A playbook resolved: the raw TOML's sections validated one by one into a
//! [`Playbook`], every error naming the file, line, column and field. The
//! roles and their health checks are in `roles.rs`.

use super::raw::*;
use super::*;
use crate::duration::parse_duration;
use crate::source::{SourceError, SourceText};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// Resolves a raw playbook against its source text: each section a
/// method, every error naming its place.
pub(super) struct Resolver<'a> {
    pub(super) src: &'a SourceText,
}

impl Resolver<'_> {
    pub(super) fn err<T>(
        &self,
        spanned: &Spanned<T>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) -> SourceError {
        self.src.error(spanned.span(), field, msg)
    }

    pub(super) fn duration(
        &self,
        s: &Spanned<String>,
        field: &str,
    ) -> Result<Duration, SourceError> {
        parse_duration(s.get_ref()).map_err(|m| self.err(s, field, m.to_string()))
    }

    pub(super) fn opt_duration(
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

    pub(super) fn count(
        &self,
        v: &Spanned<i64>,
        field: &str,
        min: i64,
        max: i64,
    ) -> Result<i64, SourceError> {
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

    pub(super) fn opt_count(
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

    pub(super) fn fraction(
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

    pub(super) fn non_empty(
        &self,
        s: &Spanned<String>,
        field: &str,
    ) -> Result<String, SourceError> {
        let v = s.get_ref().trim();
        if v.is_empty() {
            return Err(self.err(s, field, "must not be empty"));
        }
        Ok(v.to_string())
    }

    /// The whole playbook: each section resolved by its own method.
    pub(super) fn resolve(&self, raw: RawPlaybook) -> Result<Playbook, SourceError> {
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
    pub(super) fn canary(
        &self,
        c: Option<&Spanned<raw::RawCanary>>,
    ) -> Result<Option<Canary>, SourceError> {
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
    pub(super) fn dns(&self, d: &raw::RawDns) -> Result<DnsBudgetConfig, SourceError> {
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
    pub(super) fn dns_fleet(
        &self,
        f: Option<&raw::RawFleetResolver>,
    ) -> Result<FleetResolver, SourceError> {
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
    pub(super) fn dns_counter(
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
    pub(super) fn policy(&self, p: Option<&raw::RawPolicy>) -> Result<Policy, SourceError> {
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
    pub(super) fn estimates(
        &self,
        e: Option<&Spanned<raw::RawEstimates>>,
    ) -> Result<Estimates, SourceError> {
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
    pub(super) fn discovery(
        &self,
        d: Option<&raw::RawDiscovery>,
    ) -> Result<Discovery, SourceError> {
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
    pub(super) fn resolver(
        &self,
        r: Option<&raw::RawResolver>,
    ) -> Result<ResolverSettings, SourceError> {
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

    pub(super) fn mongo_tls(
        &self,
        raw: &Spanned<raw::RawMongoTls>,
    ) -> Result<MongoTls, SourceError> {
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

    pub(super) fn mongo(
        &self,
        raw: &Spanned<raw::RawMongo>,
    ) -> Result<Option<MongoAuth>, SourceError> {
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

    pub(super) fn limits(&self, raw: Option<&Spanned<RawLimits>>) -> Result<Limits, SourceError> {
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

    pub(super) fn hosts(&self, raw: &[Spanned<RawHost>]) -> Result<Vec<HostSpec>, SourceError> {
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
