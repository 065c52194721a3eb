//! Every playbook in `tests/playbooks/invalid/` must be rejected with an
//! error naming the file, the line and the field (declared in the file's
//! `# expect-*` header), and the CLI must exit with code 2 without panicking.

use rekindle::config::Playbook;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the CLI: its exit code and stderr.
fn rekindle(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Expect {
    line: usize,
    field: String,
    message: String,
}

fn expectations(path: &Path) -> Expect {
    let text = std::fs::read_to_string(path).unwrap();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("# expect-{key}: ")))
            .unwrap_or_else(|| panic!("{} lacks # expect-{key}", path.display()))
            .to_string()
    };
    Expect {
        line: get("line").parse().unwrap(),
        field: get("field"),
        message: get("message"),
    }
}

fn invalid_playbooks() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/playbooks/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn base_playbook_is_valid() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/playbooks/base.toml");
    Playbook::load(&base).expect("the base of the invalid cases must itself be valid");
}

#[test]
fn each_invalid_playbook_names_line_and_field() {
    let files = invalid_playbooks();
    assert!(
        files.len() >= 15,
        "need at least 15 malformed playbooks, have {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let want = expectations(path);
        let err = match Playbook::load(path) {
            Ok(_) => {
                failures.push(format!("{}: accepted", path.display()));
                continue;
            }
            Err(e) => e,
        };
        let shown = err.to_string();
        let field_ok = want.field == "-"
            || err.field == want.field
            || shown.contains(&format!("`{}`", want.field));
        if err.line != want.line || !field_ok || !shown.contains(&want.message) || err.file != *path
        {
            failures.push(format!(
                "{}:\n  want line {} field {:?} message containing {:?}\n  got  line {} field {:?}: {shown}",
                path.display(),
                want.line,
                want.field,
                want.message,
                err.line,
                err.field
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn cli_exits_2_with_the_location_on_stderr() {
    for path in invalid_playbooks() {
        let want = expectations(&path);
        let (code, stderr) = rekindle(&[
            "plan",
            path.to_str().unwrap(),
            "--inventory",
            "/nonexistent-not-read.json",
        ]);
        assert_eq!(code, Some(2), "{}: stderr: {stderr}", path.display());
        assert!(
            stderr.contains(&format!("{}:{}:", path.display(), want.line)),
            "{}: stderr lacks file:line: {stderr}",
            path.display()
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// An inventory that cannot be read, and one no role matches, are input
/// errors too: exit 2 naming the place, for `plan` and for `run` (which
/// refuses before it connects to anything).
#[test]
fn cli_exits_2_on_a_bad_inventory_and_on_one_no_role_matches() {
    let dir = tempfile::tempdir().unwrap();
    let playbook = concat!(env!("CARGO_MANIFEST_DIR"), "/config/mongo-sharded.toml");
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"containers\": [\n  {\"id\": 1}\n]}\n").unwrap();
    let unmatched = dir.path().join("unmatched.json");
    std::fs::write(
        &unmatched,
        r#"{"containers": [{"id": "c1", "name": "web-1", "host": "h1", "labels": {"app": "web"}, "state": "running"}], "hosts": []}"#,
    )
    .unwrap();
    for (inventory, says) in [
        (&broken, format!("{}:2:", broken.display())),
        (&unmatched, "no container matches any role".to_string()),
    ] {
        for cmd in ["plan", "run"] {
            let mut args = vec![cmd, playbook, "--inventory", inventory.to_str().unwrap()];
            if cmd == "run" {
                args.push("--dry-run");
            }
            let (code, stderr) = rekindle(&args);
            assert_eq!(code, Some(2), "{cmd} {}: {stderr}", inventory.display());
            assert!(
                stderr.contains(&says),
                "{cmd}: stderr lacks {says:?}: {stderr}"
            );
        }
    }
}
