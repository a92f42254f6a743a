//! `${VAR}` and `${VAR:-default}` substitution in pipeline text, with a map from positions in the
//! substituted text back to the original so that errors point at what the user wrote.

/// Text after substitution plus what is needed to map its offsets back.
#[derive(Debug)]
pub struct Interpolated {
    /// The substituted text, ready to parse.
    pub text: String,
    /// Substitutions in order: (offset in new text, new length, offset in original, original
    /// length).
    edits: Vec<Edit>,
}

#[derive(Debug, Clone, Copy)]
struct Edit {
    new_start: usize,
    new_len: usize,
    old_start: usize,
    old_len: usize,
}

/// A `${...}` that could not be substituted.
#[derive(Debug, PartialEq, Eq)]
pub struct InterpolationError {
    /// Byte offset of the `${` in the original text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl Interpolated {
    /// Offset in the original text of byte `offset` of the substituted text. Offsets inside a
    /// substituted value map to the start of its `${`.
    pub fn original_offset(&self, offset: usize) -> usize {
        let mut shift: isize = 0;
        for edit in &self.edits {
            if offset < edit.new_start {
                break;
            }
            if offset < edit.new_start + edit.new_len {
                return edit.old_start;
            }
            shift += edit.old_len as isize - edit.new_len as isize;
        }
        (offset as isize + shift) as usize
    }
}

/// Substitutes variables in `text` using `lookup`. `$${` is a literal `${`. Reports every bad
/// reference, not just the first.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Interpolated, Vec<InterpolationError>> {
    let mut out = String::with_capacity(text.len());
    let mut edits = Vec::new();
    let mut errors = Vec::new();
    let mut rest = 0;
    while let Some(found) = text[rest..].find('$') {
        let at = rest + found;
        out.push_str(&text[rest..at]);
        let tail = &text[at..];
        if tail.starts_with("$${") {
            edits.push(Edit {
                new_start: out.len(),
                new_len: 2,
                old_start: at,
                old_len: 3,
            });
            out.push_str("${");
            rest = at + 3;
        } else if tail.starts_with("${") {
            let line_end = tail.find('\n').unwrap_or(tail.len());
            let Some(close) = tail[..line_end].find('}') else {
                errors.push(InterpolationError {
                    offset: at,
                    message: "`${` has no closing `}`".into(),
                });
                out.push_str(&tail[..2]);
                rest = at + 2;
                continue;
            };
            let inner = &tail[2..close];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            let value = if !is_var_name(name) {
                errors.push(InterpolationError {
                    offset: at,
                    message: format!("`${{{inner}}}` is not a variable reference; names are letters, digits and `_` (write `$${{` for a literal `${{`)"),
                });
                String::new()
            } else {
                match (lookup(name), default) {
                    (Some(v), _) => v,
                    (None, Some(d)) => d.to_string(),
                    (None, None) => {
                        errors.push(InterpolationError {
                            offset: at,
                            message: format!("environment variable `{name}` is not set (write `${{{name}:-default}}` to give a default)"),
                        });
                        String::new()
                    }
                }
            };
            edits.push(Edit {
                new_start: out.len(),
                new_len: value.len(),
                old_start: at,
                old_len: close + 1,
            });
            out.push_str(&value);
            rest = at + close + 1;
        } else {
            out.push('$');
            rest = at + 1;
        }
    }
    out.push_str(&text[rest..]);
    if errors.is_empty() {
        Ok(Interpolated { text: out, edits })
    } else {
        Err(errors)
    }
}

fn is_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "RATE" => Some("25".into()),
            "DIR" => Some("/data/long/path".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_values_and_defaults() {
        let r = interpolate("rate = ${RATE}\npath = \"${DIR}/${FILE:-x.csv}\" # $5", env).unwrap();
        assert_eq!(r.text, "rate = 25\npath = \"/data/long/path/x.csv\" # $5");
    }

    #[test]
    fn maps_offsets_back_to_the_original() {
        let src = "a = \"${DIR}\"\nb = 1";
        let r = interpolate(src, env).unwrap();
        let b_new = r.text.find("b =").unwrap();
        assert_eq!(r.original_offset(b_new), src.find("b =").unwrap());
        let inside = r.text.find("long").unwrap();
        assert_eq!(r.original_offset(inside), src.find("${").unwrap());
        assert_eq!(r.original_offset(0), 0);
    }

    #[test]
    fn escaped_dollar_brace_is_literal() {
        let r = interpolate("x = \"$${HOME}\"", env).unwrap();
        assert_eq!(r.text, "x = \"${HOME}\"");
    }

    #[test]
    fn reports_every_bad_reference_with_its_offset() {
        let src = "a = \"${NOPE}\"\nb = \"${bad name}\"\nc = \"${OPEN\"";
        let errs = interpolate(src, env).unwrap_err();
        assert_eq!(errs.len(), 3);
        assert_eq!(errs[0].offset, 5);
        assert!(errs[0].message.contains("`NOPE` is not set"));
        assert_eq!(errs[1].offset, src.find("${bad").unwrap());
        assert!(errs[2].message.contains("no closing"));
    }
}
