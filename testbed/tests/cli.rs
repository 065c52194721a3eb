//! `rekindle-fakefleet` run as a program: the zone it writes for unbound,
//! and a scenario it cannot read. Being an integration test of this
//! package, it also makes `cargo nextest run --workspace` build the binary
//! within the same build as rekindle's own tests, which run it
//! (tests/common/fakefleet.rs), instead of in a second build of their
//! dependencies with other features.

use rekindle::scenario::Scenario;
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

fn fakefleet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rekindle-fakefleet"))
}

fn smoke() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/scenarios/smoke.toml")
}

#[test]
fn the_zone_gives_every_container_of_the_scenario_an_address_of_its_own() {
    let zone =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("zone-{}.conf", std::process::id()));
    let out = fakefleet()
        .arg("--scenario")
        .arg(smoke())
        .arg("--zone-out")
        .arg(&zone)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&zone).unwrap();
    std::fs::remove_file(&zone).unwrap();

    let scenario = Scenario::load(&smoke()).unwrap();
    let domain = &scenario.domain;
    assert!(
        text.starts_with(&format!("local-zone: \"{domain}.\" static\n")),
        "{text}"
    );
    let records: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| l.contains(" IN A "))
        .map(|l| {
            let l = l.trim_start_matches("local-data: \"").trim_end_matches('"');
            let (name, rest) = l.split_once(". 300 IN A ").unwrap();
            (name, rest)
        })
        .collect();
    let fleet = scenario.fleet();
    assert_eq!(records.len(), fleet.all.len());
    let names: HashSet<&str> = records.iter().map(|r| r.0).collect();
    let addresses: HashSet<&str> = records.iter().map(|r| r.1).collect();
    assert_eq!(names.len(), fleet.all.len(), "a name twice");
    assert_eq!(addresses.len(), fleet.all.len(), "an address twice");
    for c in &fleet.all {
        let name = c
            .dns_name
            .clone()
            .unwrap_or_else(|| format!("{}.{domain}", c.name));
        assert!(names.contains(name.as_str()), "{name} has no address");
    }
}

#[test]
fn a_scenario_it_cannot_read_is_an_error_naming_the_file() {
    let out = fakefleet()
        .args([
            "--scenario",
            "no/such/scenario.toml",
            "--zone-out",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no/such/scenario.toml"), "{stderr}");
}
