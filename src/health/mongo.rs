//! MongoDB's `hello` over the wire protocol (OP_MSG), the command drivers
//! use to discover a server: it needs no credentials and says what a TCP
//! connect cannot — whether a replica-set member is PRIMARY or SECONDARY
//! yet, or still in STARTUP2 / RECOVERING after its restart.
//!
//! Only what the probe needs: one request document out, the reply's
//! top-level fields in (BSON, parsed by skipping what it does not read).

use crate::model::Health;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OP_MSG: i32 = 2013;
/// The largest reply accepted (a hello reply is a few hundred bytes; the
/// server's own limit is 48 MB).
const MAX_REPLY: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MongoError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("no reply within {0}s")]
    Timeout(f64),
    #[error("wire: {0}")]
    Io(std::io::Error),
    #[error("malformed reply: {0}")]
    Malformed(String),
}

/// What `hello` says about the server.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hello {
    pub ok: bool,
    pub writable_primary: bool,
    pub secondary: bool,
    pub arbiter: bool,
    /// Replica set name; `None` for a standalone or a mongos.
    pub set_name: Option<String>,
    /// `"isdbgrid"` from a mongos.
    pub msg: Option<String>,
    /// The server's error message when `ok` is 0.
    pub errmsg: Option<String>,
}

impl Hello {
    /// Healthy: a mongos or a standalone that answers, or a replica-set
    /// member that is primary, secondary or arbiter. A member in any other
    /// state (STARTUP2, RECOVERING, ROLLBACK…) is still starting.
    pub fn health(&self) -> Health {
        if !self.ok {
            return Health::Starting;
        }
        let router = self.msg.as_deref() == Some("isdbgrid");
        if router
            || self.set_name.is_none()
            || self.writable_primary
            || self.secondary
            || self.arbiter
        {
            Health::Healthy
        } else {
            Health::Starting
        }
    }
}

/// Connects to `addr`, sends `hello` and reads the answer, all within `timeout`.
pub async fn hello(addr: std::net::SocketAddr, timeout: Duration) -> Result<Hello, MongoError> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(MongoError::Connect)?;
        stream
            .write_all(&hello_request(1))
            .await
            .map_err(MongoError::Io)?;
        let mut header = [0u8; 16];
        stream
            .read_exact(&mut header)
            .await
            .map_err(MongoError::Io)?;
        let len = i32::from_le_bytes(header[0..4].try_into().unwrap());
        if len < 21 || len as usize > MAX_REPLY {
            return Err(MongoError::Malformed(format!("message length {len}")));
        }
        let mut rest = vec![0u8; len as usize - 16];
        stream.read_exact(&mut rest).await.map_err(MongoError::Io)?;
        let mut whole = header.to_vec();
        whole.extend_from_slice(&rest);
        parse_reply(&whole, 1)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| MongoError::Timeout(timeout.as_secs_f64()))?
}

/// `{hello: 1, $db: "admin"}` as an OP_MSG with one body section.
pub fn hello_request(request_id: i32) -> Vec<u8> {
    let mut doc = Vec::new();
    doc.extend_from_slice(&[0; 4]);
    doc.push(0x10); // int32
    doc.extend_from_slice(b"hello\0");
    doc.extend_from_slice(&1i32.to_le_bytes());
    doc.push(0x02); // string
    doc.extend_from_slice(b"$db\0");
    doc.extend_from_slice(&6i32.to_le_bytes());
    doc.extend_from_slice(b"admin\0");
    doc.push(0);
    let n = doc.len() as i32;
    doc[0..4].copy_from_slice(&n.to_le_bytes());
    let mut msg = Vec::with_capacity(21 + doc.len());
    msg.extend_from_slice(&(21 + doc.len() as i32).to_le_bytes());
    msg.extend_from_slice(&request_id.to_le_bytes());
    msg.extend_from_slice(&0i32.to_le_bytes());
    msg.extend_from_slice(&OP_MSG.to_le_bytes());
    msg.extend_from_slice(&0u32.to_le_bytes()); // flagBits
    msg.push(0); // section kind 0: the body
    msg.extend_from_slice(&doc);
    msg
}

/// The reply to request `request_id`: an OP_MSG whose body is the hello document.
pub fn parse_reply(msg: &[u8], request_id: i32) -> Result<Hello, MongoError> {
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
    let mut hello = Hello::default();
    for (key, value) in Document::parse(&msg[21..])? {
        match (key, value) {
            ("ok", v) => hello.ok = v.as_f64() == Some(1.0),
            ("isWritablePrimary" | "ismaster", Value::Bool(b)) => hello.writable_primary |= b,
            ("secondary", Value::Bool(b)) => hello.secondary = b,
            ("arbiterOnly", Value::Bool(b)) => hello.arbiter = b,
            ("setName", Value::Str(s)) => hello.set_name = Some(s.to_string()),
            ("msg", Value::Str(s)) => hello.msg = Some(s.to_string()),
            ("errmsg", Value::Str(s)) => hello.errmsg = Some(s.to_string()),
            _ => {}
        }
    }
    Ok(hello)
}

