//! Generic mutations: byte-level (bit flips, interesting bytes and integers,
//! inserted, deleted and duplicated ranges, splices, truncation), tokens of
//! a dictionary, and the text-level ones every format shares (numbers at
//! extremes, odd strings, lines duplicated, dropped and swapped, deep
//! nesting).

use super::*;

pub(super) fn pick<'a, T>(rng: &mut Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.below(xs.len() as u64) as usize]
}

pub(super) fn chance(rng: &mut Rng, one_in: u64) -> bool {
    rng.below(one_in) == 0
}

/// A length with a bias to small ones.
pub(super) fn small(rng: &mut Rng, max: usize) -> usize {
    let cap = *pick(rng, &[4usize, 16, 64, 256, max]);
    rng.below(cap.min(max) as u64 + 1) as usize
}

pub(super) fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let n = small(rng, 4096);
    let ascii = chance(rng, 2);
    (0..n)
        .map(|_| {
            let b = rng.next_u64() as u8;
            if ascii {
                b % 96 + 32
            } else {
                b
            }
        })
        .collect()
}

const BYTES: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'0', b'9', b'"', b'\'', b'\\', b'\n', b'\r', b'\t', b' ', b'=', b'[',
    b']', b'{', b'}', b',', b':', b'.', b'-', b'#',
];

pub(super) const INTS: &[i64] = &[
    -1,
    0,
    1,
    4,
    5,
    8,
    16,
    20,
    21,
    127,
    128,
    255,
    256,
    2013,
    16 * 1024,
    0x7fff,
    0xffff,
    1 << 20,
    i32::MAX as i64,
    i32::MIN as i64,
    u32::MAX as i64,
    i64::MAX,
    i64::MIN,
];

/// 1 to 8 stacked byte-level (and, for text, token-level) mutations.
pub(super) fn havoc(rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>], dict: &[&[u8]]) {
    for _ in 0..1 + rng.below(8) {
        mutate_bytes(rng, data, pool, dict);
        if data.len() > MAX_INPUT {
            data.truncate(MAX_INPUT);
        }
    }
}

pub(super) fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>], dict: &[&[u8]]) {
    let len = data.len();
    let at = |rng: &mut Rng| rng.below(len as u64 + 1) as usize;
    match rng.below(16) {
        0 if len > 0 => {
            let i = rng.below(len as u64) as usize;
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len as u64) as usize;
            data[i] = *pick(rng, BYTES);
        }
        2 if len > 0 => {
            let i = rng.below(len as u64) as usize;
            data[i] = rng.next_u64() as u8;
        }
        3 => {
            let i = at(rng);
            let n = 1 + small(rng, 32);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            data.splice(i..i, bytes);
        }
        4 if len > 0 => {
            let i = rng.below(len as u64) as usize;
            let n = (1 + small(rng, len)).min(len - i);
            data.drain(i..i + n);
        }
        5 if len > 0 => {
            // Duplicate a range, sometimes many times over.
            let i = rng.below(len as u64) as usize;
            let n = (1 + small(rng, 256)).min(len - i);
            let chunk = data[i..i + n].to_vec();
            let times = if chance(rng, 8) {
                1 + small(rng, 1000)
            } else {
                1
            };
            let j = at(rng);
            let rep: Vec<u8> = chunk
                .iter()
                .copied()
                .cycle()
                .take((n * times).min(MAX_INPUT))
                .collect();
            data.splice(j..j, rep);
        }
        6 => {
            // Splice: this one's head, another's tail.
            let other = pick(rng, pool);
            let i = at(rng);
            let j = rng.below(other.len() as u64 + 1) as usize;
            data.truncate(i);
            data.extend_from_slice(&other[j..]);
        }
        7 => {
            // Another's chunk over or into this one.
            let other = pick(rng, pool);
            if !other.is_empty() {
                let j = rng.below(other.len() as u64) as usize;
                let n = (1 + small(rng, 256)).min(other.len() - j);
                let i = at(rng);
                let end = if chance(rng, 2) { (i + n).min(len) } else { i };
                data.splice(i..end, other[j..j + n].iter().copied());
            }
        }
        8 => {
            let v = *pick(rng, INTS);
            let bytes: Vec<u8> = if chance(rng, 2) {
                (v as i32).to_le_bytes().to_vec()
            } else {
                v.to_le_bytes().to_vec()
            };
            let i = at(rng);
            let end = if chance(rng, 2) {
                (i + bytes.len()).min(len)
            } else {
                i
            };
            data.splice(i..end, bytes);
        }
        9 => {
            let i = at(rng);
            data.truncate(i);
        }
        10 | 11 if !dict.is_empty() => {
            let i = at(rng);
            data.splice(i..i, pick(rng, dict).iter().copied());
        }
        12 => replace_number(rng, data),
        13 => replace_string(rng, data),
        14 => mutate_lines(rng, data, dict),
        _ => insert_nesting(rng, data),
    }
}

