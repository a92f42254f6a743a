//! Unit tests of `lookup`.

use super::*;
use crate::stage::{StageFactory, testing};

/// A table file in a directory that lives as long as the guard.
fn table(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    std::fs::write(&path, text).unwrap();
    let shown = path.display().to_string();
    (dir, shown)
}

const REGIONS: &str = "province,region,south\n浙江,华东,true\n北京市,华北,false\n7,数字,false\n";

fn enrich(options: &str, rows: &[(i64, &[&str])]) -> (Vec<String>, testing::Driver) {
    let mut t = testing::transform(&factory(), options);
    let lines = t.lines_of(testing::batch(&["user", "province"], rows));
    (lines, t)
}

#[test]
fn records_get_the_columns_of_their_row_and_nulls_when_it_is_missing() {
    let (_dir, path) = table(REGIONS);
    let (lines, _) = enrich(
        &format!("path = '{path}'\non = 'province'"),
        &[
            (1, &["a", "浙江"]),
            (2, &["b", "西藏"]),
            (3, &["c", "北京市"]),
        ],
    );
    assert_eq!(
        lines,
        [
            r#"{"user":"a","province":"浙江","region":"华东","south":"true"}"#,
            r#"{"user":"b","province":"西藏","region":null,"south":null}"#,
            r#"{"user":"c","province":"北京市","region":"华北","south":"false"}"#,
        ]
    );
}

