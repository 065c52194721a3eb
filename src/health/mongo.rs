//! MongoDB's wire protocol for the health gates: OP_MSG frames, BSON
//! documents through the `bson` crate (a reply is untrusted input: it is
//! validated as it is read, and a malformed one is an error, never a
//! panic), and the three things a gate asks a server:
//!
//! - `hello` (no credentials needed): what it is, as one of the server
//!   types of MongoDB's Server Discovery and Monitoring spec
//!   ([`ServerType`]): a mongos, a primary, a secondary, an arbiter, a
//!   member in STARTUP2 / RECOVERING (RSOther) or one without its
//!   replica-set config yet (RSGhost), a standalone;
//! - `connPoolStats` on a mongos: its replica-set monitor's view of every
//!   shard and the config servers — the router gate (docs/playbook.md);
//! - `replSetGetStatus` on a member: how far it is behind its primary —
//!   the member gate's lag.
//!
//! It owns the wire format and the verdict; the engine's gate decides
//! retries and deadlines. Only read-only commands are sent.

use bson::{doc, Document, RawBsonRef, RawDocument};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OP_MSG: i32 = 2013;
/// The largest reply accepted (connPoolStats on a big cluster is tens of
/// KB; the server's own limit is 48 MB).
const MAX_REPLY: usize = 16 << 20;

/// Why a MongoDB probe failed.
#[derive(Debug, thiserror::Error)]
pub enum MongoError {
    /// The TCP connection failed.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// No reply within this many seconds.
    #[error("no reply within {0}s")]
    Timeout(f64),
    /// Reading or writing the connection failed.
    #[error("wire: {0}")]
    Io(std::io::Error),
    /// The reply does not parse, or says something impossible.
    #[error("malformed reply: {0}")]
    Malformed(String),
    /// The TLS handshake failed (unknown CA, wrong name, no client certificate).
    #[error("TLS: {0}")]
    Tls(String),
    /// The credentials were refused (or the exchange failed).
    #[error("authentication failed: {0}")]
    Auth(crate::health::scram::ScramError),
    /// The server answered `ok: 0`.
    #[error("{command} failed: {message} (code {code})")]
    Command {
        /// The command's name.
        command: String,
        /// The server's error code.
        code: i32,
        /// The server's error message.
        message: String,
    },
}

impl MongoError {
    /// A definite refusal — the TLS handshake, the credentials or the
    /// user's rights — as opposed to a server that did not answer (yet):
    /// asking again will not change it, the configuration must.
    pub fn is_refusal(&self) -> bool {
        match self {
            MongoError::Tls(_) | MongoError::Auth(_) => true,
            // Unauthorized, AuthenticationFailed, UserNotFound.
            MongoError::Command { code, .. } => matches!(code, 13 | 18 | 11),
            MongoError::Connect(_)
            | MongoError::Timeout(_)
            | MongoError::Io(_)
            | MongoError::Malformed(_) => false,
        }
    }

    /// A read or write error; under TLS 1.3 the server's refusal of the
    /// client's certificate arrives as an alert on the first read, after
    /// the client's side of the handshake has completed: that is a TLS
    /// refusal, not a connection that broke.
    fn wire(e: std::io::Error) -> MongoError {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => MongoError::Tls(tls.to_string()),
            None => MongoError::Io(e),
        }
    }

    fn malformed(e: impl std::fmt::Display) -> MongoError {
        MongoError::Malformed(e.to_string())
    }
}

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

