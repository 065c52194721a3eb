//! The command line's own documentation: shell completions and the manual
//! page name every command, and a shell clap does not know is a usage error.

use std::process::Command;

fn rekindle(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args(args)
        .output()
        .expect("run rekindle")
}

const COMMANDS: [&str; 7] = [
    "plan",
    "run",
    "rehearse",
    "daemon",
    "runs",
    "completions",
    "man",
];

#[test]
fn completions_for_each_shell_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = rekindle(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        for c in COMMANDS {
            assert!(text.contains(c), "{shell} completion lacks {c}");
        }
        // Options of a subcommand too, e.g. run's --resume.
        assert!(text.contains("resume"), "{shell}: no --resume");
    }
    let out = rekindle(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}

#[test]
fn the_manual_page_is_roff_and_names_every_command() {
    let out = rekindle(&["man"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(".ie") || text.contains(".TH rekindle"),
        "{}",
        &text[..200.min(text.len())]
    );
    for c in COMMANDS {
        assert!(text.contains(c), "the man page lacks {c}");
    }
}
