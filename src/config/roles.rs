//! A playbook's roles resolved: their selectors, order and startup
//! lookups, and each role's health check.

use super::raw::*;
use super::*;
use crate::dag::{topo_order, Cycle};
use crate::source::SourceError;
use std::collections::HashMap;
use std::time::Duration;
use toml::Spanned;

use super::resolve::Resolver;

impl Resolver<'_> {
    /// The `[[roles]]` resolved, in dependency order (each role's `after`
    /// remapped to the new positions). Each role is checked in turn: its
    /// selector, its dependencies, its health check, its numbers; then
    /// the order, a cycle named at the `after` entry that closes it.
    pub(super) fn roles(
        &self,
        raw: &Spanned<Vec<Spanned<RawRole>>>,
    ) -> Result<Vec<Role>, SourceError> {
        let index = self.role_index(raw)?;
        let mut roles = Vec::new();
        let mut after_spans: Vec<Vec<&Spanned<String>>> = Vec::new();
        for (i, r) in raw.get_ref().iter().enumerate() {
            let r = r.get_ref();
            let field = |f: &str| format!("roles[{i}].{f}");
            self.check_selector(r, i)?;
            let (after, spans) = self.dependencies(raw, &index, i)?;
            after_spans.push(spans);
            let health = self.health(r.health.as_ref(), i)?;
            roles.push(Role {
                name: r.name.get_ref().trim().to_string(),
                selector: r
                    .selector
                    .get_ref()
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
        self.in_dependency_order(roles, &after_spans)
    }

    /// Each role's position by name: at least one role, each named, no
    /// name twice.
    fn role_index(
        &self,
        raw: &Spanned<Vec<Spanned<RawRole>>>,
    ) -> Result<HashMap<String, usize>, SourceError> {
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
        Ok(index)
    }

    /// Role `i`'s selector: at least one label, no empty key or value.
    fn check_selector(&self, r: &RawRole, i: usize) -> Result<(), SourceError> {
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
        Ok(())
    }

    /// Role `i`'s `after`: the positions of the roles it waits for (each
    /// once, declared, not itself), with the entry naming each, for a
    /// cycle's error.
    fn dependencies<'r>(
        &self,
        raw: &'r Spanned<Vec<Spanned<RawRole>>>,
        index: &HashMap<String, usize>,
        i: usize,
    ) -> Result<(Vec<usize>, Vec<&'r Spanned<String>>), SourceError> {
        let r = raw.get_ref()[i].get_ref();
        let field = |f: &str| format!("roles[{i}].{f}");
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
        Ok((after, spans))
    }

    /// The roles sorted so that each comes after those it waits for, and
    /// their `after` remapped; a cycle is an error at the `after` entry
    /// (`after_spans`) that closes it.
    fn in_dependency_order(
        &self,
        roles: Vec<Role>,
        after_spans: &[Vec<&Spanned<String>>],
    ) -> Result<Vec<Role>, SourceError> {
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

    /// Role `i`'s health check (none written: the Docker kind with the
    /// default times): its kind with the kind's own settings, no setting
    /// of another kind, and its times.
    pub(super) fn health(
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
        let kind = self.health_kind(h, i)?;
        self.check_kind_fields(h, &kind, i)?;
        let d = HealthCheck::default();
        Ok(HealthCheck {
            kind,
            timeout: self.opt_duration(&h.timeout, &field("timeout"), d.timeout)?,
            interval: self.opt_duration(&h.interval, &field("interval"), d.interval)?,
            deadline: self.opt_duration(&h.deadline, &field("deadline"), d.deadline)?,
        })
    }

    /// The check's kind, with the settings it reads: `port` (required for
    /// tcp, 27017 by default for mongo and mongos), mongo's `max_lag`,
    /// `step_down` and `arbiters`, mongos's `stuck_after`, exec's
    /// `command`.
    fn health_kind(&self, h: &RawHealth, i: usize) -> Result<HealthKind, SourceError> {
        let field = |f: &str| format!("roles[{i}].health.{f}");
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
        Ok(kind)
    }

    /// No setting of another kind: each of `port`, `arbiters`, `max_lag`,
    /// `step_down`, `stuck_after` and `command` is refused where `kind`
    /// does not read it, rather than silently ignored.
    fn check_kind_fields(
        &self,
        h: &RawHealth,
        kind: &HealthKind,
        i: usize,
    ) -> Result<(), SourceError> {
        let field = |f: &str| format!("roles[{i}].health.{f}");
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
        Ok(())
    }
}