/// A top-level BSON value the probe reads; others are skipped.
#[derive(Debug, PartialEq)]
enum Value<'a> {
    Double(f64),
    Int(i64),
    Bool(bool),
    Str(&'a str),
    Other,
}

impl Value<'_> {
    fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Double(d) => Some(d),
            Value::Int(i) => Some(i as f64),
            _ => None,
        }
    }
}

/// The elements of one BSON document, in order.
struct Document;

impl Document {
    fn parse(bytes: &[u8]) -> Result<Vec<(&str, Value<'_>)>, MongoError> {
        let bad = |s: String| MongoError::Malformed(s);
        let i32_at = |i: usize| -> Result<i32, MongoError> {
            bytes
                .get(i..i + 4)
                .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
                .ok_or_else(|| bad(format!("truncated at byte {i}")))
        };
        let size = i32_at(0)?;
        if size < 5 || size as usize > bytes.len() {
            return Err(bad(format!(
                "document size {size} (have {} bytes)",
                bytes.len()
            )));
        }
        let end = size as usize - 1;
        let mut out = Vec::new();
        let mut i = 4;
        while i < end {
            let kind = bytes[i];
            let name_end = bytes[i + 1..end]
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| bad("unterminated field name".into()))?
                + i
                + 1;
            let name = std::str::from_utf8(&bytes[i + 1..name_end])
                .map_err(|_| bad("field name is not UTF-8".into()))?;
            let v = name_end + 1;
            let fixed = |n: usize| -> Result<&[u8], MongoError> {
                bytes
                    .get(v..v + n)
                    .filter(|_| v + n <= end)
                    .ok_or_else(|| bad(format!("field {name:?} truncated")))
            };
            let (value, len) = match kind {
                0x01 => (
                    Value::Double(f64::from_le_bytes(fixed(8)?.try_into().unwrap())),
                    8,
                ),
                0x02 | 0x0D | 0x0E => {
                    let n = i32_at(v)?;
                    let s = bytes
                        .get(v + 4..v + 4 + n.max(1) as usize - 1)
                        .filter(|_| n >= 1 && v + 4 + (n as usize) <= end)
                        .ok_or_else(|| bad(format!("string {name:?} truncated")))?;
                    let s = std::str::from_utf8(s)
                        .map_err(|_| bad(format!("string {name:?} is not UTF-8")))?;
                    (
                        if kind == 0x02 {
                            Value::Str(s)
                        } else {
                            Value::Other
                        },
                        4 + n as usize,
                    )
                }
                0x03 | 0x04 => {
                    let n = i32_at(v)?;
                    if n < 5 || v + n as usize > end {
                        return Err(bad(format!("embedded document {name:?} size {n}")));
                    }
                    (Value::Other, n as usize)
                }
                0x05 => {
                    let n = i32_at(v)?;
                    if n < 0 {
                        return Err(bad(format!("binary {name:?} size {n}")));
                    }
                    (Value::Other, 5 + n as usize)
                }
                0x06 | 0x0A | 0x7F | 0xFF => (Value::Other, 0),
                0x07 => (Value::Other, 12),
                0x08 => (Value::Bool(fixed(1)?[0] != 0), 1),
                0x09 | 0x11 => (Value::Other, 8),
                0x10 => (
                    Value::Int(i32::from_le_bytes(fixed(4)?.try_into().unwrap()) as i64),
                    4,
                ),
                0x12 => (
                    Value::Int(i64::from_le_bytes(fixed(8)?.try_into().unwrap())),
                    8,
                ),
                0x13 => (Value::Other, 16),
                k => {
                    return Err(bad(format!(
                        "field {name:?} has BSON type 0x{k:02x}, which a hello reply does not use"
                    )))
                }
            };
            if v + len > end {
                return Err(bad(format!("field {name:?} runs past the document")));
            }
            out.push((name, value));
            i = v + len;
        }
        if bytes[end] != 0 {
            return Err(bad("document does not end with 0".into()));
        }
        Ok(out)
    }
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
        let doc = Document::parse(&r[21..]).unwrap();
        assert_eq!(
            doc,
            vec![("hello", Value::Int(1)), ("$db", Value::Str("admin"))]
        );
    }

    #[test]
    fn secondary_reply_with_every_field_type_is_healthy() {
        let h = parse_reply(&secondary_reply(5), 5).unwrap();
        assert_eq!(
            h,
            Hello {
                ok: true,
                secondary: true,
                set_name: Some("rs0".into()),
                ..Hello::default()
            }
        );
        assert_eq!(h.health(), Health::Healthy);
    }

    #[test]
    fn member_neither_primary_nor_secondary_is_starting_and_routers_are_healthy() {
        let recovering = Hello {
            ok: true,
            set_name: Some("rs0".into()),
            ..Hello::default()
        };
        assert_eq!(recovering.health(), Health::Starting);
        let mongos = Hello {
            ok: true,
            writable_primary: true,
            msg: Some("isdbgrid".into()),
            ..Hello::default()
        };
        assert_eq!(mongos.health(), Health::Healthy);
        let failed = Hello {
            ok: false,
            errmsg: Some("node is shutting down".into()),
            ..Hello::default()
        };
        assert_eq!(failed.health(), Health::Starting);
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
