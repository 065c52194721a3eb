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
//!
//! Its parts: `reply.rs` reads what a server says (the server type, the
//! router's view, a member's lag), `wire.rs` frames OP_MSG requests and
//! checks replies, `target.rs` says where a probe connects and with what
//! TLS, and `conn.rs` holds one connection's exchanges (authentication, the
//! commands, the rolling order's step-down).

mod conn;
mod reply;
mod target;
mod wire;

pub use conn::{hello, step_down, with_conn, Conn};
pub use reply::{command_ok, Hello, MemberStatus, MonitoredHost, RouterView, ServerType};
pub use target::{tls_config, Target, Tls, TlsFileError};
pub use wire::{
    command_request, hello_request, parse_reply, parse_router_reply, parse_status_reply, reply_body,
};

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

#[cfg(test)]
mod tests;
