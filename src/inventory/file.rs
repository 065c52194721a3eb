//! Static inventory files (JSON): `{"containers": [{"id", "name", "host",
//! "labels", "dns_name", "ports", "state"}], "hosts": [...]}` — the same
//! shape `rekindle inventory --output json` would write. Errors name the line
//! and column.

use crate::model::{HostReport, Inventory};
use crate::source::{SourceError, SourceText};
use std::collections::BTreeMap;
use std::path::Path;

/// Reads and validates a JSON inventory file.
pub fn load(path: &Path) -> Result<Inventory, SourceError> {
    let src = SourceText::read(path)?;
    parse(&src)
}

/// Where a JSON error is, 1-based: serde_json says column 0 for a newline
/// it has just read (the error is that line break, at the end of the line
/// before) and for an empty file.
fn position(src: &SourceText, e: &serde_json::Error) -> (usize, usize) {
    match (e.line(), e.column()) {
        (line, 0) if line > 1 => {
            let before = src.text.split('\n').nth(line - 2).unwrap_or_default();
            (line - 1, before.chars().count() + 1)
        }
        (line, column) => (line.max(1), column.max(1)),
    }
}

/// Validates a JSON inventory held in memory.
pub fn parse(src: &SourceText) -> Result<Inventory, SourceError> {
    let mut inv: Inventory = serde_json::from_str(&src.text).map_err(|e| {
        let (line, column) = position(src, &e);
        SourceError {
            file: src.file.clone(),
            line,
            column,
            field: String::new(),
            message: e
                .to_string()
                .split(" at line")
                .next()
                .unwrap_or_default()
                .to_string(),
        }
    })?;
    for (i, c) in inv.containers.iter().enumerate() {
        for (field, value) in [("id", &c.id), ("name", &c.name), ("host", &c.host)] {
            if value.trim().is_empty() {
                return Err(
                    src.error_at_top(format!("containers[{i}].{field}"), "must not be empty")
                );
            }
        }
    }
    if inv.hosts.is_empty() {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for c in &inv.containers {
            *counts.entry(c.host.as_str()).or_default() += 1;
        }
        inv.hosts = counts
            .into_iter()
            .map(|(name, n)| HostReport {
                name: name.to_string(),
                reachable: true,
                error: None,
                containers: n,
            })
            .collect();
    }
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_containers_and_derives_hosts() {
        let src = SourceText::new(
            "inv.json",
            r#"{"containers": [
                {"id": "a1", "name": "c1-cfg-0", "host": "h1", "labels": {"db.role": "configsvr"}, "state": "running"},
                {"id": "a2", "name": "c1-mongos-0", "host": "h2", "labels": {"db.role": "router"}}
            ]}"#,
        );
        let inv = parse(&src).unwrap();
        assert_eq!(inv.containers.len(), 2);
        assert_eq!(inv.containers[0].labels.get("db.role"), Some("configsvr"));
        assert_eq!(inv.hosts.len(), 2);
    }

    #[test]
    fn an_error_at_a_line_break_is_placed_on_its_line_not_at_column_0() {
        // Found by fuzzing (tests/fuzz/regressions/inventory/): a raw line
        // break in a string was reported as line 2, column 0.
        let src = SourceText::new("inv.json", "{\"containers\": [{\"id\": \"a\n\"}]}");
        let e = parse(&src).unwrap_err();
        assert_eq!((e.line, e.column), (1, 26), "{e}");
        let e = parse(&SourceText::new("inv.json", "")).unwrap_err();
        assert_eq!((e.line, e.column), (1, 1), "{e}");
    }

    #[test]
    fn names_line_of_bad_json() {
        let src = SourceText::new("inv.json", "{\"containers\": [\n {\"id\": 1}\n]}");
        let e = parse(&src).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("inv.json:2:"), "{e}");
    }
}
