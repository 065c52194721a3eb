//! Static inventory files (JSON): `{"containers": [{"id", "name", "host",
//! "labels", "dns_name", "ports", "state"}], "hosts": [...]}` — the same
//! shape `rekindle inventory --output json` would write. Errors name the line
//! and column.

use crate::model::{HostReport, Inventory};
use crate::source::{SourceError, SourceText};
use std::collections::BTreeMap;
use std::path::Path;

pub fn load(path: &Path) -> Result<Inventory, SourceError> {
    let src = SourceText::read(path)?;
    parse(&src)
}

pub fn parse(src: &SourceText) -> Result<Inventory, SourceError> {
    let mut inv: Inventory = serde_json::from_str(&src.text).map_err(|e| SourceError {
        file: src.file.clone(),
        line: e.line(),
        column: e.column(),
        field: String::new(),
        message: e
            .to_string()
            .split(" at line")
            .next()
            .unwrap_or_default()
            .to_string(),
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
    fn names_line_of_bad_json() {
        let src = SourceText::new("inv.json", "{\"containers\": [\n {\"id\": 1}\n]}");
        let e = parse(&src).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("inv.json:2:"), "{e}");
    }
}
