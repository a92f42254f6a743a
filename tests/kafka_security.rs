//! Kafka over TLS and SASL on the real protocol. TLS: `weir broker` behind stunnel (Debian's TLS
//! terminator; the embedded broker's own listener is plaintext) that advertises the TLS port,
//! with a CA and a server certificate the test makes with the openssl command line. SASL: `weir
//! broker --user`, which checks SCRAM logins against the users it was given. Pipelines write
//! the sample log to a topic and read it back (checked by an independent reader too); a wrong
//! password, an unknown user, an unknown CA and a client without TLS or SASL fail with a clear
//! error instead of hanging, and no password ever shows in a log or an error.

mod common;

use common::kafka::{count_to_end, reader, wait_for_port};
use common::tls::{make_ca, make_server_cert};
use common::{Background, free_port, repo, weir};
use rdkafka::error::KafkaError;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

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
    assert_eq!(count_to_end(&consumer), 9_999);

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

/// `weir broker` on a free port requiring SCRAM as `users` (name, password), the passwords in
/// files of `dir`. Returns the process and its address.
fn scram_broker(dir: &Path, users: &[(&str, &str)]) -> (Background, String) {
    let port = free_port();
    let mut broker = weir();
    broker
        .args(["broker", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir);
    for (name, password) in users {
        let file = dir.join(format!("{name}.password"));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        broker
            .arg("--user")
            .arg(format!("{name}:{}", file.display()));
    }
    let broker = Background::start(broker, &dir.join("broker.out"), &dir.join("broker.log"));
    wait_for_port(port);
    (broker, format!("127.0.0.1:{port}"))
}

/// Whether a client with `settings` gets the cluster's metadata from `address` within 10 s.
fn metadata_with(address: &str, settings: &[(&str, &str)]) -> Result<(), KafkaError> {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", address);
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let client: rdkafka::consumer::BaseConsumer = config.create().unwrap();
    rdkafka::consumer::Consumer::fetch_metadata(&client, None, Duration::from_secs(10)).map(|_| ())
}

#[test]
fn a_broker_with_scram_users_serves_them_and_refuses_everyone_else() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let password = "correct horse battery staple";
    let (_broker, address) = scram_broker(dir, &[("weir", password), ("reader", "r-pass")]);

    // A pipeline logging in with SCRAM-SHA-256 writes the sample and reads it back.
    let good = pipeline(
        dir,
        "scram.toml",
        &format!(
            "brokers = \"{address}\"\n\
             sasl = {{ mechanism = \"SCRAM-SHA-256\", username = \"weir\", password = \"${{KAFKA_PASSWORD}}\" }}"
        ),
    );
    let out = weir()
        .arg("run")
        .arg(&good)
        .env("KAFKA_PASSWORD", password)
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.join("scram.toml.out.jsonl"))
            .unwrap()
            .lines()
            .count(),
        9_999,
        "{stderr}"
    );

    // Another user, with SCRAM-SHA-512, reads the same records independently.
    let consumer = reader(
        &address,
        "scram-reader",
        "sex",
        &[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "reader"),
            ("sasl.password", "r-pass"),
        ],
    );
    assert_eq!(count_to_end(&consumer), 9_999);

    // A wrong password and an unknown user: the run fails at once, saying the login was refused.
    for (name, username, secret) in [
        ("wrong-password", "weir", "not the password"),
        ("unknown-user", "mallory", password),
    ] {
        let path = pipeline(
            dir,
            &format!("{name}.toml"),
            &format!(
                "brokers = \"{address}\"\n\
                 sasl = {{ mechanism = \"SCRAM-SHA-512\", username = \"{username}\", password = \"${{KAFKA_PASSWORD}}\" }}"
            ),
        );
        let started = Instant::now();
        let out = weir()
            .arg("run")
            .arg(&path)
            .env("KAFKA_PASSWORD", secret)
            .current_dir(dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: {stderr}");
        assert!(
            stderr.lines().any(|l| l.starts_with("error: stage")
                && l.contains(&format!("refused the SASL login of user `{username}`"))),
            "{name}: the error should say the login was refused: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name}: a refused login should not wait for the connect timeout"
        );
        assert!(!stderr.contains(secret), "{name}: the password was printed");
    }

    // A client without SASL, and one offering OAUTHBEARER with a token it made up: refused.
    assert!(metadata_with(&address, &[]).is_err());
    assert!(
        metadata_with(
            &address,
            &[
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanisms", "OAUTHBEARER"),
                ("enable.sasl.oauthbearer.unsecure.jwt", "true"),
                ("sasl.oauthbearer.config", "principal=admin"),
            ],
        )
        .is_err(),
        "an OAUTHBEARER token nobody checks must not get in"
    );
    assert!(
        metadata_with(
            &address,
            &[
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanisms", "PLAIN"),
                ("sasl.username", "weir"),
                ("sasl.password", "anything"),
            ],
        )
        .is_err(),
        "PLAIN is not offered"
    );
    assert!(
        !std::fs::read_to_string(dir.join("broker.log"))
            .unwrap()
            .contains(password),
        "the broker logged a password"
    );
}