#[test]
fn chosen_fields_another_key_column_and_replacing_a_field() {
    let (_dir, path) = table("code,name\n浙江,Zhejiang\n");
    let (lines, _) = enrich(
        &format!("path = '{path}'\non = 'province'\nkey = 'code'\nfields = ['name']"),
        &[(1, &["a", "浙江"])],
    );
    assert_eq!(
        lines,
        [r#"{"user":"a","province":"浙江","name":"Zhejiang"}"#]
    );
    // A column named like a record field replaces its value.
    let (_dir, path) = table("province,user\n浙江,someone\n");
    let (lines, _) = enrich(
        &format!("path = '{path}'\non = 'province'"),
        &[(1, &["a", "浙江"])],
    );
    assert_eq!(lines, [r#"{"user":"someone","province":"浙江"}"#]);
}

#[test]
fn missing_keys_are_left_out_or_rejected_and_counted() {
    let (_dir, path) = table(REGIONS);
    let rows: &[(i64, &[&str])] = &[(1, &["a", "浙江"]), (2, &["b", "西藏"])];
    let (lines, t) = enrich(
        &format!("path = '{path}'\non = 'province'\nmissing = 'drop'"),
        rows,
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        t.metrics.dropped.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let (lines, t) = enrich(
        &format!("path = '{path}'\non = 'province'\nmissing = 'error'"),
        rows,
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        t.metrics.dropped.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn a_numeric_key_finds_its_row_as_text() {
    let (_dir, path) = table(REGIONS);
    let mut t = testing::transform(
        &factory(),
        &format!("path = '{path}'\non = 'n'\nkey = 'province'"),
    );
    let mut b = BatchBuilder::with_capacity(Arc::new(Schema::new(["n"])), 2);
    b.push(FieldRef::Int(7));
    b.end_row(1);
    b.push(FieldRef::Null);
    b.end_row(2);
    let lines = t.lines_of(b.build());
    assert_eq!(
        lines,
        [
            r#"{"n":7,"region":"数字","south":"false"}"#,
            r#"{"n":null,"region":null,"south":null}"#,
        ]
    );
}

#[test]
fn a_table_with_a_key_twice_or_without_the_columns_does_not_build() {
    let (_dir, path) = table("province,region\n浙江,华东\n江苏,华东\n浙江,华南\n");
    let error = testing::build_error(&factory(), &format!("path = '{path}'\non = 'province'"));
    assert!(
        error.contains("key `浙江` is on line 2 and again on line 4"),
        "{error}"
    );
    let (_dir, path) = table(REGIONS);
    let error = testing::build_error(
        &factory(),
        &format!("path = '{path}'\non = 'province'\nfields = ['regoin']"),
    );
    assert!(
        error.contains("no column `regoin` (its columns: province, region, south)"),
        "{error}"
    );
    let error = testing::build_error(&factory(), "path = '/nonexistent/t.csv'\non = 'x'");
    assert!(error.contains("lookup table /nonexistent/t.csv"), "{error}");
}

#[test]
fn output_fields_come_from_the_options_or_the_tables_header() {
    let (_dir, path) = table(REGIONS);
    let config = |options: &str| {
        factory()
            .configure(&testing::options(options), "s")
            .unwrap_or_else(|e| panic!("{e:?}"))
            .config
    };
    let input = [Some(vec!["user".to_string(), "province".to_string()])];
    assert_eq!(
        config(&format!("path = '{path}'\non = 'province'")).output_fields(&input),
        Some(vec![
            "user".to_string(),
            "province".to_string(),
            "region".to_string(),
            "south".to_string()
        ])
    );
    assert_eq!(
        config("path = '/nonexistent'\non = 'province'\nfields = ['a']").output_fields(&input),
        Some(vec![
            "user".to_string(),
            "province".to_string(),
            "a".to_string()
        ])
    );
}

/// The table file is read again once a change has held still for one look; a changed table that
/// does not read, or that would change the records' fields, is refused and the old one stays.
#[test]
fn a_changed_table_is_read_again_once_it_holds_still_and_a_bad_one_is_refused() {
    let (dir, path) = table("province,region\n浙江,华东\n");
    let mut t = testing::transform(&factory(), &format!("path = '{path}'\non = 'province'"));
    let mut out = Vec::new();
    let region_now =
        |t: &mut testing::Driver| t.lines_of(testing::batch(&["province"], &[(1, &["浙江"])]));
    assert_eq!(
        region_now(&mut t),
        [r#"{"province":"浙江","region":"华东"}"#]
    );
    let file = dir.path().join("t.csv");
    std::fs::write(&file, "province,region\n浙江,East China\n").unwrap();
    t.tick(&mut out).unwrap();
    assert_eq!(
        region_now(&mut t),
        [r#"{"province":"浙江","region":"华东"}"#],
        "a change is read only after it held still for one look"
    );
    t.tick(&mut out).unwrap();
    assert_eq!(
        region_now(&mut t),
        [r#"{"province":"浙江","region":"East China"}"#]
    );
    // A key twice: refused, the table read before stays.
    std::fs::write(&file, "province,region\n浙江,a\n浙江,b\n").unwrap();
    t.tick(&mut out).unwrap();
    t.tick(&mut out).unwrap();
    assert_eq!(
        region_now(&mut t),
        [r#"{"province":"浙江","region":"East China"}"#]
    );
    // Another column: the records' fields would change under the next stages; refused.
    std::fs::write(&file, "province,region,south\n浙江,x,true\n").unwrap();
    t.tick(&mut out).unwrap();
    t.tick(&mut out).unwrap();
    assert_eq!(
        region_now(&mut t),
        [r#"{"province":"浙江","region":"East China"}"#]
    );
    // Fixed again: read.
    std::fs::write(&file, "province,region\n浙江,华东 again\n").unwrap();
    t.tick(&mut out).unwrap();
    t.tick(&mut out).unwrap();
    assert_eq!(
        region_now(&mut t),
        [r#"{"province":"浙江","region":"华东 again"}"#]
    );
    assert!(out.is_empty(), "looking at the file emits nothing");
    assert_eq!(t.tick_interval(), Some(Duration::from_secs(2)));
    let never = testing::transform(
        &factory(),
        &format!("path = '{path}'\non = 'province'\nwatch = '0s'"),
    );
    assert_eq!(never.tick_interval(), None);
}
