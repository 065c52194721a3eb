//! OP_MSG framing: a command as a request message, and a reply's body
//! document checked (opcode, request id, sizes, every nested element) before
//! anything reads it.

use super::reply::{Hello, MemberStatus, RouterView};
use super::MongoError;
use bson::{doc, Document, RawBsonRef, RawDocument};

const OP_MSG: i32 = 2013;
/// The largest reply accepted (connPoolStats on a big cluster is tens of
/// KB; the server's own limit is 48 MB).
pub(super) const MAX_REPLY: usize = 16 << 20;

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
