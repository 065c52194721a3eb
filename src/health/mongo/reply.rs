//! What a server says, read from a reply's body document: its server type
//! and the member gate's verdict (`hello`), a mongos's view of its replica
//! sets (`connPoolStats`), a member's lag (`replSetGetStatus`), and whether
//! a command answered `ok: 1`.

use super::MongoError;
use bson::{RawBsonRef, RawDocument};

/// The server types of MongoDB's Server Discovery and Monitoring
/// specification (mongodb/specifications,
/// source/server-discovery-and-monitoring/server-discovery-and-monitoring.md,
/// "Parsing a hello or legacy hello response" → "type"): what the drivers
/// make of one `hello` reply, and so what the gates make of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerType {
    /// `ok` is not 1: the server cannot say what it is.
    Unknown,
    /// No `msg: "isdbgrid"`, no `setName`, no `isreplicaset: true`.
    Standalone,
    /// `msg: "isdbgrid"`: a router.
    Mongos,
    /// `setName`, and `isWritablePrimary` (or the legacy `ismaster`) true.
    RSPrimary,
    /// `setName` and `secondary: true`.
    RSSecondary,
    /// `setName` and `arbiterOnly: true`.
    RSArbiter,
    /// `setName`, but hidden, or neither primary, secondary nor arbiter
    /// (STARTUP2, RECOVERING, ROLLBACK…).
    RSOther,
    /// `isreplicaset: true`: started with `--replSet` but without a
    /// replica-set config (yet): STARTUP, an uninitialised set, or a
    /// member removed from its set.
    RSGhost,
}

impl ServerType {
    /// The spec's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ServerType::Unknown => "Unknown",
            ServerType::Standalone => "Standalone",
            ServerType::Mongos => "Mongos",
            ServerType::RSPrimary => "RSPrimary",
            ServerType::RSSecondary => "RSSecondary",
            ServerType::RSArbiter => "RSArbiter",
            ServerType::RSOther => "RSOther",
            ServerType::RSGhost => "RSGhost",
        }
    }
}

impl std::fmt::Display for ServerType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The longest `setName` accepted (MongoDB has no documented limit; real
/// ones are short, and a name goes into the gate's reasons).
const MAX_SET_NAME: usize = 255;

/// What `hello` says about the server.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hello {
    /// The command succeeded (`ok: 1`).
    pub ok: bool,
    /// It is its replica set's primary: `isWritablePrimary`, or the legacy
    /// `ismaster` when `isWritablePrimary` is absent (the spec's rule).
    pub writable_primary: bool,
    /// It is a secondary.
    pub secondary: bool,
    /// It is an arbiter.
    pub arbiter: bool,
    /// It is a hidden member.
    pub hidden: bool,
    /// `isreplicaset: true`: a member without a replica-set config.
    pub isreplicaset: bool,
    /// Replica set name; `None` for a standalone, a mongos or an RSGhost.
    pub set_name: Option<String>,
    /// `"isdbgrid"` from a mongos.
    pub msg: Option<String>,
    /// The server's error message when `ok` is 0.
    pub errmsg: Option<String>,
    /// The set's members as this one knows them (`hosts`).
    pub hosts: Vec<String>,
}

