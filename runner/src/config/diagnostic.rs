//! Configuration errors and warnings that say what went wrong, where, and how to fix it.

use std::fmt;
use std::sync::Arc;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The pipeline cannot run.
    Error,
    /// The pipeline can run, but probably not as meant.
    Warning,
}

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A byte offset in a pipeline file.
    File {
        /// The file.
        file: Arc<SourceFile>,
        /// Byte offset into the file's original text.
        offset: usize,
    },
    /// A `--set KEY=VALUE` argument.
    Override(Arc<str>),
    /// A `--unset KEY` argument.
    Unset(Arc<str>),
    /// Not written anywhere (a default).
    Builtin,
}

/// A pipeline file as read from disk, kept to turn byte offsets into lines and columns.
#[derive(Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The path as the user gave it.
    pub path: String,
    /// The file's text before interpolation.
    pub text: String,
}

impl SourceFile {
    /// 1-based line and column (in characters) of byte `offset`.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

impl Origin {
    /// The origin of byte `at` of the string `value` written here, when the file shows that
    /// string as written (a quoted string whose text up to `at` has no escape, `${VAR}` or line
    /// break); otherwise the string's own origin.
    pub fn within_string(&self, value: &str, at: usize) -> Origin {
        let Origin::File { file, offset } = self else {
            return self.clone();
        };
        let raw = &file.text[(*offset).min(file.text.len())..];
        let open = ["\"\"\"", "'''", "\"", "'"]
            .into_iter()
            .find(|quote| raw.starts_with(quote))
            .map_or(0, str::len);
        let prefix = value.get(..at).unwrap_or(value);
        if open == 0 || prefix.contains('\n') || !raw[open..].starts_with(prefix) {
            return self.clone();
        }
        Origin::File {
            file: Arc::clone(file),
            offset: offset + open + prefix.len(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { file, offset } => {
                let (line, col) = file.line_col(*offset);
                write!(f, "{}:{line}:{col}", file.path)
            }
            Origin::Override(arg) => write!(f, "--set {arg}"),
            Origin::Unset(key) => write!(f, "--unset {key}"),
            Origin::Builtin => f.write_str("(default)"),
        }
    }
}

/// One problem found in a pipeline configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where the offending text is.
    pub origin: Origin,
    /// Dotted key path of the offending value, e.g. `transforms.per_second.size`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error at `origin` for key `path`.
    pub fn error(origin: Origin, path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            origin,
            path: path.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// A warning at `origin` for key `path`.
    pub fn warning(origin: Origin, path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(origin, path, message)
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint only when there is one.
    pub fn with_optional_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {level}: ", self.origin)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every diagnostic found in one pass over a pipeline; an `Err` holds at least one error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    /// Adds one diagnostic.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The closest candidate to a misspelt `word`, phrased as a hint, when one is close enough
/// (at most about half the word's letters changed).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let limit = word.chars().count().div_ceil(2).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(word, c), c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let file = SourceFile {
            path: "p.toml".into(),
            text: "a = 1\n名前 = 2\n".into(),
        };
        assert_eq!(file.line_col(0), (1, 1));
        assert_eq!(file.line_col(4), (1, 5));
        // "名前" is 6 bytes; the '=' after it is character 4 of line 2.
        assert_eq!(file.line_col(6 + 7), (2, 4));
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("windw", ["window", "filter"]),
            Some("did you mean `window`?".into())
        );
        assert_eq!(
            did_you_mean("cnt", ["count", "sum"]),
            Some("did you mean `count`?".into())
        );
        assert_eq!(did_you_mean("zzz", ["window", "filter"]), None);
    }
}
