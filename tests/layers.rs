//! The layered house, checked: every module of `src/` may use only the
//! modules on lower rows of the layer table in docs/ARCHITECTURE.md (the
//! ```layers block, top row first). A module that reaches up or sideways
//! (which is how a circle starts), a top-level module missing from the
//! table, or a row naming a module that does not exist fails this test,
//! naming the file and line. The table is read from the document, so the
//! picture and the check cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Rows of the ```layers block, top first.
fn layer_rows(doc: &str) -> Vec<Vec<String>> {
    let start = doc
        .find("```layers\n")
        .expect("docs/ARCHITECTURE.md has a ```layers block")
        + "```layers\n".len();
    let end = start
        + doc[start..]
            .find("```")
            .expect("the ```layers block is closed");
    doc[start..end]
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|r| !r.is_empty())
        .collect()
}

/// Each module's height: the bottom row is 0.
fn heights(rows: &[Vec<String>]) -> BTreeMap<String, usize> {
    let mut h = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        for m in row {
            assert!(
                h.insert(m.clone(), rows.len() - 1 - i).is_none(),
                "module {m} is on two rows of the layer table"
            );
        }
    }
    h
}

/// The crate modules a line of code names (`crate::x`, `crate::{x, y}`),
/// comments left out.
fn named_modules(line: &str) -> BTreeSet<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for part in inner.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The top-level module a file of `src/` belongs to (`None` for lib.rs and
/// main.rs, which map the crate).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// Every use of a module that is not strictly below the user: `file:line:
/// why`.
fn violations(files: &[(PathBuf, String, String)], h: &BTreeMap<String, usize>) -> Vec<String> {
    let mut out = Vec::new();
    for (path, module, text) in files {
        let Some(&mine) = h.get(module) else {
            out.push(format!(
                "{}: module `{module}` is not in the layer table of docs/ARCHITECTURE.md",
                path.display()
            ));
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            for used in named_modules(line) {
                if &used == module {
                    continue;
                }
                match h.get(&used) {
                    None => out.push(format!("{}:{}: uses `{used}`, which is not in the layer table", path.display(), n + 1)),
                    Some(&theirs) if theirs >= mine => out.push(format!(
                        "{}:{}: `{module}` (row {mine} from the bottom) uses `{used}` (row {theirs}): a module may use only rows below its own",
                        path.display(),
                        n + 1
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_module_uses_one_on_its_own_row_or_above() {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let rows = layer_rows(&doc);
    let h = heights(&rows);
    let src = root().join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths.sort();
    let files: Vec<(PathBuf, String, String)> = paths
        .iter()
        .filter_map(|p| {
            Some((
                p.strip_prefix(root()).unwrap().to_path_buf(),
                module_of(&src, p)?,
                std::fs::read_to_string(p).unwrap(),
            ))
        })
        .collect();
    let bad = violations(&files, &h);
    assert!(
        bad.is_empty(),
        "{} uses against the layer order:\n{}",
        bad.len(),
        bad.join("\n")
    );

    // Every module the crate declares is placed, and every placed module exists.
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("pub mod ")
                .or_else(|| l.trim().strip_prefix("mod "))
        })
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    let placed: BTreeSet<String> = h.keys().cloned().collect();
    assert_eq!(
        declared, placed,
        "the modules of src/lib.rs and the rows of the layer table differ"
    );
}

#[test]
fn the_check_sees_a_use_that_reaches_up_or_sideways() {
    let rows = layer_rows("x\n```layers\ncli   # top\nengine plan\nmodel\n```\n");
    let h = heights(&rows);
    let file = |m: &str, text: &str| {
        (
            PathBuf::from(format!("src/{m}.rs")),
            m.to_string(),
            text.to_string(),
        )
    };
    let files = vec![
        file("model", "use crate::engine::Event;\n"),
        file("plan", "use crate::{model, engine::Handle};\n"),
        file(
            "cli",
            "// crate::nowhere in a comment\nuse crate::plan::Plan;\n",
        ),
        file(
            "engine",
            "fn f() { crate::model::x(); crate::ghost::y(); }\n",
        ),
    ];
    let bad = violations(&files, &h);
    assert_eq!(bad.len(), 3, "{bad:#?}");
    assert!(
        bad[0].starts_with("src/model.rs:1: `model` (row 0 from the bottom) uses `engine` (row 1)"),
        "{}",
        bad[0]
    );
    assert!(
        bad[1].starts_with("src/plan.rs:1: `plan` (row 1 from the bottom) uses `engine` (row 1)"),
        "{}",
        bad[1]
    );
    assert!(
        bad[2].contains("uses `ghost`, which is not in the layer table"),
        "{}",
        bad[2]
    );
}