/// Dictionary tokens and values, space- or newline-separated.
pub(super) fn token_soup(rng: &mut Rng, dict: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1 + small(rng, 64) {
        match rng.below(4) {
            0 => out.extend_from_slice(pick(rng, NUMBERS).as_bytes()),
            1 => {
                out.push(b'"');
                out.extend_from_slice(pick(rng, STRINGS).as_bytes());
                out.push(b'"');
            }
            _ => {
                let token = pick::<&[u8]>(rng, dict);
                out.extend_from_slice(token);
            }
        }
        out.push(*pick(rng, b" \n=,:"));
    }
    out
}

const NUMBERS: &[&str] = &[
    "-1",
    "0",
    "1",
    "-0",
    "0.0",
    "-0.0",
    "2",
    "3",
    "1.5",
    "0.5",
    "1e308",
    "-1e308",
    "1e309",
    "1e-400",
    "5e-324",
    "1.7976931348623157e308",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "4294967295",
    "4294967296",
    "2147483647",
    "2147483648",
    "65535",
    "65536",
    "100000",
    "1000001",
    "10000000",
    "99999999999999999999999999999999",
    "nan",
    "+nan",
    "-nan",
    "inf",
    "+inf",
    "-inf",
    "NaN",
    "1_000_000",
    "0x7fffffff",
    "0xffffffffffffffff",
    "0o777",
    "0b101",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "true",
    "false",
    "null",
];

pub(super) const STRINGS: &[&str] = &[
    "",
    " ",
    "\\u0000",
    "\\n",
    "\\\"",
    "\\uD800",
    "é",
    "漢字",
    "🦀",
    "\u{feff}",
    "all",
    "absolute",
    "search",
    "start",
    "restart",
    "warn",
    "fail",
    "docker",
    "tcp",
    "exec",
    "mongo",
    "queue",
    "per_second",
    "configsvr",
    "shard",
    "router",
    "run",
    "rehearse",
    "plan",
    "r1",
    "0",
    "3",
    "500ms",
    "0ms",
    "2m",
    "1h",
    "1.5s",
    "0.0000001s",
    "-5s",
    "1e30s",
    "NaNs",
    "infs",
    ".",
    "..",
    "1.5.5ms",
    "99999999999999999999",
    "99999999999999999999h",
    "18446744073709551616s",
    "1e308",
    "http://",
    "https://[::1",
    "http://a:99999/x",
    "http://127.0.0.1:8080/metrics",
    "unix://",
    "unix:///var/run/docker.sock",
    "tcp://h:2376",
    "127.0.0.1:5353",
    "10.0.0.2",
    "::1",
    "[::1]:53",
    "1.2.3.4:99999",
    "db.role",
    "db.cluster",
    "db.replset",
    "mongo-sharded",
    "smoke",
    "running",
    "exited",
];

