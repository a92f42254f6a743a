//! The header row: whether the first row names the columns, and the column names a file gets
//! (the configured ones, the header's, or `field_1..N`; the source knows no file's columns by
//! itself).

use crate::record::Schema;

/// Whether the first row is a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderMode {
    /// Decide from the first row: a header has only non-empty, distinct, non-numeric fields.
    Auto,
    /// The first row is a header.
    Present,
    /// There is no header.
    Absent,
}

/// The column names of a file whose first row is `text` with field ends `ends`.
pub fn column_names(
    configured: Option<&[String]>,
    text: &str,
    ends: &[usize],
    is_header: bool,
) -> Schema {
    if let Some(columns) = configured {
        return Schema::new(columns);
    }
    if is_header {
        return Schema::new(fields(text, ends).map(str::trim));
    }
    Schema::new((1..=ends.len()).map(|i| format!("field_{i}")))
}

/// The fields of a row given its text and field ends.
fn fields<'t>(text: &'t str, ends: &'t [usize]) -> impl Iterator<Item = &'t str> + 't {
    ends.iter().enumerate().map(move |(i, &end)| {
        let start = if i == 0 { 0 } else { ends[i - 1] };
        text.get(start..end).unwrap_or_default()
    })
}

/// A header row has only non-empty, distinct fields that do not parse as numbers.
pub fn looks_like_header(text: &str, ends: &[usize]) -> bool {
    let names: Vec<&str> = fields(text, ends).map(str::trim).collect();
    let all_names = names
        .iter()
        .all(|f| !f.is_empty() && f.parse::<f64>().is_err());
    let distinct = names
        .iter()
        .enumerate()
        .all(|(i, f)| !names[..i].contains(f));
    all_names && distinct
}
