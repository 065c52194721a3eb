//! Journals: records written by the journal's own writer, re-framed with
//! valid checksums after record-level mutations, then damaged at the frame
//! level.

use super::generic::{chance, mutate_bytes, pick, replace_number, replace_string, small};
use super::json_mutants::{mutate_value, random_string};
use super::*;

pub(super) const JOURNAL_DICT: &[&[u8]] = &[
    b"{\"t\":\"start\",\"playbook\":\"p\",\"fingerprint\":\"f\",\"containers\":1}",
    b"{\"t\":\"intent\",\"id\":\"a\",\"wave\":0,\"attempt\":4294967295,\"before\":\"\"}",
    b"{\"t\":\"outcome\",\"id\":\"a\",\"healthy\":true,\"reason\":null}",
    b"{\"t\":\"wave_passed\",\"wave\":18446744073709551615}",
    b"{\"t\":\"end\",\"state\":\"succeeded\"}",
    b"{\"t\":\"unknown\"}",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00\x00\x00\x00\x00",
];

fn random_record(rng: &mut Rng) -> Record {
    let id = |rng: &mut Rng| {
        if chance(rng, 16) {
            random_string(rng)
        } else {
            format!("c{}", rng.below(8))
        }
    };
    let big = |rng: &mut Rng, small_max: u64| -> u64 {
        match rng.below(8) {
            0 => u64::MAX,
            1 => u32::MAX as u64,
            _ => rng.below(small_max),
        }
    };
    match rng.below(5) {
        0 => Record::Start {
            playbook: if chance(rng, 4) {
                random_string(rng)
            } else {
                "p".into()
            },
            fingerprint: format!("{:x}", rng.next_u64()),
            containers: big(rng, 100) as usize,
            only: chance(rng, 3).then(|| (0..small(rng, 8)).map(|_| id(rng)).collect()),
        },
        1 => Record::Intent {
            id: id(rng),
            wave: big(rng, 10) as usize,
            attempt: big(rng, 4) as u32,
            before: format!("{}", rng.next_u64()),
        },
        2 => Record::Outcome {
            id: id(rng),
            healthy: chance(rng, 2),
            reason: chance(rng, 2).then(|| random_string(rng)),
        },
        3 => Record::WavePassed {
            wave: big(rng, 10) as usize,
        },
        _ => Record::End {
            state: pick(rng, &["succeeded", "halted", "aborted", ""]).to_string(),
        },
    }
}

/// A valid journal written by the journal's own writer.
fn written_journal(rng: &mut Rng, path: &Path) -> Vec<u8> {
    let start = Record::Start {
        playbook: "p".into(),
        fingerprint: format!("{:x}", rng.next_u64()),
        containers: rng.below(100) as usize,
        only: None,
    };
    let mut j = Journal::create(path, start, false).unwrap();
    for _ in 0..small(rng, 32) {
        j.append(&random_record(rng)).unwrap();
    }
    drop(j);
    let bytes = std::fs::read(path).unwrap();
    std::fs::remove_file(path).unwrap();
    bytes
}

/// The payloads of the well-framed records at the front of a journal.
pub(super) fn frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= 8 {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        if bytes.len() - pos - 8 < len {
            break;
        }
        out.push(bytes[pos + 8..pos + 8 + len].to_vec());
        pos += 8 + len;
    }
    out
}

pub(super) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 8);
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

/// Records re-framed with valid checksums after record-level mutations
/// (duplicated, dropped, swapped, spliced from another journal, payloads
/// mutated as JSON), then sometimes damaged at the frame level (a length
/// changed, a payload byte flipped under its checksum, cut short, stray
/// bytes after).
pub(super) fn journal_mutant(rng: &mut Rng, pool: &[Vec<u8>], scratch: &Path) -> Vec<u8> {
    let base = if chance(rng, 4) {
        written_journal(rng, scratch)
    } else {
        pick(rng, pool).clone()
    };
    let mut recs = frames(&base);
    if recs.is_empty() {
        recs = frames(&written_journal(rng, scratch));
    }
    for _ in 0..1 + rng.below(3) {
        let n = recs.len();
        match rng.below(8) {
            0 if n > 0 => {
                let i = rng.below(n as u64) as usize;
                let r = recs[i].clone();
                for _ in 0..1 + small(rng, 100) {
                    recs.insert(i, r.clone());
                }
            }
            1 if n > 1 => {
                recs.remove(rng.below(n as u64) as usize);
            }
            2 if n > 1 => {
                let (a, b) = (rng.below(n as u64) as usize, rng.below(n as u64) as usize);
                recs.swap(a, b);
            }
            3 => {
                // Splice: this journal's head, another's tail.
                let other = frames(pick(rng, pool).as_slice());
                let i = rng.below(n as u64 + 1) as usize;
                let j = rng.below(other.len() as u64 + 1) as usize;
                recs.truncate(i);
                recs.extend_from_slice(&other[j..]);
            }
            4 => {
                let i = rng.below(n as u64 + 1) as usize;
                let r = serde_json::to_vec(&random_record(rng)).unwrap();
                recs.insert(i, r);
            }
            _ if n > 0 => {
                // A payload mutated as JSON or as text, its checksum valid.
                let i = rng.below(n as u64) as usize;
                let p = &mut recs[i];
                match serde_json::from_slice::<Value>(p) {
                    Ok(mut v) if chance(rng, 2) => {
                        mutate_value(rng, &mut v, 0);
                        *p = serde_json::to_vec(&v).unwrap();
                    }
                    _ => match rng.below(3) {
                        0 => replace_number(rng, p),
                        1 => replace_string(rng, p),
                        _ => mutate_bytes(rng, p, pool, JOURNAL_DICT),
                    },
                }
            }
            _ => {}
        }
    }
    let mut offsets = Vec::new();
    let mut out = Vec::new();
    for r in &recs {
        offsets.push(out.len());
        out.extend_from_slice(&frame(r));
        if out.len() > MAX_INPUT {
            break;
        }
    }
    for _ in 0..rng.below(3) {
        match rng.below(5) {
            0 if !offsets.is_empty() => {
                // A length changed (unless an earlier cut took it).
                let at = *pick(rng, &offsets);
                if at + 4 > out.len() {
                    continue;
                }
                let old = u32::from_le_bytes(out[at..at + 4].try_into().unwrap());
                let new = match rng.below(6) {
                    0 => 0,
                    1 => u32::MAX,
                    2 => i32::MAX as u32,
                    3 => old.wrapping_add(1),
                    4 => old.wrapping_sub(1),
                    _ => rng.next_u64() as u32 % 4096,
                };
                out[at..at + 4].copy_from_slice(&new.to_le_bytes());
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len() as u64) as usize;
                out[i] ^= 1 << rng.below(8);
            }
            2 => {
                let i = rng.below(out.len() as u64 + 1) as usize;
                out.truncate(i);
            }
            3 => {
                for _ in 0..1 + rng.below(11) {
                    out.push(rng.next_u64() as u8);
                }
            }
            _ => {
                // A valid-looking header with nothing (or too little) after it.
                out.extend_from_slice(&(rng.below(64) as u32).to_le_bytes());
                out.extend_from_slice(&(rng.next_u64() as u32).to_le_bytes());
            }
        }
    }
    out
}
