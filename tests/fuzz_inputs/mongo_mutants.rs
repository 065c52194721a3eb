//! MongoDB OP_MSG replies: generated frames with their lengths, type bytes
//! and terminators mutated.

use super::generic::{chance, long_string, pick, small, INTS};
use super::*;

pub(super) const BSON_DICT: &[&[u8]] = &[
    b"ok\0",
    b"isWritablePrimary\0",
    b"ismaster\0",
    b"secondary\0",
    b"arbiterOnly\0",
    b"setName\0",
    b"msg\0",
    b"errmsg\0",
    b"\xdd\x07\x00\x00",
    b"\x00\x00\x00\x00\x00",
    b"\x05\x00\x00\x00\x00",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x80",
];

const BSON_KINDS: &[u8] = &[
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10,
    0x11, 0x12, 0x13, 0x7F, 0xFF, 0x00, 0x14, 0x80,
];

const BSON_NAMES: &[&str] = &[
    "ok",
    "isWritablePrimary",
    "ismaster",
    "secondary",
    "arbiterOnly",
    "setName",
    "msg",
    "errmsg",
    "hosts",
    "topologyVersion",
    "",
    "é",
];

/// Where the length fields and type bytes of a generated frame are.
#[derive(Default)]
struct BsonMarks {
    lengths: Vec<usize>,
    kinds: Vec<usize>,
    ends: Vec<usize>,
}

fn bson_string(d: &mut Vec<u8>, marks: &mut BsonMarks, s: &[u8]) {
    marks.lengths.push(d.len());
    d.extend_from_slice(&(s.len() as i32 + 1).to_le_bytes());
    d.extend_from_slice(s);
    d.push(0);
}

fn bson_doc(rng: &mut Rng, d: &mut Vec<u8>, marks: &mut BsonMarks, depth: u32) {
    let start = d.len();
    marks.lengths.push(start);
    d.extend_from_slice(&[0; 4]);
    for _ in 0..small(rng, 12) {
        let kind = if chance(rng, 3) {
            *pick(rng, &[0x01, 0x02, 0x08, 0x10, 0x12])
        } else {
            *pick(rng, BSON_KINDS)
        };
        marks.kinds.push(d.len());
        d.push(kind);
        if chance(rng, 16) {
            d.extend((0..small(rng, 8)).map(|_| rng.next_u64() as u8 | 1));
        } else {
            d.extend_from_slice(pick(rng, BSON_NAMES).as_bytes());
        }
        d.push(0);
        match kind {
            0x01 => {
                let x = *pick(rng, &[1.0, 0.0, -1.0, f64::NAN, f64::INFINITY, 1e308, 0.5]);
                d.extend_from_slice(&x.to_le_bytes());
            }
            0x02 | 0x0D | 0x0E => {
                let s = if chance(rng, 8) {
                    long_string(rng)
                } else {
                    pick(rng, &["rs0", "isdbgrid", "", "node is shutting down", "é"]).to_string()
                };
                bson_string(d, marks, s.as_bytes());
            }
            0x03 | 0x04 if depth < 3 => bson_doc(rng, d, marks, depth + 1),
            0x03 | 0x04 => d.extend_from_slice(&[5, 0, 0, 0, 0]),
            0x05 => {
                let n = small(rng, 32);
                marks.lengths.push(d.len());
                d.extend_from_slice(&(n as i32).to_le_bytes());
                d.push(0);
                d.extend((0..n).map(|_| rng.next_u64() as u8));
            }
            0x06 | 0x0A | 0x7F | 0xFF => {}
            0x07 => d.extend_from_slice(&[0x7f; 12]),
            0x08 => d.push(*pick(rng, &[0, 1, 2, 0xff])),
            0x09 | 0x11 | 0x12 => d.extend_from_slice(&rng.next_u64().to_le_bytes()),
            0x10 => d.extend_from_slice(&(*pick(rng, &[0i32, 1, -1, i32::MAX])).to_le_bytes()),
            0x13 => d.extend_from_slice(&[0x11; 16]),
            _ => d.extend((0..small(rng, 8)).map(|_| rng.next_u64() as u8)),
        }
    }
    marks.ends.push(d.len());
    d.push(0);
    let n = (d.len() - start) as i32;
    d[start..start + 4].copy_from_slice(&n.to_le_bytes());
}

