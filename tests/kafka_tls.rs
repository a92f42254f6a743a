//! Kafka over TLS on the real protocol: `weir broker` behind stunnel (Debian's TLS terminator; the
//! embedded broker's own listener is plaintext) that advertises the TLS port, with a CA and a
//! server certificate the test makes with the openssl command line. A pipeline writes the sample
//! log to a topic and reads it back through TLS (checked by an independent TLS reader too), and a
//! pipeline with an unknown CA or without TLS fails with a clear error instead of hanging.

mod common;

use common::kafka::{reader, wait_for_port};
use common::{Background, free_port, repo, weir};
use rdkafka::error::KafkaError;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line (tests/setup.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `name`.pem / `name`.key in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// A server certificate for 127.0.0.1 signed by CA `ca`: server.pem / server.key.
fn make_server_cert(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName = IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

/// A broker reachable only through TLS: `weir broker` on a plaintext port, stunnel in front of
/// it, clients told the TLS port. Returns the processes and the TLS address.
fn tls_broker(dir: &Path) -> (Background, Background, String) {
    let (plain, tls) = (free_port(), free_port());
    let mut broker = weir();
    broker
        .args([
            "broker",
            "--listen",
            &format!("127.0.0.1:{plain}"),
            "--advertise",
            &format!("127.0.0.1:{tls}"),
        ])
        .current_dir(dir);
    let broker = Background::start(broker, &dir.join("broker.out"), &dir.join("broker.log"));
    wait_for_port(plain);
    std::fs::write(
        dir.join("stunnel.conf"),
        format!(
            "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls}\n\
             connect = 127.0.0.1:{plain}\ncert = {}\nkey = {}\n",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        ),
    )
    .unwrap();
    let mut stunnel = Command::new("stunnel4");
    stunnel.arg(dir.join("stunnel.conf"));
    let stunnel = Background::start(stunnel, &dir.join("stunnel.out"), &dir.join("stunnel.log"));
    wait_for_port(tls);
    (broker, stunnel, format!("127.0.0.1:{tls}"))
}

fn pipeline(dir: &Path, name: &str, kafka: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            r#"[kafka]
{kafka}
connect_timeout = "5s"

[sources.log]
type = "csv"
path = "{}"

[sinks.sex]
type = "kafka"
inputs = ["log"]
topic = "sex"
codec = "raw"
fields = ["gender"]

[sources.back]
type = "kafka"
topic = "sex"
codec = "raw"
fields = ["gender"]

[sinks.out]
type = "file"
inputs = ["back"]
path = "{}"
"#,
            repo().join("data/user_log_sample.csv").display(),
            dir.join(format!("{name}.out.jsonl")).display()
        ),
    )
    .unwrap();
    path
}

fn run_pipeline(dir: &Path, pipeline: &Path) -> (bool, String) {
    let out = weir()
        .arg("run")
        .arg(pipeline)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_pipeline_writes_and_reads_through_tls_and_refuses_an_unknown_ca_or_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    make_ca(dir, "ca");
    make_ca(dir, "other-ca");
    make_server_cert(dir, "ca");
    let (_broker, _stunnel, address) = tls_broker(dir);
    let ca = dir.join("ca.pem");

    let good = pipeline(
        dir,
        "good.toml",
        &format!(
            "brokers = \"{address}\"\ntls = {{ ca = \"{}\" }}",
            ca.display()
        ),
    );
    let (ok, stderr) = run_pipeline(dir, &good);
    assert!(ok, "{stderr}");
    let read_back = std::fs::read_to_string(dir.join("good.toml.out.jsonl")).unwrap();
    assert_eq!(
        read_back.lines().count(),
        9_999,
        "the sample has 9,999 rows: {stderr}"
    );

    // An independent reader over TLS sees what was written.
    let consumer = reader(
        &address,
        "tls-reader",
        "sex",
        &[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", ca.to_str().unwrap()),
        ],
    );
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(_)) => count += 1,
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            _ => {}
        }
    }
    assert_eq!(count, 9_999);

    // A CA that did not sign the broker's certificate: a clear error, not a hang.
    let unknown = pipeline(
        dir,
        "unknown-ca.toml",
        &format!(
            "brokers = \"{address}\"\ntls = {{ ca = \"{}\" }}",
            dir.join("other-ca.pem").display()
        ),
    );
    let started = Instant::now();
    let (ok, stderr) = run_pipeline(dir, &unknown);
    assert!(!ok, "an unknown CA must fail the run");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error: stage") && l.contains("certificate verify failed")),
        "the run's error should say the certificate was not trusted: {stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(60), "{stderr}");

    // A plaintext client on the TLS port.
    let plaintext = pipeline(dir, "plaintext.toml", &format!("brokers = \"{address}\""));
    let (ok, stderr) = run_pipeline(dir, &plaintext);
    assert!(!ok, "plaintext to a TLS port must fail the run");
    assert!(
        stderr.lines().any(|l| l.starts_with("error: stage")
            && l.contains(&address)
            && l.contains("set `tls` / `sasl`")),
        "the run's error should name the address and hint at `tls`: {stderr}"
    );
}

#[test]
fn a_sasl_password_never_shows_in_logs_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let secret = "hunter2-never-print-me";
    // The embedded broker does not ask for SASL, so the handshake fails: the error path is
    // exactly where a careless message would show the password.
    let port = free_port();
    let (_broker, address) = {
        let mut broker = weir();
        broker
            .args(["broker", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(dir);
        let broker = Background::start(broker, &dir.join("broker.out"), &dir.join("broker.log"));
        wait_for_port(port);
        (broker, format!("127.0.0.1:{port}"))
    };
    let path = pipeline(
        dir,
        "sasl.toml",
        &format!(
            "brokers = \"{address}\"\n\
             sasl = {{ mechanism = \"SCRAM-SHA-256\", username = \"weir\", password = \"${{KAFKA_PASSWORD}}\" }}"
        ),
    );
    for command in ["validate", "graph", "run"] {
        let out = weir()
            .arg(command)
            .arg(&path)
            .env("KAFKA_PASSWORD", secret)
            .env("RUST_LOG", "debug")
            .current_dir(dir)
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !all.contains(secret),
            "`weir {command}` printed the password:\n{all}"
        );
        if command == "run" {
            assert!(
                !out.status.success(),
                "SASL against a broker without it must fail"
            );
        }
    }
}
