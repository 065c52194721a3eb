//! What a run restarts with `--only broken` (issue 25), decided from a
//! survey by these rules, in this order:
//!
//! 1. A container found `broken` or `down` restarts.
//! 2. One that did not answer its gate (`unknown`) restarts, unless its
//!    Docker host did not answer: nothing can restart it then, and it is
//!    left out, named.
//! 3. A replica set with no primary restarts whole: when its role's gate
//!    is MongoDB's (`mongo`, the only one that can tell a primary), every
//!    member answered, and none said it is the primary — the incident's
//!    own state, where every member says SECONDARY and follows no one. A
//!    set with a primary keeps its healthy members running.
//! 4. A router — a container of a role that starts `after` others — that
//!    passes its gate is left alone even when members of its cluster
//!    restart (its replica-set monitor reconnects to them), unless the
//!    playbook says `restart_routers_with_members = true`: then it restarts
//!    when a container of a role it starts after restarts in its cluster.
//! 5. Everything else that passes its gate is left alone.
//!
//! The plan is then cut from the chosen containers alone
//! ([`crate::plan::Plan::build_only`]), so the dependency order, the waves
//! and the DNS budget hold as for a full restart.

use super::{Finding, Survey, Verdict};
use crate::config::{HealthKind, Playbook};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Why a container restarts or is left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum Why {
    /// Rule 1: it fails its gate.
    Broken,
    /// Rule 1: it is not running.
    Down,
    /// Rule 2: it did not answer its gate.
    Silent,
    /// Rule 2: its host did not answer (left out).
    HostSilent,
    /// Rule 3: its replica set has no primary.
    NoPrimary {
        /// The set.
        replset: String,
    },
    /// Rule 4: a router whose cluster's members restart, and the playbook
    /// says routers go with them.
    WithMembers,
    /// Rules 4 and 5: it passes its gate (left alone).
    Ok,
}

impl Why {
    /// Whether a container with this reason restarts.
    pub fn restarts(&self) -> bool {
        !matches!(self, Why::HostSilent | Why::Ok)
    }

    /// In words, for the plan's table.
    pub fn describe(&self) -> String {
        match self {
            Why::Broken => "broken: fails its gate".into(),
            Why::Down => "down: not running".into(),
            Why::Silent => "did not answer its gate".into(),
            Why::HostSilent => "its Docker host did not answer (cannot be restarted)".into(),
            Why::NoPrimary { replset } if replset.is_empty() => {
                "its replica set has no primary (the whole set restarts)".into()
            }
            Why::NoPrimary { replset } => format!("its replica set {replset} has no primary"),
            Why::WithMembers => {
                "members of its cluster restart (restart_routers_with_members)".into()
            }
            Why::Ok => "passes its gate".into(),
        }
    }
}

/// The choice for every container the survey asked.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    /// Per container asked (inventory index), why it restarts or not.
    #[serde(skip)]
    pub why: BTreeMap<u32, Why>,
}

impl Selection {
    /// Inventory indexes of the containers that restart.
    pub fn chosen(&self) -> impl Iterator<Item = u32> + '_ {
        self.why
            .iter()
            .filter(|(_, w)| w.restarts())
            .map(|(&i, _)| i)
    }

    /// How many restart.
    pub fn restarts(&self) -> usize {
        self.chosen().count()
    }

    /// How many are left alone.
    pub fn left_alone(&self) -> usize {
        self.why.len() - self.restarts()
    }

    /// The replica sets restarted whole for want of a primary, sorted.
    pub fn sets_without_primary(&self) -> Vec<String> {
        let sets: std::collections::BTreeSet<&str> = self
            .why
            .values()
            .filter_map(|w| match w {
                Why::NoPrimary { replset } => Some(replset.as_str()),
                _ => None,
            })
            .collect();
        sets.into_iter().map(str::to_string).collect()
    }

    /// Containers per reason, reasons in rule order.
    pub fn counts(&self) -> Vec<(Why, usize)> {
        let mut out: Vec<(Why, usize)> = Vec::new();
        for w in self.why.values() {
            // Sets are counted together, by rule.
            let key = match w {
                Why::NoPrimary { .. } => Why::NoPrimary {
                    replset: String::new(),
                },
                other => other.clone(),
            };
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => *n += 1,
                None => out.push((key, 1)),
            }
        }
        out.sort_by_key(|(w, _)| rule_order(w));
        out
    }
}

fn rule_order(w: &Why) -> u8 {
    match w {
        Why::Broken => 0,
        Why::Down => 1,
        Why::Silent => 2,
        Why::NoPrimary { .. } => 3,
        Why::WithMembers => 4,
        Why::HostSilent => 5,
        Why::Ok => 6,
    }
}

/// The replica sets with no primary, as far as a survey can tell: their
/// role's gate is `mongo` (the only one that sees a primary), every member
/// answered, and none said it is the primary.
pub fn without_primary(pb: &Playbook, findings: &[Finding]) -> BTreeSet<String> {
    let tells_primary = |role: &str| {
        pb.roles
            .iter()
            .find(|r| r.name == role)
            .is_some_and(|r| matches!(r.health.kind, HealthKind::Mongo { .. }))
    };
    let mut sets: HashMap<&str, (bool, bool)> = HashMap::new(); // (a primary, all answered)
    for f in findings {
        if let Some(rs) = f.replset.as_deref().filter(|_| tells_primary(&f.role)) {
            let e = sets.entry(rs).or_insert((false, true));
            e.0 |= f.primary;
            e.1 &= f.verdict != Verdict::Unknown;
        }
    }
    sets.into_iter()
        .filter(|(_, s)| *s == (false, true))
        .map(|(rs, _)| rs.to_string())
        .collect()
}