/// Maximal runs of number characters that hold a digit.
fn number_spans(b: &[u8]) -> Vec<(usize, usize)> {
    let is_num = |c: u8| c.is_ascii_digit() || matches!(c, b'.' | b'+' | b'-' | b'e' | b'E' | b'_');
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if is_num(b[i]) {
            let mut j = i;
            while j < b.len() && is_num(b[j]) {
                j += 1;
            }
            if b[i..j].iter().any(u8::is_ascii_digit) {
                spans.push((i, j));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    spans
}

/// Contents of double-quoted strings (quotes not after a backslash, paired).
fn string_spans(b: &[u8]) -> Vec<(usize, usize)> {
    let quotes: Vec<usize> = (0..b.len())
        .filter(|&i| b[i] == b'"' && (i == 0 || b[i - 1] != b'\\'))
        .collect();
    quotes.chunks_exact(2).map(|q| (q[0] + 1, q[1])).collect()
}

pub(super) fn replace_number(rng: &mut Rng, data: &mut Vec<u8>) {
    let spans = number_spans(data);
    if spans.is_empty() {
        return;
    }
    let (i, j) = *pick(rng, &spans);
    let with = pick(rng, NUMBERS).as_bytes().to_vec();
    data.splice(i..j, with);
}

pub(super) fn long_string(rng: &mut Rng) -> String {
    let n = *pick(rng, &[256usize, 4096, 16 * 1024, 60 * 1024]);
    let unit = *pick(rng, &["a", "é", "9", "\\\\", "🦀", " "]);
    unit.repeat(n / unit.len().max(1))
}

pub(super) fn replace_string(rng: &mut Rng, data: &mut Vec<u8>) {
    let spans = string_spans(data);
    if spans.is_empty() {
        return;
    }
    let (i, j) = *pick(rng, &spans);
    let with = if chance(rng, 6) {
        long_string(rng)
    } else {
        pick(rng, STRINGS).to_string()
    };
    data.splice(i..j, with.into_bytes());
}

/// Line-level: duplicate a block (sometimes hundreds of times), drop, swap,
/// move, or insert a dictionary line; or swap two values after `=`/`:`.
pub(super) fn mutate_lines(rng: &mut Rng, data: &mut Vec<u8>, dict: &[&[u8]]) {
    let mut lines: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let n = lines.len();
    let at = |rng: &mut Rng| rng.below(n as u64) as usize;
    match rng.below(6) {
        0 => {
            let i = at(rng);
            let k = (1 + small(rng, 16)).min(n - i);
            let block: Vec<Vec<u8>> = lines[i..i + k].to_vec();
            let times = if chance(rng, 4) {
                1 + small(rng, 500)
            } else {
                1
            };
            let mut size = data.len();
            let mut insert = Vec::new();
            for _ in 0..times {
                size += block.iter().map(|l| l.len() + 1).sum::<usize>();
                if size > MAX_INPUT {
                    break;
                }
                insert.extend(block.iter().cloned());
            }
            let j = at(rng);
            lines.splice(j..j, insert);
        }
        1 if n > 1 => {
            lines.remove(at(rng));
        }
        2 => {
            let (a, b) = (at(rng), at(rng));
            lines.swap(a, b);
        }
        3 => {
            let l = lines.remove(at(rng));
            let j = rng.below(lines.len() as u64 + 1) as usize;
            lines.insert(j, l);
        }
        4 if !dict.is_empty() => {
            let j = at(rng);
            lines.insert(j, pick(rng, dict).to_vec());
        }
        _ => {
            // Swap the values of two `key = value` (or `"key": value`) lines.
            let with_value: Vec<(usize, usize)> = lines
                .iter()
                .enumerate()
                .filter_map(|(i, l)| {
                    l.iter()
                        .position(|&b| b == b'=' || b == b':')
                        .map(|p| (i, p))
                })
                .collect();
            if with_value.len() >= 2 {
                let (a, pa) = *pick(rng, &with_value);
                let (b, pb) = *pick(rng, &with_value);
                if a != b {
                    let va = lines[a][pa + 1..].to_vec();
                    let vb = lines[b][pb + 1..].to_vec();
                    lines[a].truncate(pa + 1);
                    lines[a].extend_from_slice(&vb);
                    lines[b].truncate(pb + 1);
                    lines[b].extend_from_slice(&va);
                }
            }
        }
    }
    *data = lines.join(&b'\n');
}

/// Deeply nested arrays or tables (TOML and JSON alike), at a random place.
pub(super) fn insert_nesting(rng: &mut Rng, data: &mut Vec<u8>) {
    let depth = *pick(
        rng,
        &[2usize, 16, 64, 127, 128, 129, 256, 1000, 5000, 20_000],
    );
    let (open, close): (&[u8], &[u8]) = match rng.below(4) {
        0 => (b"[", b"]"),
        1 => (b"{\"a\":", b"}"),
        2 => (b"{a=", b"}"),
        _ => (b"[[", b"]]"),
    };
    let mut nest = Vec::new();
    if chance(rng, 2) {
        nest.extend_from_slice(b"\nx = ");
    }
    for _ in 0..depth {
        nest.extend_from_slice(open);
    }
    if chance(rng, 2) {
        nest.extend_from_slice(b"1");
    }
    if chance(rng, 4) {
        // Unclosed, or half closed.
        for _ in 0..rng.below(depth as u64) {
            nest.extend_from_slice(close);
        }
    } else {
        for _ in 0..depth {
            nest.extend_from_slice(close);
        }
    }
    nest.push(b'\n');
    if data.len() + nest.len() > MAX_INPUT {
        return;
    }
    let i = rng.below(data.len() as u64 + 1) as usize;
    data.splice(i..i, nest);
}
