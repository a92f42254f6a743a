//! `weir produce` and `weir consume` against a real broker (`weir broker`): lines in, records
//! out, with keys, JSON values kept as JSON, and clear errors for a topic that is not there.

mod common;

use common::kafka::broker;
use common::{text, weir};
use std::io::Write;
use std::process::Stdio;

/// `weir produce TOPIC ARGS` with `lines` on standard input.
fn produce(bootstrap: &str, topic: &str, args: &[&str], lines: &str) -> std::process::Output {
    let mut child = weir()
        .args(["produce", topic, "--brokers", bootstrap])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn lines_produced_come_back_from_consume_with_their_keys_and_json_values() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = broker(dir.path(), "memory://");
    let refused = produce(&bootstrap, "shop", &[], "x\n");
    let (_, stderr) = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("topic shop does not exist") && stderr.contains("--create"),
        "{stderr}"
    );

    let lines = "u1|{\"gender\":\"1\",\"n\":2}\nu2|not json\nno separator here\n";
    let written = produce(
        &bootstrap,
        "shop",
        &["--create", "--key-separator", "|"],
        lines,
    );
    let (_, stderr) = text(&written);
    assert!(written.status.success(), "{stderr}");
    assert!(stderr.contains("3 records written to shop"), "{stderr}");

    let consumed = weir()
        .args(["consume", "shop", "--brokers", &bootstrap])
        .args(["--from-beginning", "--to-end"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&consumed);
    assert!(consumed.status.success(), "{stderr}");
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{stdout}");
    assert_eq!(records[0]["key"], "u1");
    assert_eq!(records[0]["value"]["gender"], "1", "JSON stays JSON");
    assert_eq!(records[0]["value"]["n"], 2);
    assert_eq!(records[1]["key"], "u2");
    assert_eq!(records[1]["value"], "not json");
    assert_eq!(records[2]["key"], serde_json::Value::Null);
    assert_eq!(records[2]["value"], "no separator here");
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["partition"], 0);
        assert_eq!(record["offset"], i as i64);
        assert!(record["timestamp"].as_i64().unwrap() > 0);
    }
    assert!(
        stdout
            .lines()
            .next()
            .unwrap()
            .starts_with("{\"partition\":0,\"offset\":0,"),
        "fields in a fixed order: {stdout}"
    );

    let table = weir()
        .args(["consume", "shop", "--brokers", &bootstrap])
        .args(["--from-beginning", "--count", "2", "--format", "table"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&table);
    assert!(table.status.success(), "{stderr}");
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows.len(), 3, "a header and two records: {stdout}");
    assert!(
        rows[0].starts_with("PARTITION") && rows[0].contains("VALUE"),
        "{stdout}"
    );
    assert!(rows[2].contains("not json"), "{stdout}");

    let missing = weir()
        .args(["consume", "nowhere", "--brokers", &bootstrap, "--to-end"])
        .output()
        .unwrap();
    let (_, stderr) = text(&missing);
    assert_eq!(missing.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("topic nowhere does not exist"), "{stderr}");
}

/// The `weir consume` / `weir produce` commands docs/kafka.md shows, run as written through the
/// shell against a broker ($WEIR_KAFKA_BROKERS points them at it): each exits 0, and one that
/// reads until Ctrl-C is still reading after 2 s.
#[test]
fn the_documented_consume_and_produce_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = broker(dir.path(), "memory://");
    let windows: String = (0..8).map(|i| format!("[{{\"0\":{i}}}]\n")).collect();
    let seeded = produce(&bootstrap, "result", &["--create"], &windows);
    assert!(seeded.status.success(), "{}", text(&seeded).1);
    let doc = std::fs::read_to_string(common::repo().join("docs/kafka.md")).unwrap();
    let block_start = doc
        .find("## Looking at a topic")
        .expect("docs/kafka.md has the section");
    let section = &doc[block_start..];
    let block = &section[section.find("```sh").unwrap() + 5..];
    let block = &block[..block.find("```").unwrap()];
    let binary = env!("CARGO_BIN_EXE_weir");
    let mut commands: Vec<&str> = block
        .lines()
        .map(|l| l.split("  #").next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    // Producing first, so the topics have records to read.
    commands.sort_by_key(|c| !c.contains("weir produce"));
    assert!(commands.len() >= 4, "{commands:?}");
    for command in commands {
        let shell = command.replace("weir ", &format!("{binary} "));
        let mut child = std::process::Command::new("sh")
            .args(["-c", &shell])
            .env("WEIR_KAFKA_BROKERS", &bootstrap)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let until_ctrl_c = !command.contains("--to-end")
            && !command.contains("--count")
            && command.contains("weir consume");
        if until_ctrl_c {
            std::thread::sleep(std::time::Duration::from_secs(2));
            assert!(
                child.try_wait().unwrap().is_none(),
                "`{command}` should read until Ctrl-C"
            );
            child.kill().unwrap();
            child.wait().unwrap();
            continue;
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "`{command}`:\n{}", text(&out).1);
    }
}