/// Applies the rules to `survey`.
pub fn select(pb: &Playbook, survey: &Survey) -> Selection {
    let role_index: HashMap<&str, usize> = pb
        .roles
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    // Rules 1, 2 and 5.
    let mut why: BTreeMap<u32, Why> = survey
        .findings
        .iter()
        .map(|f| {
            let w = match f.verdict {
                Verdict::Broken => Why::Broken,
                Verdict::Down => Why::Down,
                Verdict::Unknown if f.host_silent => Why::HostSilent,
                Verdict::Unknown => Why::Silent,
                Verdict::Ok => Why::Ok,
            };
            (f.index, w)
        })
        .collect();

    // Rule 3: sets whose gate tells primaries, all answered, none primary.
    let sets = without_primary(pb, &survey.findings);
    for f in &survey.findings {
        let Some(rs) = f.replset.as_deref() else {
            continue;
        };
        if sets.contains(rs) && why[&f.index] == Why::Ok {
            why.insert(
                f.index,
                Why::NoPrimary {
                    replset: rs.to_string(),
                },
            );
        }
    }

    // Rule 4: routers with their members, when the playbook says so.
    if pb.policy.restart_routers_with_members {
        let restarting: HashSet<(&str, usize)> = survey
            .findings
            .iter()
            .filter(|f| why[&f.index].restarts())
            .map(|f| (f.cluster.as_str(), role_index[f.role.as_str()]))
            .collect();
        for f in &survey.findings {
            let role = &pb.roles[role_index[f.role.as_str()]];
            let members_restart = role
                .after
                .iter()
                .any(|&d| restarting.contains(&(f.cluster.as_str(), d)));
            if members_restart && why[&f.index] == Why::Ok {
                why.insert(f.index, Why::WithMembers);
            }
        }
    }
    Selection { why }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn playbook(with_members: bool) -> Playbook {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut pb = Playbook::load(&root.join("config/mongo-sharded.toml")).unwrap();
        pb.policy.restart_routers_with_members = with_members;
        pb
    }

    fn finding(
        index: u32,
        cluster: &str,
        role: &str,
        replset: Option<&str>,
        verdict: Verdict,
        primary: bool,
    ) -> Finding {
        Finding {
            index,
            container: format!("x{index}"),
            host: "h".into(),
            cluster: cluster.into(),
            role: role.into(),
            replset: replset.map(str::to_string),
            primary,
            verdict,
            reason: None,
            host_silent: false,
        }
    }

    /// Cluster a: rs0 has a primary and one broken member; rs1's members
    /// all say ok but none is primary; a router broken, one ok. Cluster b:
    /// all ok, one member on a silent host, one down router.
    fn survey() -> Survey {
        use Verdict::*;
        let mut silent = finding(9, "b", "shard", Some("b-rs0"), Unknown, false);
        silent.host_silent = true;
        Survey {
            playbook: "p".into(),
            sets_without_primary: vec![],
            hosts_silent: vec![],
            findings: vec![
                finding(0, "a", "shard", Some("a-rs0"), Ok, true),
                finding(1, "a", "shard", Some("a-rs0"), Ok, false),
                finding(2, "a", "shard", Some("a-rs0"), Broken, false),
                finding(3, "a", "shard", Some("a-rs1"), Ok, false),
                finding(4, "a", "shard", Some("a-rs1"), Ok, false),
                finding(5, "a", "router", None, Broken, false),
                finding(6, "a", "router", None, Ok, false),
                finding(7, "b", "shard", Some("b-rs0"), Ok, true),
                finding(8, "b", "shard", Some("b-rs0"), Ok, false),
                silent,
                finding(10, "b", "router", None, Down, false),
                finding(11, "b", "router", None, Ok, false),
            ],
        }
    }

    #[test]
    fn restarts_what_is_broken_and_sets_without_a_primary_and_leaves_the_rest() {
        let s = select(&playbook(false), &survey());
        let chosen: Vec<u32> = s.chosen().collect();
        assert_eq!(chosen, vec![2, 3, 4, 5, 10]);
        assert_eq!(
            s.why[&3],
            Why::NoPrimary {
                replset: "a-rs1".into()
            }
        );
        assert_eq!(s.why[&9], Why::HostSilent, "a silent host is left out");
        assert_eq!(s.why[&6], Why::Ok, "a router that passes is left alone");
        assert_eq!(
            s.why[&1],
            Why::Ok,
            "a set with a primary keeps its healthy members"
        );
        assert_eq!(s.restarts() + s.left_alone(), 12);
    }

    #[test]
    fn routers_go_with_their_members_only_when_the_playbook_says_so() {
        let s = select(&playbook(true), &survey());
        let chosen: Vec<u32> = s.chosen().collect();
        // a's members restart: its ok router goes too; b's do not (the
        // silent member is not restarted), so b's ok router stays.
        assert_eq!(chosen, vec![2, 3, 4, 5, 6, 10]);
        assert_eq!(s.why[&6], Why::WithMembers);
        assert_eq!(s.why[&11], Why::Ok);
    }

    #[test]
    fn a_set_with_a_silent_member_is_not_judged_without_a_primary() {
        use Verdict::*;
        let mut silent = finding(2, "a", "shard", Some("rs"), Unknown, false);
        silent.host_silent = true;
        let survey = Survey {
            playbook: "p".into(),
            sets_without_primary: vec![],
            hosts_silent: vec![],
            findings: vec![
                finding(0, "a", "shard", Some("rs"), Ok, false),
                finding(1, "a", "shard", Some("rs"), Ok, false),
                silent,
            ],
        };
        let s = select(&playbook(false), &survey);
        assert_eq!(s.restarts(), 0, "the silent one may be the primary");
    }
}