fn number(v: RawBsonRef<'_>) -> Option<f64> {
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

/// `cmd` as an OP_MSG with one body section (`$db` added: admin).
pub fn command_request(request_id: i32, cmd: &Document) -> Vec<u8> {
    let mut cmd = cmd.clone();
    if !cmd.contains_key("$db") {
        cmd.insert("$db", "admin");
    }
    let body = cmd.to_vec().expect("a command document encodes");
    let mut msg = Vec::with_capacity(21 + body.len());
    msg.extend_from_slice(&(21 + body.len() as i32).to_le_bytes());
    msg.extend_from_slice(&request_id.to_le_bytes());
    msg.extend_from_slice(&0i32.to_le_bytes());
    msg.extend_from_slice(&OP_MSG.to_le_bytes());
    msg.extend_from_slice(&0u32.to_le_bytes()); // flagBits
    msg.push(0); // section kind 0: the body
    msg.extend_from_slice(&body);
    msg
}

/// `{hello: 1, $db: "admin"}` as an OP_MSG.
pub fn hello_request(request_id: i32) -> Vec<u8> {
    command_request(request_id, &doc! { "hello": 1i32 })
}

/// The body document of the reply to request `request_id`.
pub fn reply_body(msg: &[u8], request_id: i32) -> Result<&RawDocument, MongoError> {
    let bad = |s: &str| MongoError::Malformed(s.to_string());
    if msg.len() < 21 {
        return Err(bad("shorter than an OP_MSG"));
    }
    let word = |i: usize| i32::from_le_bytes(msg[i..i + 4].try_into().unwrap());
    if word(12) != OP_MSG {
        return Err(MongoError::Malformed(format!(
            "opCode {} (expected OP_MSG 2013)",
            word(12)
        )));
    }
    if word(8) != request_id {
        return Err(MongoError::Malformed(format!(
            "reply to request {}, not {request_id}",
            word(8)
        )));
    }
    if msg[20] != 0 {
        return Err(bad("first section is not a body"));
    }
    let body = &msg[21..];
    let size = i32::from_le_bytes(
        body.get(0..4)
            .ok_or_else(|| bad("truncated body"))?
            .try_into()
            .unwrap(),
    );
    if size < 5 || size as usize > body.len() {
        return Err(MongoError::Malformed(format!(
            "document size {size} (have {} bytes)",
            body.len()
        )));
    }
    let doc = RawDocument::from_bytes(&body[..size as usize]).map_err(MongoError::malformed)?;
    // Walk it once: every element must be well-formed, nested ones too, so
    // that a reader further on meets no surprise.
    validate(doc, 0)?;
    Ok(doc)
}

/// Every element of `d` (and of its documents and arrays) parses.
fn validate(d: &RawDocument, depth: usize) -> Result<(), MongoError> {
    if depth > 32 {
        return Err(MongoError::Malformed(
            "documents nested deeper than 32".into(),
        ));
    }
    for element in d {
        let (_, v) = element.map_err(MongoError::malformed)?;
        match v {
            RawBsonRef::Document(inner) => validate(inner, depth + 1)?,
            RawBsonRef::Array(a) => {
                for item in a {
                    if let RawBsonRef::Document(inner) = item.map_err(MongoError::malformed)? {
                        validate(inner, depth + 1)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The reply to `hello` request `request_id`.
pub fn parse_reply(msg: &[u8], request_id: i32) -> Result<Hello, MongoError> {
    Hello::from_doc(reply_body(msg, request_id)?)
}

/// The reply to `connPoolStats` request `request_id`.
pub fn parse_router_reply(msg: &[u8], request_id: i32) -> Result<RouterView, MongoError> {
    RouterView::from_doc(reply_body(msg, request_id)?)
}

/// The reply to `replSetGetStatus` request `request_id`.
pub fn parse_status_reply(msg: &[u8], request_id: i32) -> Result<MemberStatus, MongoError> {
    MemberStatus::from_doc(reply_body(msg, request_id)?)
}

/// Where a probe connects: an address, and TLS when the servers require it.
#[derive(Clone)]
pub struct Target {
    /// The server's address.
    pub addr: std::net::SocketAddr,
    /// TLS settings, when the servers require TLS.
    pub tls: Option<Tls>,
}

/// TLS to one server: the client configuration (CA, client certificate)
/// and the name the server's certificate must carry.
#[derive(Clone)]
pub struct Tls {
    /// The client configuration: the CA, and the client certificate if any.
    pub config: std::sync::Arc<rustls::ClientConfig>,
    /// The name the server's certificate must carry.
    pub name: rustls::pki_types::ServerName<'static>,
}

impl Target {
    /// `addr` without TLS.
    pub fn plain(addr: std::net::SocketAddr) -> Target {
        Target { addr, tls: None }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tls {
            None => write!(f, "{}", self.addr),
            Some(t) => write!(f, "{} (TLS, {})", self.addr, t.name.to_str()),
        }
    }
}

/// Why a TLS client configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsFileError {
    /// A PEM file could not be read or held nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the configuration (the client certificate and key).
    #[error("{0}")]
    Config(String),
}

/// The client side of TLS for the MongoDB gates: trust `ca` (PEM), and
/// present `cert` + `key` (PEM) when given (servers with
/// `net.tls.mode: requireTLS` and `CAFile` ask for one).
pub fn tls_config(
    ca: &std::path::Path,
    client: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, TlsFileError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    let at = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |e: &dyn std::fmt::Display| TlsFileError::File {
            path: path.clone(),
            reason: e.to_string(),
        }
    };
    let bad_ca = at(ca);
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad_ca(&e))? {
        let cert = cert.map_err(|e| bad_ca(&e))?;
        roots.add(cert).map_err(|e| bad_ca(&e))?;
    }
    if roots.is_empty() {
        return Err(bad_ca(&"no certificate in it"));
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsFileError::Config(e.to_string()))?
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| at(cert)(&e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| at(key)(&e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsFileError::Config(format!("client certificate: {e}")))?
        }
    };
    Ok(std::sync::Arc::new(config))
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// One connection to a server: commands in turn, each answered before the
/// next is sent.
pub struct Conn {
    stream: Box<dyn Io>,
    next_id: i32,
}

impl Conn {
    /// Connects over TCP, then TLS when `target` has it. It sets no timeout of its own: [`with_conn`] does.
    pub async fn connect(target: &Target) -> Result<Conn, MongoError> {
        let tcp = tokio::net::TcpStream::connect(target.addr)
            .await
            .map_err(MongoError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = match &target.tls {
            None => Box::new(tcp),
            Some(tls) => Box::new(
                tokio_rustls::TlsConnector::from(tls.config.clone())
                    .connect(tls.name.clone(), tcp)
                    .await
                    .map_err(|e| MongoError::Tls(e.to_string()))?,
            ),
        };
        Ok(Conn { stream, next_id: 1 })
    }

    /// Sends `cmd`; returns the whole reply message and its request id
    /// (for [`reply_body`] and the `parse_*` functions).
    pub async fn run(&mut self, cmd: &Document) -> Result<(Vec<u8>, i32), MongoError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.stream
            .write_all(&command_request(id, cmd))
            .await
            .map_err(MongoError::wire)?;
        let mut header = [0u8; 16];
        self.stream
            .read_exact(&mut header)
            .await
            .map_err(MongoError::wire)?;
        let len = i32::from_le_bytes(header[0..4].try_into().unwrap());
        if len < 21 || len as usize > MAX_REPLY {
            return Err(MongoError::Malformed(format!("message length {len}")));
        }
        let mut whole = header.to_vec();
        whole.resize(len as usize, 0);
        self.stream
            .read_exact(&mut whole[16..])
            .await
            .map_err(MongoError::wire)?;
        Ok((whole, id))
    }

    /// Authenticates the connection: `hello` with `saslSupportedMechs`
    /// picks the mechanism, then `saslStart` / `saslContinue` (SCRAM).
    /// A refusal (MongoDB's code 18, "Authentication failed.") or a server
    /// that cannot prove it holds the user is [`MongoError::Auth`].
    pub async fn authenticate(
        &mut self,
        creds: &crate::health::scram::Credentials,
    ) -> Result<(), MongoError> {
        use crate::health::scram::{Conversation, Mechanism};
        use bson::{spec::BinarySubtype, Binary};
        let (m, id) = self
            .run(&doc! { "hello": 1i32, "saslSupportedMechs": creds.namespace() })
            .await?;
        let reply = reply_body(&m, id)?;
        let offered: Option<Vec<String>> = match reply
            .get("saslSupportedMechs")
            .map_err(MongoError::malformed)?
        {
            Some(RawBsonRef::Array(a)) => Some(
                a.into_iter()
                    .filter_map(|v| match v {
                        Ok(RawBsonRef::String(s)) => Some(s.to_string()),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        };
        let mech = Mechanism::pick(offered.as_deref()).map_err(MongoError::Auth)?;
        let mut conv = Conversation::new(creds, mech);
        let binary = |bytes: Vec<u8>| Binary {
            subtype: BinarySubtype::Generic,
            bytes,
        };
        let start = doc! {
            "saslStart": 1i32,
            "mechanism": mech.name(),
            "payload": binary(conv.client_first()),
            "autoAuthorize": 1i32,
            "options": { "skipEmptyExchange": true },
            "$db": creds.source.clone(),
        };
        let (id_, payload, _) = self.sasl_step("saslStart", &start).await?;
        let client_final = conv.client_final(&payload).map_err(MongoError::Auth)?;
        let cont = doc! {
            "saslContinue": 1i32,
            "conversationId": id_,
            "payload": binary(client_final),
            "$db": creds.source.clone(),
        };
        let (_, payload, mut done) = self.sasl_step("saslContinue", &cont).await?;
        conv.verify_server_final(&payload)
            .map_err(MongoError::Auth)?;
        // A server that does not skip the empty exchange wants one more.
        let mut rounds = 0;
        while !done {
            rounds += 1;
            if rounds > 2 {
                return Err(MongoError::Auth(
                    crate::health::scram::ScramError::Protocol(
                        "the conversation does not end".into(),
                    ),
                ));
            }
            let empty = doc! {
                "saslContinue": 1i32,
                "conversationId": id_,
                "payload": binary(Vec::new()),
                "$db": creds.source.clone(),
            };
            done = self.sasl_step("saslContinue", &empty).await?.2;
        }
        Ok(())
    }

    /// One SASL round: (conversationId, payload, done).
    async fn sasl_step(
        &mut self,
        command: &str,
        cmd: &Document,
    ) -> Result<(i32, Vec<u8>, bool), MongoError> {
        let (m, id) = self.run(cmd).await?;
        let d = reply_body(&m, id)?;
        match command_ok(command, d) {
            Ok(()) => {}
            Err(MongoError::Command { code, message, .. }) => {
                return Err(MongoError::Auth(crate::health::scram::ScramError::Refused(
                    format!("{message} (code {code})"),
                )))
            }
            Err(e) => return Err(e),
        }
        let conversation = match d.get("conversationId").map_err(MongoError::malformed)? {
            Some(v) => number(v).unwrap_or(0.0) as i32,
            None => 0,
        };
        let payload = match d.get("payload").map_err(MongoError::malformed)? {
            Some(RawBsonRef::Binary(b)) => b.bytes.to_vec(),
            _ => {
                return Err(MongoError::Malformed(format!(
                    "{command} reply without a payload"
                )))
            }
        };
        let done = matches!(
            d.get("done").map_err(MongoError::malformed)?,
            Some(RawBsonRef::Boolean(true))
        );
        Ok((conversation, payload, done))
    }

    /// Sends `hello`: what the server is.
    pub async fn hello(&mut self) -> Result<Hello, MongoError> {
        let (m, id) = self.run(&doc! { "hello": 1i32 }).await?;
        parse_reply(&m, id)
    }

    /// Sends `connPoolStats` (to a mongos): its view of the replica sets.
    pub async fn router_view(&mut self) -> Result<RouterView, MongoError> {
        let (m, id) = self.run(&doc! { "connPoolStats": 1i32 }).await?;
        parse_router_reply(&m, id)
    }

    /// Sends `replSetGetStatus` (to a member): its state, its primary and its lag.
    pub async fn member_status(&mut self) -> Result<MemberStatus, MongoError> {
        let (m, id) = self.run(&doc! { "replSetGetStatus": 1i32 }).await?;
        parse_status_reply(&m, id)
    }
}

/// `f` on a fresh connection to `target`, all within `timeout`.
pub async fn with_conn<T, F>(target: &Target, timeout: Duration, f: F) -> Result<T, MongoError>
where
    F: for<'c> FnOnce(
        &'c mut Conn,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<T, MongoError>> + Send + 'c>,
    >,
{
    let exchange = async {
        let mut conn = Conn::connect(target).await?;
        f(&mut conn).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| MongoError::Timeout(timeout.as_secs_f64()))?
}

/// MongoDB's rolling order, one member: if the server at `addr` is its
/// set's primary, `replSetStepDown` (it waits up to `catch_up` for an
/// electable secondary to catch up, `secondaryCatchUpPeriodSecs`, and
/// refuses with ExceededTimeLimit, 262, when none does), then `hello`
/// until it says it is no longer primary. `Ok(false)`: it was not primary.
/// Each exchange is bounded by `timeout` beyond the catch-up period.
pub async fn step_down(
    target: &Target,
    creds: Option<&crate::health::scram::Credentials>,
    catch_up: Duration,
    timeout: Duration,
) -> Result<bool, MongoError> {
    let catch_up_s = catch_up.as_secs().max(1) as i64;
    let asked = tokio::time::timeout(catch_up + timeout, async {
        let mut conn = Conn::connect(target).await?;
        if !conn.hello().await?.writable_primary {
            return Ok(false);
        }
        if let Some(creds) = creds {
            conn.authenticate(creds).await?;
        }
        // The primary stays ineligible for stepDownSecs: long enough for
        // its restart to begin, as MongoDB's procedure does (60 s default).
        let cmd = doc! {
            "replSetStepDown": (catch_up_s * 2).max(60),
            "secondaryCatchUpPeriodSecs": catch_up_s,
        };
        match conn.run(&cmd).await {
            Ok((m, id)) => command_ok("replSetStepDown", reply_body(&m, id)?)?,
            // Servers before 4.2 close every connection as they step down.
            Err(MongoError::Io(_)) => {}
            Err(e) => return Err(e),
        }
        Ok(true)
    })
    .await
    .map_err(|_| MongoError::Timeout((catch_up + timeout).as_secs_f64()))??;
    if !asked {
        return Ok(false);
    }
    // It answers secondary now (or soon): look on a fresh connection.
    let until = tokio::time::Instant::now() + timeout + Duration::from_secs(10);
    loop {
        if let Ok(h) = hello(target, timeout).await {
            if !h.writable_primary {
                return Ok(true);
            }
        }
        if tokio::time::Instant::now() >= until {
            return Err(MongoError::Malformed(
                "replSetStepDown answered, yet the member still says it is primary".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Connects to `target`, sends `hello` and reads the answer, all within `timeout`.
pub async fn hello(target: &Target, timeout: Duration) -> Result<Hello, MongoError> {
    with_conn(target, timeout, |c| Box::pin(c.hello())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply assembled by hand from the BSON and OP_MSG specifications
    /// (not by our own encoder): a SECONDARY of replica set "rs0" with the
    /// field types a real mongod sends (ObjectId, dates, embedded documents,
    /// arrays, timestamps, binary, int64).
    fn secondary_reply(responding_to: i32) -> Vec<u8> {
        let mut d: Vec<u8> = vec![0, 0, 0, 0];
        let mut field = |kind: u8, name: &str, value: &[u8]| {
            d.push(kind);
            d.extend_from_slice(name.as_bytes());
            d.push(0);
            d.extend_from_slice(value);
        };
        let string =
            |s: &str| [&(s.len() as i32 + 1).to_le_bytes()[..], s.as_bytes(), &[0]].concat();
        // {"counter": int64 0} and ["a:27017"] as embedded documents.
        let tv = [
            &22i32.to_le_bytes()[..],
            &[0x12],
            b"counter\0",
            &0i64.to_le_bytes(),
            &[0],
        ]
        .concat();
        let hosts = [
            &20i32.to_le_bytes()[..],
            &[0x02],
            b"0\0",
            &string("a:27017"),
            &[0],
        ]
        .concat();
        field(0x03, "topologyVersion", &tv);
        field(0x04, "hosts", &hosts);
        field(0x02, "setName", &string("rs0"));
        field(0x10, "setVersion", &3i32.to_le_bytes());
        field(0x08, "isWritablePrimary", &[0]);
        field(0x08, "secondary", &[1]);
        field(0x07, "electionId", &[0x7f; 12]);
        field(0x09, "localTime", &1_700_000_000_000i64.to_le_bytes());
        field(
            0x05,
            "sig",
            &[&3i32.to_le_bytes()[..], &[0x00], b"abc"].concat(),
        );
        field(0x11, "operationTime", &7u64.to_le_bytes());
        field(0x0A, "nothing", &[]);
        field(0x01, "ok", &1.0f64.to_le_bytes());
        d.push(0);
        let n = d.len() as i32;
        d[0..4].copy_from_slice(&n.to_le_bytes());
        let mut m = Vec::new();
        m.extend_from_slice(&(21 + n).to_le_bytes());
        m.extend_from_slice(&99i32.to_le_bytes());
        m.extend_from_slice(&responding_to.to_le_bytes());
        m.extend_from_slice(&2013i32.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.push(0);
        m.extend_from_slice(&d);
        m
    }

    #[test]
    fn request_is_the_documented_op_msg() {
        let r = hello_request(7);
        // header: length, requestID 7, responseTo 0, opCode 2013; flags 0; kind 0.
        assert_eq!(
            i32::from_le_bytes(r[0..4].try_into().unwrap()) as usize,
            r.len()
        );
        assert_eq!(&r[4..16], &[7, 0, 0, 0, 0, 0, 0, 0, 0xdd, 0x07, 0, 0]);
        assert_eq!(&r[16..21], &[0, 0, 0, 0, 0]);
        let doc = bson::Document::from_reader(&r[21..]).unwrap();
        assert_eq!(doc, doc! { "hello": 1i32, "$db": "admin" });
    }

    /// A reply message around `body` (answering request `to`).
    fn reply(to: i32, body: &Document) -> Vec<u8> {
        let mut m = command_request(99, body);
        m[8..12].copy_from_slice(&to.to_le_bytes());
        m
    }

    #[test]
    fn router_view_names_each_set_without_a_reachable_primary() {
        // The documented connPoolStats shape (docs/research/mongo-gates.md):
        // shardB's only host is down, as the monitor reports an unknown host.
        let body = doc! {
            "numClientConnections": 0i32,
            "replicaSets": {
                "csRS": { "hosts": [ { "addr": "cfg1:27019", "ok": true, "ismaster": true, "hidden": false, "secondary": false, "pingTimeMillis": 0.4 } ] },
                "shardA": { "hosts": [
                    { "addr": "a1:27018", "ok": true, "ismaster": false, "secondary": true },
                    { "addr": "a2:27018", "ok": true, "ismaster": true, "secondary": false } ] },
                "shardB": { "hosts": [ { "addr": "b1:27018", "ok": false, "ismaster": false, "hidden": false, "secondary": false, "pingTimeMillis": 9.223372036854776e18 } ] },
            },
            "ok": 1.0,
        };
        let view = parse_router_reply(&reply(3, &body), 3).unwrap();
        assert_eq!(view.sets.len(), 3);
        let all: Vec<String> = ["csRS", "shardA", "shardB", "shardC"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            view.unreachable(&all),
            vec![
                "shardB (no primary reachable: b1:27018 unreachable)".to_string(),
                "shardC (not monitored by this router)".to_string(),
            ]
        );
        assert!(view.unreachable(&all[..2]).is_empty());
        // No expectation: every monitored set, and at least one.
        assert_eq!(view.unreachable(&[]).len(), 1);
        assert_eq!(RouterView::default().unreachable(&[]).len(), 1);
    }

    #[test]
    fn an_unauthorized_command_is_an_error_with_the_servers_code() {
        let body = doc! { "ok": 0.0, "errmsg": "command connPoolStats requires authentication", "code": 13i32, "codeName": "Unauthorized" };
        match parse_router_reply(&reply(4, &body), 4) {
            Err(MongoError::Command {
                code: 13, message, ..
            }) => assert!(message.contains("requires authentication")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn member_lag_is_the_primarys_optime_date_minus_its_own() {
        let at = |ms: i64| bson::DateTime::from_millis(ms);
        let body = doc! {
            "set": "rs0",
            "members": [
                { "_id": 0i32, "name": "a:27018", "state": 1i32, "stateStr": "PRIMARY", "optimeDate": at(1_700_000_012_500) },
                { "_id": 1i32, "name": "b:27018", "state": 2i32, "stateStr": "SECONDARY", "optimeDate": at(1_700_000_000_000), "self": true },
            ],
            "ok": 1i32,
        };
        let st = parse_status_reply(&reply(5, &body), 5).unwrap();
        assert_eq!(
            (st.state, st.primary.as_deref()),
            (Some(2), Some("a:27018"))
        );
        assert_eq!(st.lag_ms(), Ok(12_500));
        // Dates at the ends of the range (the fuzzer's find: an overflow).
        let body = doc! { "members": [
            { "name": "a", "state": 1i32, "optimeDate": at(i64::MAX) },
            { "name": "b", "state": 2i32, "optimeDate": at(i64::MIN), "self": true },
        ], "ok": 1i32 };
        assert_eq!(
            parse_status_reply(&reply(7, &body), 7).unwrap().lag_ms(),
            Ok(i64::MAX)
        );
        // No primary: no lag to speak of.
        let body = doc! { "members": [ { "name": "b:27018", "state": 2i32, "optimeDate": at(1), "self": true } ], "ok": 1i32 };
        let st = parse_status_reply(&reply(6, &body), 6).unwrap();
        assert_eq!(st.primary, None);
        assert!(st.lag_ms().is_err());
    }

    #[test]
    fn secondary_reply_with_every_field_type_is_a_secondary() {
        let h = parse_reply(&secondary_reply(5), 5).unwrap();
        assert_eq!(
            h,
            Hello {
                ok: true,
                secondary: true,
                set_name: Some("rs0".into()),
                hosts: vec!["a:27017".into()],
                ..Hello::default()
            }
        );
        assert_eq!(h.server_type(), ServerType::RSSecondary);
        assert_eq!(
            h.member_verdict(Some("rs0"), false),
            Ok(ServerType::RSSecondary)
        );
    }

    /// One reply per SDAM server type and edge, written here from the
    /// rules of the specification's "Parsing a hello or legacy hello
    /// response" → "type" (mongodb/specifications,
    /// source/server-discovery-and-monitoring/server-discovery-and-monitoring.md),
    /// with the member gate's verdict for a container labelled `rs0` and
    /// for one without a replica-set label. Checked against the spec's own
    /// test files (rs/, single/, sharded/: read, not copied; they are
    /// CC BY-NC-SA).
    #[test]
    fn every_sdam_server_type_and_the_member_gates_verdict() {
        use ServerType::*;
        // (what, reply, type, passes as a member of rs0, passes unlabelled)
        let table: Vec<(&str, Document, ServerType, bool, bool)> = vec![
            (
                "ok: 0",
                doc! { "ok": 0.0, "errmsg": "node is shutting down" },
                Unknown,
                false,
                false,
            ),
            (
                "no ok at all",
                doc! { "isWritablePrimary": true },
                Unknown,
                false,
                false,
            ),
            (
                "ok: 1 as an int32",
                doc! { "ok": 1i32, "isWritablePrimary": true },
                Standalone,
                false,
                true,
            ),
            (
                "standalone",
                doc! { "ok": 1.0, "isWritablePrimary": true, "maxWireVersion": 21i32 },
                Standalone,
                false,
                true,
            ),
            (
                "mongos",
                doc! { "ok": 1.0, "isWritablePrimary": true, "msg": "isdbgrid" },
                Mongos,
                false,
                true,
            ),
            (
                "primary",
                doc! { "ok": 1.0, "isWritablePrimary": true, "secondary": false, "setName": "rs0", "hosts": ["a:27018", "b:27018"] },
                RSPrimary,
                true,
                true,
            ),
            (
                "primary, legacy ismaster only",
                doc! { "ok": 1.0, "ismaster": true, "secondary": false, "setName": "rs0" },
                RSPrimary,
                true,
                true,
            ),
            (
                "isWritablePrimary wins over ismaster",
                doc! { "ok": 1.0, "isWritablePrimary": false, "ismaster": true, "secondary": true, "setName": "rs0" },
                RSSecondary,
                true,
                true,
            ),
            (
                "secondary",
                doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": true, "setName": "rs0" },
                RSSecondary,
                true,
                true,
            ),
            (
                "arbiter",
                doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": false, "arbiterOnly": true, "setName": "rs0" },
                RSArbiter,
                false,
                false,
            ),
            (
                "hidden secondary",
                doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": true, "hidden": true, "setName": "rs0" },
                RSOther,
                false,
                false,
            ),
            (
                "STARTUP2 / RECOVERING",
                doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": false, "setName": "rs0" },
                RSOther,
                false,
                false,
            ),
            (
                "STARTUP, no config",
                doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": false, "isreplicaset": true, "info": "Does not have a valid replica set config" },
                RSGhost,
                false,
                false,
            ),
            (
                "isreplicaset with a setName",
                doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": true, "isreplicaset": true, "setName": "rs0" },
                RSGhost,
                false,
                false,
            ),
            (
                "isreplicaset: false",
                doc! { "ok": 1.0, "isWritablePrimary": true, "isreplicaset": false },
                Standalone,
                false,
                true,
            ),
            (
                "secondary of another set",
                doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": true, "setName": "rs1" },
                RSSecondary,
                false,
                true,
            ),
            (
                "isdbgrid beats a setName",
                doc! { "ok": 1.0, "isWritablePrimary": true, "msg": "isdbgrid", "setName": "rs0" },
                Mongos,
                false,
                true,
            ),
        ];
        let mut failures = Vec::new();
        for (what, body, want, in_rs0, unlabelled) in &table {
            let h = parse_reply(&reply(9, body), 9).unwrap();
            let got = (
                h.server_type(),
                h.member_verdict(Some("rs0"), false).is_ok(),
                h.member_verdict(None, false).is_ok(),
            );
            if got != (*want, *in_rs0, *unlabelled) {
                failures.push(format!(
                    "{what}: got {got:?}, want {:?}",
                    (want, in_rs0, unlabelled)
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn a_failed_verdict_names_the_type_and_both_set_names() {
        let h = |body: Document| parse_reply(&reply(9, &body), 9).unwrap();
        let ghost = h(
            doc! { "ok": 1.0, "isWritablePrimary": false, "secondary": false, "isreplicaset": true },
        );
        assert_eq!(
            ghost.member_verdict(Some("rs0"), false),
            Err("RSGhost (no replica-set config yet)".into())
        );
        let other = h(doc! { "ok": 1.0, "secondary": true, "setName": "rs1" });
        let why = other.member_verdict(Some("rs0"), false).unwrap_err();
        assert!(
            why.contains("RSSecondary") && why.contains("rs1") && why.contains("rs0"),
            "{why}"
        );
        let mongos = h(doc! { "ok": 1.0, "msg": "isdbgrid" });
        let why = mongos.member_verdict(Some("rs0"), false).unwrap_err();
        assert!(
            why.starts_with("Mongos (a router where a member is expected)"),
            "{why}"
        );
        let arbiter = h(doc! { "ok": 1.0, "arbiterOnly": true, "setName": "rs0" });
        assert!(arbiter
            .member_verdict(Some("rs0"), false)
            .unwrap_err()
            .starts_with("RSArbiter"));
        assert_eq!(
            arbiter.member_verdict(Some("rs0"), true),
            Ok(ServerType::RSArbiter)
        );
        let down = h(doc! { "ok": 0.0, "errmsg": "node is shutting down" });
        assert_eq!(
            down.member_verdict(None, false),
            Err("Unknown (node is shutting down)".into())
        );
    }

    /// Bad input (issue 24): a field of the wrong BSON type, `hosts` with a
    /// non-string, a 10 MB `setName` — a reason, never a panic.
    #[test]
    fn hello_fields_of_the_wrong_type_or_size_are_malformed() {
        let bad = [
            (
                doc! { "ok": 1.0, "isreplicaset": 1i32 },
                "isreplicaset is an int32, expected a boolean",
            ),
            (
                doc! { "ok": 1.0, "secondary": "yes", "setName": "rs0" },
                "secondary is a string",
            ),
            (doc! { "ok": 1.0, "setName": 7i32 }, "setName is an int32"),
            (
                doc! { "ok": 1.0, "setName": "rs0", "hosts": ["a:1", 2i32] },
                "hosts.1 is an int32",
            ),
            (
                doc! { "ok": 1.0, "setName": "rs0", "hosts": "a:1" },
                "hosts is a string",
            ),
            (
                doc! { "ok": 1.0, "setName": "x".repeat(10 << 20) },
                "setName of 10485760 bytes",
            ),
        ];
        for (body, want) in bad {
            match parse_reply(&reply(9, &body), 9) {
                Err(MongoError::Malformed(m)) => assert!(m.contains(want), "{m} / {want}"),
                other => panic!("{want}: {other:?}"),
            }
        }
    }

    #[test]
    fn missing_optime_dates_fail_instead_of_counting_as_caught_up() {
        let at = |ms: i64| bson::DateTime::from_millis(ms);
        let status = |members: Vec<Document>| {
            let body = doc! { "set": "rs0", "members": members, "ok": 1i32 };
            parse_status_reply(&reply(5, &body), 5).unwrap()
        };
        let no_own = status(vec![
            doc! { "name": "a:1", "state": 1i32, "optimeDate": at(10_000) },
            doc! { "name": "b:1", "state": 2i32, "self": true },
        ]);
        assert!(no_own
            .lag_ms()
            .unwrap_err()
            .contains("no optimeDate of its own"));
        let no_primarys = status(vec![
            doc! { "name": "a:1", "state": 1i32 },
            doc! { "name": "b:1", "state": 2i32, "optimeDate": at(1), "self": true },
        ]);
        assert!(no_primarys
            .lag_ms()
            .unwrap_err()
            .contains("primary a:1 reports no optimeDate"));
        // STARTUP2 with its config: ok 1, myState 5, no primary yet.
        let body = doc! { "set": "rs0", "myState": 5i32, "members": [ { "name": "b:1", "self": true } ], "ok": 1i32 };
        let st = parse_status_reply(&reply(5, &body), 5).unwrap();
        assert_eq!(st.state, Some(5));
        assert!(st.lag_ms().unwrap_err().contains("no primary"));
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let good = secondary_reply(5);
        assert!(
            matches!(parse_reply(&good, 6), Err(MongoError::Malformed(m)) if m.contains("request 5"))
        );
        // Every truncation and every single corrupted byte: an answer or an error, never a panic.
        for n in 0..good.len() {
            let _ = parse_reply(&good[..n], 5);
        }
        for i in 0..good.len() {
            for b in [0x00, 0x7f, 0xff] {
                let mut m = good.clone();
                m[i] = b;
                let _ = parse_reply(&m, 5);
            }
        }
    }
}