/// The type of a BSON value, for reasons.
fn type_name(v: RawBsonRef<'_>) -> &'static str {
    match v {
        RawBsonRef::Double(_) => "a double",
        RawBsonRef::String(_) => "a string",
        RawBsonRef::Document(_) => "a document",
        RawBsonRef::Array(_) => "an array",
        RawBsonRef::Boolean(_) => "a boolean",
        RawBsonRef::Null => "null",
        RawBsonRef::Int32(_) => "an int32",
        RawBsonRef::Int64(_) => "an int64",
        _ => "another BSON type",
    }
}

impl Hello {
    /// From a reply's body document. A field the classification reads
    /// with the wrong BSON type, a `hosts` entry that is not a string, or
    /// a `setName` longer than 255 bytes is [`MongoError::Malformed`].
    pub fn from_doc(d: &RawDocument) -> Result<Hello, MongoError> {
        let mut hello = Hello::default();
        let mut is_writable_primary: Option<bool> = None;
        let mut ismaster: Option<bool> = None;
        let wrong = |key: &str, v: RawBsonRef<'_>, want: &str| {
            MongoError::Malformed(format!("hello: {key} is {}, expected {want}", type_name(v)))
        };
        for element in d {
            let (key, value) = element.map_err(MongoError::malformed)?;
            let key = key.as_str();
            let flag = |v: RawBsonRef<'_>| match v {
                RawBsonRef::Boolean(b) => Ok(b),
                other => Err(wrong(key, other, "a boolean")),
            };
            let text = |v: RawBsonRef<'_>| match v {
                RawBsonRef::String(s) => Ok(s.to_string()),
                other => Err(wrong(key, other, "a string")),
            };
            match key {
                "ok" => hello.ok = number(value) == Some(1.0),
                "isWritablePrimary" => is_writable_primary = Some(flag(value)?),
                "ismaster" => ismaster = Some(flag(value)?),
                "secondary" => hello.secondary = flag(value)?,
                "arbiterOnly" => hello.arbiter = flag(value)?,
                "hidden" => hello.hidden = flag(value)?,
                "isreplicaset" => hello.isreplicaset = flag(value)?,
                "setName" => {
                    let RawBsonRef::String(s) = value else {
                        return Err(wrong(key, value, "a string"));
                    };
                    if s.len() > MAX_SET_NAME {
                        return Err(MongoError::Malformed(format!(
                            "hello: setName of {} bytes (at most {MAX_SET_NAME})",
                            s.len()
                        )));
                    }
                    hello.set_name = Some(s.to_string());
                }
                "msg" => hello.msg = Some(text(value)?),
                "errmsg" => hello.errmsg = Some(text(value)?),
                "hosts" => {
                    let RawBsonRef::Array(list) = value else {
                        return Err(wrong(key, value, "an array of strings"));
                    };
                    for (i, h) in list.into_iter().enumerate() {
                        match h.map_err(MongoError::malformed)? {
                            RawBsonRef::String(s) => hello.hosts.push(s.to_string()),
                            other => return Err(wrong(&format!("hosts.{i}"), other, "a string")),
                        }
                    }
                }
                _ => {}
            }
        }
        hello.writable_primary = is_writable_primary.or(ismaster).unwrap_or(false);
        Ok(hello)
    }

    /// The server's type by the SDAM specification's rules: not `ok` →
    /// Unknown; `isreplicaset: true` → RSGhost (the spec: "any server is an
    /// RSGhost that reports isreplicaset: true"); `msg: "isdbgrid"` →
    /// Mongos; with a `setName`: hidden → RSOther, then primary, secondary,
    /// arbiter, else RSOther; else Standalone. Where the spec's table
    /// leaves the order open (isdbgrid with a setName) it follows the
    /// official Rust driver (`HelloCommandResponse::server_type`).
    pub fn server_type(&self) -> ServerType {
        if !self.ok {
            ServerType::Unknown
        } else if self.isreplicaset {
            ServerType::RSGhost
        } else if self.msg.as_deref() == Some("isdbgrid") {
            ServerType::Mongos
        } else if self.set_name.is_some() {
            if self.hidden {
                ServerType::RSOther
            } else if self.writable_primary {
                ServerType::RSPrimary
            } else if self.secondary {
                ServerType::RSSecondary
            } else if self.arbiter {
                ServerType::RSArbiter
            } else {
                ServerType::RSOther
            }
        } else {
            ServerType::Standalone
        }
    }

    /// A mongos says so: `msg: "isdbgrid"` (MongoDB's hello docs).
    pub fn is_router(&self) -> bool {
        self.server_type() == ServerType::Mongos
    }

    /// The member gate's verdict on this reply. With `expected_set` (the
    /// container's replica-set label), it passes only as RSPrimary or
    /// RSSecondary of that set (RSArbiter too with `arbiters`); without
    /// one, also as a Standalone or a Mongos (nothing says it must be a
    /// member). RSGhost, RSOther and Unknown never pass. `Err` names the
    /// server type and why it does not pass.
    pub fn member_verdict(
        &self,
        expected_set: Option<&str>,
        arbiters: bool,
    ) -> Result<ServerType, String> {
        let t = self.server_type();
        let set = self.set_name.as_deref().unwrap_or("");
        let member = match t {
            ServerType::RSPrimary | ServerType::RSSecondary => true,
            ServerType::RSArbiter if arbiters => true,
            ServerType::RSArbiter => {
                return Err(format!(
                    "{t} of {set} (an arbiter holds no data; the role's check says arbiters = false)"
                ))
            }
            ServerType::RSGhost => return Err(format!("{t} (no replica-set config yet)")),
            ServerType::RSOther if self.hidden => {
                return Err(format!("{t} (a hidden member of {set})"))
            }
            ServerType::RSOther => {
                return Err(format!(
                    "{t} (member of {set} neither primary nor secondary: STARTUP2, RECOVERING, ROLLBACK…)"
                ))
            }
            ServerType::Unknown => {
                return Err(format!(
                    "{t} ({})",
                    self.errmsg.as_deref().unwrap_or("ok is not 1")
                ))
            }
            ServerType::Standalone | ServerType::Mongos => false,
        };
        match (expected_set, member) {
            (Some(want), true) if want != set => Err(format!(
                "{t} of replica set {set}, but its label names {want}"
            )),
            (Some(want), false) => Err(format!(
                "{t} ({}), but its label names replica set {want}",
                if t == ServerType::Mongos {
                    "a router where a member is expected"
                } else {
                    "no replica set: started without --replSet?"
                }
            )),
            _ => Ok(t),
        }
    }
}