/// A whole OP_MSG reply: header, flags, a kind-0 section and its document.
fn op_msg(rng: &mut Rng, marks: &mut BsonMarks) -> Vec<u8> {
    let mut m = Vec::new();
    marks.lengths.push(0);
    m.extend_from_slice(&[0; 4]);
    m.extend_from_slice(&(rng.next_u64() as i32).to_le_bytes());
    let any = rng.next_u64() as i32;
    let responding = *pick(rng, &[1i32, 5, 0, -1, any]);
    m.extend_from_slice(&responding.to_le_bytes());
    let op = if chance(rng, 16) { 1 } else { 2013i32 };
    m.extend_from_slice(&op.to_le_bytes());
    let flags = *pick(rng, &[0u32, 0, 0, 1, 2, 1 << 16]);
    m.extend_from_slice(&flags.to_le_bytes());
    m.push(if chance(rng, 16) { 1 } else { 0 });
    bson_doc(rng, &mut m, marks, 0);
    if flags == 1 << 16 {
        m.extend_from_slice(&rng.next_u64().to_le_bytes()[..4]);
    }
    let n = m.len() as i32;
    m[0..4].copy_from_slice(&n.to_le_bytes());
    m
}

/// A generated frame with its lengths, type bytes and terminators mutated,
/// or a pooled reply with an int written at a 4-aligned place.
pub(super) fn mongo_mutant(rng: &mut Rng, pool: &[Vec<u8>]) -> Vec<u8> {
    if chance(rng, 4) {
        let mut m = pick(rng, pool).clone();
        if m.len() >= 4 {
            let at = 4 * rng.below(m.len() as u64 / 4) as usize;
            let v = *pick(rng, INTS) as i32;
            m[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        return m;
    }
    let mut marks = BsonMarks::default();
    let mut m = op_msg(rng, &mut marks);
    for _ in 0..rng.below(4) {
        match rng.below(5) {
            // (A mark past a cut is skipped.)
            0 if marks.lengths.iter().any(|&at| at + 4 <= m.len()) => {
                let at = *pick(rng, &marks.lengths);
                if at + 4 > m.len() {
                    continue;
                }
                let old = i32::from_le_bytes(m[at..at + 4].try_into().unwrap());
                let new = match rng.below(8) {
                    0 => -1,
                    1 => 0,
                    2 => 4,
                    3 => 5,
                    4 => i32::MAX,
                    5 => i32::MIN,
                    6 => old.wrapping_add(1),
                    _ => old.wrapping_sub(1 + rng.below(8) as i32),
                };
                m[at..at + 4].copy_from_slice(&new.to_le_bytes());
            }
            1 if !marks.kinds.is_empty() => {
                let at = *pick(rng, &marks.kinds);
                if at < m.len() {
                    m[at] = *pick(rng, BSON_KINDS);
                }
            }
            2 => {
                let at = *pick(rng, &marks.ends);
                if at < m.len() {
                    m[at] = *pick(rng, &[1, 0xff, 0x02]);
                }
            }
            3 => {
                // Cut short, with the header saying so or not.
                let i = rng.below(m.len() as u64 + 1) as usize;
                m.truncate(i);
                if chance(rng, 2) && m.len() >= 4 {
                    let n = m.len() as i32;
                    m[0..4].copy_from_slice(&n.to_le_bytes());
                }
            }
            _ => m.extend((0..1 + small(rng, 16)).map(|_| rng.next_u64() as u8)),
        }
    }
    m
}
