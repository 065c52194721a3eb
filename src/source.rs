//! Source files with positions: reads a TOML or JSON file once and turns
//! byte spans into `file:line:column` errors that name the field. Every
//! user-facing parse error in rekindle goes through [`SourceError`].

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// An error in a user-supplied file, located precisely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// The file the error is in.
    pub file: PathBuf,
    /// 1-based line (0 when the file could not be read).
    pub line: usize,
    /// 1-based column, in characters (0 when the file could not be read).
    pub column: usize,
    /// Dotted path of the field (`limits.max_per_host`, `roles[2].after`).
    pub field: String,
    /// What is wrong, and what was expected.
    pub message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "field `{}`: ", self.field)?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for SourceError {}

/// The text of one file plus its name, for locating errors.
#[derive(Debug, Clone)]
pub struct SourceText {
    /// The file's name, as errors print it.
    pub file: PathBuf,
    /// The whole file.
    pub text: String,
}

impl SourceText {
    /// Reads a file; an unreadable file is an error naming it (line and
    /// column 0: there is no place in it to point at).
    pub fn read(path: &Path) -> Result<Self, SourceError> {
        let text = std::fs::read_to_string(path).map_err(|e| SourceError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot read file: {e}"),
        })?;
        Ok(Self {
            file: path.to_path_buf(),
            text,
        })
    }

    /// A text held in memory, named `file` in errors.
    pub fn new(file: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = self.text[line_start..offset].chars().count() + 1;
        (line, column)
    }

    /// An error at a span, naming a field.
    pub fn error(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> SourceError {
        let (line, column) = self.line_col(span.start);
        SourceError {
            file: self.file.clone(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        }
    }

    /// An error about the file as a whole (no better position exists).
    pub fn error_at_top(
        &self,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> SourceError {
        self.error(0..0, field, message)
    }

    /// Turns a `toml` parse/deserialize error into a located error, naming
    /// the field from the key at the error's position and the enclosing
    /// table header.
    pub fn toml_error(&self, err: &toml::de::Error) -> SourceError {
        let span = err.span().unwrap_or(0..0);
        let field = self.field_at(span.start);
        let message = err.message().trim().to_string();
        self.error(span, field, message)
    }

    /// Best-effort dotted field name at a byte offset: the nearest table
    /// header above plus the key on the offset's line.
    fn field_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line_end = self.text[offset..]
            .find('\n')
            .map(|i| offset + i)
            .unwrap_or(self.text.len());
        let line = self.text[line_start..line_end].trim();
        let header = |l: &str| -> Option<String> {
            let l = l.trim();
            if l.starts_with('[') {
                Some(l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
            } else {
                None
            }
        };
        if let Some(h) = header(line) {
            return h;
        }
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .unwrap_or_default();
        let table = self.text[..line_start]
            .lines()
            .rev()
            .find_map(|l| header(l.split('#').next().unwrap_or("")))
            .unwrap_or_default();
        match (table.is_empty(), key.is_empty()) {
            (true, _) => key,
            (false, true) => table,
            (false, false) => format!("{table}.{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let s = SourceText::new("x.toml", "a = 1\n[t]\nbb = 2\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(10), (3, 1));
        assert_eq!(s.line_col(13), (3, 4));
    }

    #[test]
    fn field_from_header_and_key() {
        let s = SourceText::new("x.toml", "a = 1\n[limits]\nmax_per_host = \"x\"\n");
        let off = s.text.find("\"x\"").unwrap();
        assert_eq!(s.field_at(off), "limits.max_per_host");
    }
}
