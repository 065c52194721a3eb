//! One connection to a server and what a gate does over it: connect (TLS
//! when the target has it), send a command and read its reply, authenticate
//! (SCRAM), and the rolling order's step-down of a primary.

use super::reply::{command_ok, number, Hello, MemberStatus, RouterView};
use super::target::Target;
use super::wire::{
    command_request, parse_reply, parse_router_reply, parse_status_reply, reply_body, MAX_REPLY,
};
use super::MongoError;
use bson::{doc, Document, RawBsonRef};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