/// One host as a mongos's replica-set monitor sees it (`connPoolStats`
/// `replicaSets.<set>.hosts[i]`): `ok` is "a known primary or secondary",
/// `ismaster` "the primary".
#[derive(Debug, Clone, PartialEq)]
pub struct MonitoredHost {
    /// The host's `host:port`, as the monitor names it.
    pub addr: String,
    /// A known primary or secondary, reachable.
    pub ok: bool,
    /// The primary.
    pub ismaster: bool,
}

/// A mongos's view of the replica sets it routes to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouterView {
    /// Each replica set's name, with its hosts.
    pub sets: std::collections::BTreeMap<String, Vec<MonitoredHost>>,
}

impl RouterView {
    /// From a `connPoolStats` reply's body document.
    pub fn from_doc(d: &RawDocument) -> Result<RouterView, MongoError> {
        command_ok("connPoolStats", d)?;
        let mut view = RouterView::default();
        let Some(sets) = d.get("replicaSets").map_err(MongoError::malformed)? else {
            return Ok(view);
        };
        let RawBsonRef::Document(sets) = sets else {
            return Err(MongoError::Malformed(
                "replicaSets is not a document".into(),
            ));
        };
        for element in sets {
            let (name, set) = element.map_err(MongoError::malformed)?;
            let RawBsonRef::Document(set) = set else {
                return Err(MongoError::Malformed(format!(
                    "replicaSets.{} is not a document",
                    name.as_str()
                )));
            };
            let mut hosts = Vec::new();
            if let Some(RawBsonRef::Array(list)) =
                set.get("hosts").map_err(MongoError::malformed)?
            {
                for h in list {
                    let RawBsonRef::Document(h) = h.map_err(MongoError::malformed)? else {
                        continue;
                    };
                    let flag = |k: &str| -> Result<bool, MongoError> {
                        Ok(matches!(
                            h.get(k).map_err(MongoError::malformed)?,
                            Some(RawBsonRef::Boolean(true))
                        ))
                    };
                    let addr = match h.get("addr").map_err(MongoError::malformed)? {
                        Some(RawBsonRef::String(s)) => s.to_string(),
                        _ => "?".to_string(),
                    };
                    hosts.push(MonitoredHost {
                        addr,
                        ok: flag("ok")?,
                        ismaster: flag("ismaster")?,
                    });
                }
            }
            view.sets.insert(name.as_str().to_string(), hosts);
        }
        Ok(view)
    }

    /// The sets this router cannot use, each with why: a set it does not
    /// monitor, or one with no host that is up and primary. `expected`
    /// empty means "every set it monitors" (and at least one).
    pub fn unreachable(&self, expected: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let names: Vec<&String> = if expected.is_empty() {
            if self.sets.is_empty() {
                out.push("it monitors no replica set (no shard registry loaded)".into());
            }
            self.sets.keys().collect()
        } else {
            expected.iter().collect()
        };
        for name in names {
            match self.sets.get(name) {
                None => out.push(format!("{name} (not monitored by this router)")),
                Some(hosts) if !hosts.iter().any(|h| h.ok && h.ismaster) => {
                    let seen: Vec<String> = hosts
                        .iter()
                        .map(|h| {
                            format!(
                                "{} {}",
                                h.addr,
                                match (h.ok, h.ismaster) {
                                    (true, true) => "primary",
                                    (true, false) => "up",
                                    _ => "unreachable",
                                }
                            )
                        })
                        .collect();
                    out.push(if seen.is_empty() {
                        format!("{name} (no host known)")
                    } else {
                        format!("{name} (no primary reachable: {})", seen.join(", "))
                    });
                }
                Some(_) => {}
            }
        }
        out
    }
}

