//! Reading a pipeline file: text → `${VAR}` substitution → TOML with spans → `--set` overrides →
//! a [`Document`] of nodes that remember where they were written (the component list is read
//! from it by `topology::spec`). Every step reports all the problems it finds, each with
//! `file:line:col`, the key path and a hint, and never opens anything but the pipeline file.

pub mod de;
pub mod diagnostic;
pub mod interpolate;
pub mod node;
pub mod overrides;

pub use diagnostic::{Diagnostic, Diagnostics, Origin, Severity, SourceFile, did_you_mean};
pub use node::{Node, NodeValue};
pub use overrides::Edit;

use std::path::Path;
use std::sync::Arc;
use toml::de::DeTable;

/// A parsed pipeline document with overrides applied.
#[derive(Debug)]
pub struct Document {
    /// The file it was read from.
    pub file: Arc<SourceFile>,
    /// The root table.
    pub root: Node,
}

/// Reads and parses `path`, substituting variables from the process environment and applying
/// `--set` overrides in order.
pub fn load_document(path: &Path, overrides: &[Edit]) -> Result<Document, Diagnostics> {
    load_document_with(path, overrides, |name| std::env::var(name).ok())
}

/// [`load_document`] with an explicit variable lookup (for tests).
pub fn load_document_with(
    path: &Path,
    overrides: &[Edit],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Document, Diagnostics> {
    let shown = path.display().to_string();
    let text = read_text(path).map_err(|message| {
        let file = Arc::new(SourceFile {
            path: shown.clone(),
            text: String::new(),
        });
        Diagnostics(vec![Diagnostic::error(
            Origin::File { file, offset: 0 },
            "",
            message,
        )])
    })?;
    parse_text(&shown, text, overrides, lookup)
}

fn read_text(path: &Path) -> Result<String, String> {
    if path.is_dir() {
        return Err("is a directory, not a pipeline file".into());
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read pipeline file: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "pipeline file is not valid UTF-8 (bad byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Parses pipeline text that was read from `path`.
pub fn parse_text(
    path: &str,
    text: String,
    overrides: &[Edit],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Document, Diagnostics> {
    let text = text
        .strip_prefix('\u{feff}')
        .map(str::to_string)
        .unwrap_or(text);
    let file = Arc::new(SourceFile {
        path: path.to_string(),
        text,
    });
    let at = |offset| Origin::File {
        file: Arc::clone(&file),
        offset,
    };
    let interpolated = interpolate::interpolate(&file.text, lookup).map_err(|errors| {
        Diagnostics(
            errors
                .into_iter()
                .map(|e| Diagnostic::error(at(e.offset), "", e.message))
                .collect(),
        )
    })?;
    let (table, syntax_errors) = DeTable::parse_recoverable(&interpolated.text);
    let origin_of = |offset| at(interpolated.original_offset(offset));
    if !syntax_errors.is_empty() {
        return Err(Diagnostics(
            syntax_errors
                .iter()
                .map(|e| {
                    let offset = e.span().map_or(0, |s| s.start);
                    Diagnostic::error(
                        origin_of(offset),
                        "",
                        format!("TOML syntax: {}", e.message().trim()),
                    )
                })
                .collect(),
        ));
    }
    let mut root = node::from_table(table.get_ref(), 0, &origin_of);
    let override_errors: Vec<Diagnostic> = overrides
        .iter()
        .filter_map(|edit| edit.apply(&mut root).err())
        .collect();
    if !override_errors.is_empty() {
        return Err(Diagnostics(override_errors));
    }
    Ok(Document { file, root })
}

/// Parses a TOML snippet as a document named `t.toml` (for unit tests of the config layers).
#[cfg(test)]
pub fn parse_document_for_tests(text: &str) -> Node {
    parse_text("t.toml", text.to_string(), &[], |_| None)
        .expect("test document parses")
        .root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str, overrides: &[&str]) -> Vec<String> {
        let overrides: Vec<Edit> = overrides.iter().map(|s| Edit::Set(s.to_string())).collect();
        parse_text("p.toml", text.into(), &overrides, |n| {
            (n == "SET").then(|| "5".into())
        })
        .unwrap_err()
        .0
        .iter()
        .map(|d| d.to_string())
        .collect()
    }

    #[test]
    fn syntax_errors_carry_positions() {
        let e = errors("a = 1\nb = \nc = 3", &[]);
        assert!(e[0].starts_with("p.toml:2:"), "{e:?}");
        assert!(e[0].contains("TOML syntax"), "{e:?}");
    }

    #[test]
    fn syntax_error_after_a_substitution_points_at_the_original_text() {
        let e = errors("a = ${SET}\nb = ${NOPE:-\"long default\"}\nc = = 3", &[]);
        assert!(e[0].starts_with("p.toml:3:"), "{e:?}");
    }

    #[test]
    fn unset_variable_is_an_error_at_its_position() {
        let e = errors("a = 1\nb = \"${MISSING}\"", &[]);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("p.toml:2:6: error: environment variable `MISSING` is not set"),
            "{e:?}"
        );
    }

    #[test]
    fn bad_override_is_reported_with_its_argument() {
        let e = errors("a = 1", &["a.b=1"]);
        assert!(e[0].starts_with("--set a.b=1: error: a.b:"), "{e:?}");
    }

    #[test]
    fn missing_file_and_directory_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_document(&dir.path().join("none.toml"), &[]).unwrap_err();
        assert!(
            e.to_string()
                .contains("none.toml:1:1: error: cannot read pipeline file"),
            "{e}"
        );
        let e = load_document(dir.path(), &[]).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
    }
}
