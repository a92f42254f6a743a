//! The SQL the `postgres` sink sends, built from a table name, the record fields and the
//! table's column types: identifiers quoted, values passed as text arrays and cast by the server
//! to each column's type, and one `INSERT … SELECT … FROM UNNEST … ON CONFLICT … DO UPDATE`
//! per batch, so a batch of any size is one statement and one round trip.

use crate::record::FieldRef;

/// `name` as a quoted SQL identifier (`"a""b"` for `a"b`).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table name as written (`windows` or `schema.windows`) as a quoted, possibly qualified
/// identifier; an error says what is wrong with it.
pub fn table_name(written: &str) -> Result<String, String> {
    let parts: Vec<&str> = written.split('.').collect();
    if parts.len() > 2 || parts.iter().any(|p| p.trim().is_empty()) {
        return Err(format!(
            "`{written}` is not a table name: write `table` or `schema.table`"
        ));
    }
    Ok(parts
        .iter()
        .map(|p| quote(p.trim()))
        .collect::<Vec<_>>()
        .join("."))
}

/// The column type a new table gets for values like `value`.
pub fn column_type(value: FieldRef<'_>) -> &'static str {
    match value {
        FieldRef::Int(_) => "bigint",
        FieldRef::Float(_) => "double precision",
        FieldRef::Bool(_) => "boolean",
        FieldRef::Str(_) | FieldRef::Null => "text",
    }
}

/// `value` as the text PostgreSQL reads for it (`None` for null).
pub fn text(value: FieldRef<'_>) -> Option<String> {
    match value {
        FieldRef::Null => None,
        FieldRef::Bool(b) => Some(b.to_string()),
        FieldRef::Int(i) => Some(i.to_string()),
        FieldRef::Float(f) if f.is_nan() => Some("NaN".into()),
        FieldRef::Float(f) if f.is_infinite() => {
            Some(if f > 0.0 { "Infinity" } else { "-Infinity" }.into())
        }
        FieldRef::Float(f) => Some(f.to_string()),
        FieldRef::Str(s) => Some(s.to_string()),
    }
}

/// `CREATE TABLE IF NOT EXISTS` for `columns` (name, type) keyed by `key`.
pub fn create_table(table: &str, columns: &[(String, String)], key: &[String]) -> String {
    let columns: Vec<String> = columns
        .iter()
        .map(|(name, kind)| {
            let not_null = if key.contains(name) { " NOT NULL" } else { "" };
            format!("{} {kind}{not_null}", quote(name))
        })
        .collect();
    let key: Vec<String> = key.iter().map(|k| quote(k)).collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {table} ({}, PRIMARY KEY ({}))",
        columns.join(", "),
        key.join(", ")
    )
}

/// The upsert of rows given as one text array per column (`$1` … `$n`, in `columns` order), each
/// cast to its column's type; a row whose key exists replaces the other columns.
pub fn upsert(table: &str, columns: &[(String, String)], key: &[String]) -> String {
    let names: Vec<String> = columns.iter().map(|(n, _)| quote(n)).collect();
    let arrays: Vec<String> = (1..=columns.len())
        .map(|i| format!("${i}::text[]"))
        .collect();
    let aliases: Vec<String> = (1..=columns.len()).map(|i| format!("f{i}")).collect();
    let casts: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| format!("f{}::{kind}", i + 1))
        .collect();
    let key_names: Vec<String> = key.iter().map(|k| quote(k)).collect();
    let updates: Vec<String> = columns
        .iter()
        .filter(|(n, _)| !key.contains(n))
        .map(|(n, _)| format!("{0} = EXCLUDED.{0}", quote(n)))
        .collect();
    let on_conflict = if updates.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("DO UPDATE SET {}", updates.join(", "))
    };
    format!(
        "INSERT INTO {table} ({}) SELECT {} FROM UNNEST({}) AS u({}) ON CONFLICT ({}) {on_conflict}",
        names.join(", "),
        casts.join(", "),
        arrays.join(", "),
        aliases.join(", "),
        key_names.join(", ")
    )
}

/// The column names and types of `table` (a quoted name), in column order.
pub const COLUMNS_OF: &str = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
     FROM pg_attribute a WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 \
     AND NOT a.attisdropped ORDER BY a.attnum";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_names_checked() {
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(table_name("w").unwrap(), "\"w\"");
        assert_eq!(table_name("s.w").unwrap(), "\"s\".\"w\"");
        assert!(table_name("a.b.c").is_err());
        assert!(table_name("a.").is_err());
        assert!(table_name("").is_err());
    }

    #[test]
    fn an_upsert_casts_each_column_and_updates_only_the_others() {
        let columns = vec![
            ("window_start".to_string(), "bigint".to_string()),
            ("gender".to_string(), "text".to_string()),
            ("count".to_string(), "bigint".to_string()),
        ];
        let key = vec!["window_start".to_string(), "gender".to_string()];
        assert_eq!(
            upsert("\"t\"", &columns, &key),
            "INSERT INTO \"t\" (\"window_start\", \"gender\", \"count\") SELECT f1::bigint, \
             f2::text, f3::bigint FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(f1, f2, \
             f3) ON CONFLICT (\"window_start\", \"gender\") DO UPDATE SET \"count\" = \
             EXCLUDED.\"count\""
        );
        let all_key = upsert("\"t\"", &columns[..2], &key);
        assert!(all_key.ends_with("DO NOTHING"), "{all_key}");
        assert_eq!(
            create_table("\"t\"", &columns, &key),
            "CREATE TABLE IF NOT EXISTS \"t\" (\"window_start\" bigint NOT NULL, \"gender\" text \
             NOT NULL, \"count\" bigint, PRIMARY KEY (\"window_start\", \"gender\"))"
        );
    }

    #[test]
    fn values_become_the_text_postgres_reads() {
        assert_eq!(text(FieldRef::Null), None);
        assert_eq!(text(FieldRef::Int(-3)).as_deref(), Some("-3"));
        assert_eq!(text(FieldRef::Float(1.5)).as_deref(), Some("1.5"));
        assert_eq!(text(FieldRef::Float(f64::NAN)).as_deref(), Some("NaN"));
        assert_eq!(
            text(FieldRef::Float(f64::NEG_INFINITY)).as_deref(),
            Some("-Infinity")
        );
        assert_eq!(text(FieldRef::Bool(true)).as_deref(), Some("true"));
        assert_eq!(column_type(FieldRef::Float(0.0)), "double precision");
    }
}
