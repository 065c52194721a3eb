//! What the driver prints: every line goes to stdout and into a transcript
//! (the `.txt` of `--record`); the number formats of the figures; and the
//! CSV of the recorded runs, one row per run.

use std::sync::Mutex;

static TRANSCRIPT: Mutex<String> = Mutex::new(String::new());

/// Prints a line and keeps it for the transcript.
#[macro_export]
macro_rules! say {
    () => { $crate::out::line(String::new()) };
    ($($t:tt)*) => { $crate::out::line(format!($($t)*)) };
}

/// Prints `s` (one or more lines) and keeps it.
pub fn line(s: String) {
    println!("{s}");
    let mut t = TRANSCRIPT.lock().unwrap_or_else(|e| e.into_inner());
    t.push_str(&s);
    t.push('\n');
}

/// Everything printed so far.
pub fn transcript() -> String {
    TRANSCRIPT.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// `x` with `p` decimals, or `n/a`.
pub fn f(x: Option<f64>, p: usize) -> String {
    x.map_or_else(|| "n/a".into(), |x| format!("{x:.p$}"))
}

/// `x` as a percentage with two decimals, or `n/a`.
pub fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), |x| format!("{:.2}%", 100.0 * x))
}

/// One CSV row: (column, value) in column order.
pub type Row = Vec<(&'static str, String)>;

/// A CSV field: quoted when it holds a comma, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The CSV of `rows`: a header (the first row's columns), then one line a
/// row. Rows of another shape (a survey beside runs) get a header of their
/// own before them.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut header: Vec<&str> = Vec::new();
    for row in rows {
        let cols: Vec<&str> = row.iter().map(|(k, _)| *k).collect();
        if cols != header {
            out += &cols.join(",");
            out.push('\n');
            header = cols;
        }
        let values: Vec<String> = row.iter().map(|(_, v)| field(v)).collect();
        out += &values.join(",");
        out.push('\n');
    }
    out
}

/// An optional figure as a CSV value (empty when absent).
pub fn opt<T: ToString>(x: Option<T>) -> String {
    x.map(|x| x.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_format_like_the_script() {
        assert_eq!(f(Some(69.06), 1), "69.1");
        assert_eq!(f(Some(0.99234), 3), "0.992");
        assert_eq!(f(None, 1), "n/a");
        assert_eq!(pct(Some(0.0031)), "0.31%");
        assert_eq!(pct(None), "n/a");
    }

    #[test]
    fn csv_has_one_header_per_shape_and_quotes_commas() {
        let runs = vec![
            vec![
                ("label", "static-0.8".to_string()),
                ("state", "succeeded".into()),
            ],
            vec![
                ("label", "adaptive".to_string()),
                ("state", "halted, 3 failed".into()),
            ],
            vec![("kind", "survey".to_string())],
        ];
        assert_eq!(
            csv(&runs),
            "label,state\nstatic-0.8,succeeded\nadaptive,\"halted, 3 failed\"\nkind\nsurvey\n"
        );
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(opt::<f64>(None), "");
    }
}
