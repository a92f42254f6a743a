//! Kafka over TLS and SASL on the real protocol. TLS: the embedded broker serving TLS on its own
//! listener (`weir broker --tls-cert`, `embedded.tls`), with a CA, server and client
//! certificates the test makes with the openssl command line; with `--tls-ca`, mutual TLS. SASL:
//! `weir broker --user`, which checks SCRAM logins against the users it was given, also inside
//! TLS (SASL_SSL). Pipelines write the sample log to a topic and read it back (checked by an
//! independent reader too); a wrong password, an unknown user, an unknown CA, a missing or
//! foreign client certificate and a client without TLS or SASL fail with a clear error instead
//! of hanging, and no password ever shows in a log or an error.(What a raw-protocol client
//! gets after a failed login or before one: tests/broker_login.rs.)

mod common;

use common::kafka::{count_to_end, reader, scram_broker, wait_for_port};
use common::tls::{make_ca, make_client_cert, make_server_cert};
use common::{Background, free_port, repo, weir};
use rdkafka::error::KafkaError;
use std::path::Path;
use std::time::{Duration, Instant};

/// `weir broker` serving TLS only on a free port, with server.pem / server.key of `dir` and
/// `extra` arguments. Returns the process and its address.
fn tls_broker(dir: &Path, extra: &[&str]) -> (Background, String) {
    let port = free_port();
    let mut broker = weir();
    broker
        .args(["broker", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--tls-cert", "server.pem", "--tls-key", "server.key"])
        .args(extra)
        .current_dir(dir);
    let broker = Background::start(broker, &dir.join("broker.out"), &dir.join("broker.log"));
    wait_for_port(port);
    (broker, format!("127.0.0.1:{port}"))
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
    run_with_password(dir, pipeline, "")
}

/// `weir run` of `pipeline` in `dir` with `KAFKA_PASSWORD` set to `password`: whether it
/// succeeded, and its log.
fn run_with_password(dir: &Path, pipeline: &Path, password: &str) -> (bool, String) {
    let out = weir()
        .arg("run")
        .arg(pipeline)
        .env("KAFKA_PASSWORD", password)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// How many records the pipeline `name` of `dir` read back (its file sink's lines).
fn read_back(dir: &Path, name: &str) -> usize {
    std::fs::read_to_string(dir.join(format!("{name}.out.jsonl")))
        .unwrap()
        .lines()
        .count()
}

/// A temporary directory with a CA `ca` and a server certificate for 127.0.0.1 it signed.
fn with_server_certificate() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "ca");
    make_server_cert(dir.path(), "ca");
    dir
}

#[test]
fn a_pipeline_writes_and_reads_through_tls_and_refuses_an_unknown_ca_or_plaintext() {
    let dir = with_server_certificate();
    let dir = dir.path();
    make_ca(dir, "other-ca");
    let (_broker, address) = tls_broker(dir, &[]);
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
    assert_eq!(
        read_back(dir, "good.toml"),
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

/// SASL inside TLS (SASL_SSL): `weir broker` with a TLS listener and a SCRAM user serves a
/// pipeline that does both; a wrong password and a client with TLS but no login are refused.
/// The same through a pipeline's own embedded broker (`embedded.tls` and `embedded.users`), and
/// `weir validate` refuses a stage that would speak plaintext to an embedded TLS broker.
#[test]
fn sasl_runs_inside_tls_on_the_brokers_own_listener() {
    let dir = with_server_certificate();
    let dir = dir.path();
    let ca = dir.join("ca.pem");
    let password = "tls and scram";
    std::fs::write(dir.join("weir.password"), format!("{password}\n")).unwrap();
    let (_broker, address) = tls_broker(dir, &["--user", "weir:weir.password"]);

    let login = |name: &str, secret: &str| {
        let path = pipeline(
            dir,
            name,
            &format!(
                "brokers = \"{address}\"\ntls = {{ ca = \"{}\" }}\n\
                 sasl = {{ mechanism = \"SCRAM-SHA-256\", username = \"weir\", password = \"${{KAFKA_PASSWORD}}\" }}",
                ca.display()
            ),
        );
        run_with_password(dir, &path, secret)
    };
    let (ok, stderr) = login("sasl-ssl.toml", password);
    assert!(ok, "{stderr}");
    assert_eq!(read_back(dir, "sasl-ssl.toml"), 9_999, "{stderr}");
    let consumer = reader(
        &address,
        "sasl-ssl-reader",
        "sex",
        &[
            ("security.protocol", "SASL_SSL"),
            ("ssl.ca.location", ca.to_str().unwrap()),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "weir"),
            ("sasl.password", password),
        ],
    );
    assert_eq!(count_to_end(&consumer), 9_999);

    let (ok, stderr) = login("sasl-ssl-wrong.toml", "not the password");
    assert!(!ok, "a wrong password over TLS must fail");
    assert!(
        stderr.contains("refused the SASL login of user `weir`"),
        "{stderr}"
    );
    let tls_only = pipeline(
        dir,
        "tls-no-sasl.toml",
        &format!(
            "brokers = \"{address}\"\ntls = {{ ca = \"{}\" }}",
            ca.display()
        ),
    );
    let (ok, stderr) = run_pipeline(dir, &tls_only);
    assert!(
        !ok,
        "TLS without a login must fail against a broker with users: {stderr}"
    );

    // The pipeline's own broker, configured in the file.
    let port = free_port();
    let embedded = format!(
        "brokers = \"embedded\"\n\
         embedded = {{ listen = \"127.0.0.1:{port}\", users = [{{ username = \"weir\", password = \"${{KAFKA_PASSWORD}}\" }}], \
         tls = {{ cert = \"{cert}\", key = \"{key}\" }} }}\n",
        cert = dir.join("server.pem").display(),
        key = dir.join("server.key").display(),
    );
    let path = pipeline(
        dir,
        "embedded-sasl-ssl.toml",
        &format!(
            "{embedded}tls = {{ ca = \"{}\" }}\n\
             sasl = {{ mechanism = \"SCRAM-SHA-512\", username = \"weir\", password = \"${{KAFKA_PASSWORD}}\" }}",
            ca.display()
        ),
    );
    let (ok, stderr) = run_with_password(dir, &path, password);
    assert!(ok, "{stderr}");
    assert_eq!(read_back(dir, "embedded-sasl-ssl.toml"), 9_999, "{stderr}");

    // A stage that would speak plaintext to it is refused before anything starts.
    let path = pipeline(
        dir,
        "embedded-plaintext.toml",
        &format!(
            "{embedded}sasl = {{ mechanism = \"SCRAM-SHA-512\", username = \"weir\", password = \"${{KAFKA_PASSWORD}}\" }}"
        ),
    );
    let out = weir()
        .arg("validate")
        .arg(&path)
        .env("KAFKA_PASSWORD", password)
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the embedded broker speaks only TLS"),
        "{stderr}"
    );
}

/// Mutual TLS: a broker started with `--tls-ca` serves a client whose certificate that CA
/// signed, and refuses one without a certificate and one whose certificate another CA signed.
#[test]
fn a_mutual_tls_broker_serves_only_clients_with_a_certificate_from_its_ca() {
    let dir = with_server_certificate();
    let dir = dir.path();
    make_ca(dir, "clients-ca");
    make_client_cert(dir, "clients-ca", "client");
    make_ca(dir, "rogue-ca");
    make_client_cert(dir, "rogue-ca", "rogue");
    let ca = dir.join("ca.pem");
    let (_broker, address) = tls_broker(dir, &["--tls-ca", "clients-ca.pem"]);

    let with_cert = |name: &str, cert: Option<&str>| {
        let client = cert
            .map(|c| {
                format!(
                    ", cert = \"{}\", key = \"{}\"",
                    dir.join(format!("{c}.pem")).display(),
                    dir.join(format!("{c}.key")).display()
                )
            })
            .unwrap_or_default();
        let path = pipeline(
            dir,
            name,
            &format!(
                "brokers = \"{address}\"\ntls = {{ ca = \"{}\"{client} }}",
                ca.display()
            ),
        );
        let started = Instant::now();
        let result = run_pipeline(dir, &path);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name}: {}",
            result.1
        );
        result
    };

    let (ok, stderr) = with_cert("mtls.toml", Some("client"));
    assert!(ok, "{stderr}");
    assert_eq!(read_back(dir, "mtls.toml"), 9_999, "{stderr}");
    let consumer = reader(
        &address,
        "mtls-reader",
        "sex",
        &[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", ca.to_str().unwrap()),
            (
                "ssl.certificate.location",
                dir.join("client.pem").to_str().unwrap(),
            ),
            ("ssl.key.location", dir.join("client.key").to_str().unwrap()),
        ],
    );
    assert_eq!(count_to_end(&consumer), 9_999);

    let (ok, stderr) = with_cert("mtls-none.toml", None);
    assert!(
        !ok,
        "a client without a certificate must be refused: {stderr}"
    );
    let (ok, stderr) = with_cert("mtls-rogue.toml", Some("rogue"));
    assert!(
        !ok,
        "a certificate from another CA must be refused: {stderr}"
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
    let (ok, stderr) = run_with_password(dir, &good, password);
    assert!(ok, "{stderr}");
    assert_eq!(read_back(dir, "scram.toml"), 9_999, "{stderr}");

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
