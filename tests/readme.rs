//! The project's Markdown, rendered as GitHub renders it (GitHub-flavoured
//! tables, through pulldown-cmark): every row written as a table row is in
//! a table (a blank line inside a table once turned twenty rows of the
//! README into text), every relative link points at a file that exists,
//! and the README's figures stay a headline (at most eight rows a table;
//! the history is in docs/bench/).

use pulldown_cmark::{Event, LinkType, Options, Parser, Tag};
use std::ops::Range;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files a reader of the repository meets.
fn documents() -> Vec<PathBuf> {
    let mut v = vec![
        root().join("README.md"),
        root().join("config/scenarios/README.md"),
    ];
    for dir in ["docs", "docs/bench"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "md") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

struct Rendered {
    tables: Vec<Range<usize>>,
    code: Vec<Range<usize>>,
    links: Vec<(String, usize)>,
    html_tables: usize,
}

fn render(text: &str) -> Rendered {
    let opts = Options::ENABLE_TABLES;
    let mut r = Rendered {
        tables: Vec::new(),
        code: Vec::new(),
        links: Vec::new(),
        html_tables: 0,
    };
    for (ev, range) in Parser::new_ext(text, opts).into_offset_iter() {
        match ev {
            Event::Start(Tag::Table(_)) => r.tables.push(range),
            Event::Start(Tag::CodeBlock(_)) => r.code.push(range),
            Event::Start(Tag::Link {
                link_type: LinkType::Inline,
                dest_url,
                ..
            }) => r.links.push((dest_url.to_string(), range.start)),
            _ => {}
        }
    }
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, Parser::new_ext(text, opts));
    r.html_tables = html.matches("<table>").count();
    r
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

#[test]
fn every_table_row_renders_inside_a_table_and_every_local_link_resolves() {
    let docs = documents();
    assert!(docs.len() >= 8, "{docs:?}");
    for path in docs {
        let text = std::fs::read_to_string(&path).unwrap();
        let shown = path.strip_prefix(root()).unwrap().display().to_string();
        let r = render(&text);
        assert_eq!(r.html_tables, r.tables.len(), "{shown}");
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            let here = at;
            at += line.len();
            if !line.trim_start().starts_with('|') || r.code.iter().any(|c| c.contains(&here)) {
                continue;
            }
            assert!(
                r.tables.iter().any(|t| t.contains(&here)),
                "{shown}:{}: a table row that renders as text (a blank line or a missing delimiter row above it): {}",
                line_of(&text, here),
                line.trim_end()
            );
        }
        let dir = path.parent().unwrap();
        for (url, at) in &r.links {
            if url.contains("://") || url.starts_with('#') || url.starts_with("mailto:") {
                continue;
            }
            let file = url.split('#').next().unwrap();
            assert!(
                Path::new(dir).join(file).exists(),
                "{shown}:{}: the link {url:?} points at nothing",
                line_of(&text, *at)
            );
        }
    }
}

#[test]
fn the_readme_is_read_in_two_minutes_its_tables_are_headlines() {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let r = render(&text);
    assert!(
        !r.tables.is_empty(),
        "the README has its figures in a table"
    );
    for t in &r.tables {
        let rows = text[t.clone()]
            .lines()
            .filter(|l| l.starts_with('|'))
            .count();
        // A header, a delimiter, at most eight rows.
        assert!(
            rows <= 10,
            "README.md:{}: a table of {} rows; keep at most eight, the rest belongs in docs/bench/",
            line_of(&text, t.start),
            rows - 2
        );
        for cell in text[t.clone()].split('|') {
            assert!(
                cell.chars().count() <= 400,
                "README.md:{}: a cell of {} characters",
                line_of(&text, t.start),
                cell.chars().count()
            );
        }
    }
}