/// A member's replication as `replSetGetStatus` reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberStatus {
    /// This member's state (1 PRIMARY, 2 SECONDARY, 5 STARTUP2…): the
    /// `self` member's `state`, else `myState`.
    pub state: Option<i32>,
    /// The primary's name, when the member knows one.
    pub primary: Option<String>,
    /// The primary's last applied operation (`optimeDate`, ms), if it
    /// reports one.
    pub primary_optime: Option<i64>,
    /// This member's last applied operation (`optimeDate`, ms), if it
    /// reports one.
    pub my_optime: Option<i64>,
}

impl MemberStatus {
    /// From a `replSetGetStatus` reply's body: `members[]` with `self`,
    /// `state` and `optimeDate`, as `rs.printSecondaryReplicationInfo()`
    /// reads them.
    pub fn from_doc(d: &RawDocument) -> Result<MemberStatus, MongoError> {
        command_ok("replSetGetStatus", d)?;
        let Some(RawBsonRef::Array(members)) = d.get("members").map_err(MongoError::malformed)?
        else {
            return Err(MongoError::Malformed(
                "replSetGetStatus without members".into(),
            ));
        };
        let my_state = d
            .get("myState")
            .map_err(MongoError::malformed)?
            .and_then(number)
            .map(|s| s as i32);
        let mut status = MemberStatus::default();
        let mut found_self = false;
        for m in members {
            let RawBsonRef::Document(m) = m.map_err(MongoError::malformed)? else {
                continue;
            };
            let get = |k: &str| m.get(k).map_err(MongoError::malformed);
            let state = get("state")?.and_then(number).map(|s| s as i32);
            let optime = match get("optimeDate")? {
                Some(RawBsonRef::DateTime(t)) => Some(t.timestamp_millis()),
                _ => None,
            };
            if matches!(get("self")?, Some(RawBsonRef::Boolean(true))) {
                found_self = true;
                status.state = state.or(my_state);
                status.my_optime = optime;
            }
            if state == Some(1) {
                status.primary = Some(match get("name")? {
                    Some(RawBsonRef::String(s)) => s.to_string(),
                    _ => "?".to_string(),
                });
                status.primary_optime = optime;
            }
        }
        if !found_self {
            return Err(MongoError::Malformed("no member marked self".into()));
        }
        Ok(status)
    }

    /// How far this member's last applied operation is behind its
    /// primary's, in milliseconds (0 for the primary itself). `Err` says
    /// which fact is missing: no primary, or an `optimeDate` that the
    /// primary or this member does not report — never counted as caught up.
    pub fn lag_ms(&self) -> Result<i64, String> {
        let Some(primary) = &self.primary else {
            return Err("the replica set has no primary".into());
        };
        let Some(p) = self.primary_optime else {
            return Err(format!("its primary {primary} reports no optimeDate"));
        };
        let Some(m) = self.my_optime else {
            return Err("the member reports no optimeDate of its own".into());
        };
        Ok(p.saturating_sub(m).max(0))
    }
}

/// A BSON number (a double, an int32 or an int64) as an `f64`; `None`
/// for any other type.
pub(super) fn number(v: RawBsonRef<'_>) -> Option<f64> {
    match v {
        RawBsonRef::Double(d) => Some(d),
        RawBsonRef::Int32(i) => Some(i as f64),
        RawBsonRef::Int64(i) => Some(i as f64),
        _ => None,
    }
}

/// `ok: 1`, or the server's error as [`MongoError::Command`].
pub fn command_ok(command: &str, d: &RawDocument) -> Result<(), MongoError> {
    let ok = d.get("ok").map_err(MongoError::malformed)?.and_then(number);
    if ok == Some(1.0) {
        return Ok(());
    }
    let code = d
        .get("code")
        .map_err(MongoError::malformed)?
        .and_then(number)
        .unwrap_or(0.0) as i32;
    let message = match d.get("errmsg").map_err(MongoError::malformed)? {
        Some(RawBsonRef::String(s)) => s.to_string(),
        _ => "ok is not 1".to_string(),
    };
    Err(MongoError::Command {
        command: command.to_string(),
        code,
        message,
    })
}
