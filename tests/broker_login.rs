//! A SCRAM broker seen through the raw Kafka protocol, as an attacker sees it: a client that
//! ignores a refusal and keeps sending. A failed login — a wrong password, a made-up proof, an
//! unknown user — is answered SASL_AUTHENTICATION_FAILED and the connection closed; nothing but
//! ApiVersions and the SASL requests is answered before a login; an independent reader checks
//! that nothing was written. A request the broker does not carry out is refused, not a crash.
//! (Library clients, TLS and SASL_SSL: tests/kafka_security.rs.)

mod common;

use common::kafka::{count_to_end, reader, scram_broker};
use common::kafka_wire::{self, WireClient};
use std::time::Duration;

/// A SCRAM-SHA-256 exchange on a raw connection: the client-first message for `user`, then the
/// client-final message made from the server's answer by `finish` (rsasl's client for
/// `password`, or a forgery). Returns the answer to the final message, `None` if the connection
/// was closed before it.
fn scram_exchange(
    client: &mut WireClient,
    user: &str,
    password: &str,
    forge_final: Option<&dyn Fn(&str) -> String>,
) -> Option<(i16, Option<String>, Vec<u8>)> {
    use rsasl::prelude::{Mechname, SASLClient, SASLConfig};
    let config = SASLConfig::with_credentials(None, user.into(), password.into()).unwrap();
    let mechanism = Mechname::parse(b"SCRAM-SHA-256").unwrap();
    let mut session = SASLClient::new(config)
        .start_suggested(&[mechanism])
        .unwrap();
    assert_eq!(client.sasl_handshake("SCRAM-SHA-256"), Some(0), "handshake");

    let mut client_first = Vec::new();
    session.step(None, &mut client_first).unwrap();
    let (code, _, server_first) = client.sasl_authenticate(&client_first)?;
    assert_eq!(code, 0, "the first SCRAM message is answered");

    let client_final = match forge_final {
        Some(forge) => forge(std::str::from_utf8(&server_first).unwrap()).into_bytes(),
        None => {
            let mut client_final = Vec::new();
            session
                .step(Some(&server_first), &mut client_final)
                .unwrap();
            client_final
        }
    };
    client.sasl_authenticate(&client_final)
}

/// A client-final message with a made-up proof for the server's nonce.
fn random_proof(server_first: &str) -> String {
    use base64::Engine as _;
    let nonce = server_first
        .split(',')
        .find_map(|a| a.strip_prefix("r="))
        .expect("a nonce in the server's first message");
    let (_, mut next) = common::kafka::seeded();
    let proof: Vec<u8> = (0..32).map(|_| next(256) as u8).collect();
    format!(
        "c=biws,r={nonce},p={}",
        base64::engine::general_purpose::STANDARD.encode(proof)
    )
}

/// The raw-protocol view of a SCRAM broker: a failed login — a wrong password, a made-up proof,
/// an unknown user — is answered SASL_AUTHENTICATION_FAILED and the connection is closed; a
/// second SaslAuthenticate after a failure gets nothing; a request before the handshake gets
/// nothing. None of them sees a topic or writes a record: an independent reader with the right
/// password finds exactly what a good login wrote. The good login, on the same raw client,
/// shows the requests themselves are served once a login succeeds.
#[test]
fn a_failed_or_missing_sasl_login_is_refused_and_the_connection_closed() {
    assert_eq!(kafka_wire::crc32c(b"123456789"), 0xE306_9283);
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let password = "correct horse battery staple";
    let (_broker, address) = scram_broker(dir, &[("weir", password)]);

    // A good login, then every request the attacks below try: all served.
    let mut good = WireClient::connect(&address);
    assert!(!good.api_versions().is_closed());
    let (code, message, server_final) =
        scram_exchange(&mut good, "weir", password, None).expect("answered");
    assert_eq!(code, 0, "{message:?}");
    assert!(String::from_utf8_lossy(&server_final).starts_with("v="));
    assert_eq!(good.create_topic("kept"), Some(0));
    assert!(good.topic_names().unwrap().contains(&"kept".to_string()));
    let values: [&[u8]; 3] = [b"one", b"two", b"three"];
    let mut written = 0;
    for _ in 0..50 {
        // the new topic's partition may take a moment to be ready
        if good.produce("kept", &values) == Some(0) {
            written = values.len();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(written, 3, "the good login could not write");
    assert_eq!(good.fetch("kept"), Some((0, 3)));

    // What an intruder sends once it thinks it is in, each on a connection of its own; every
    // one must find the connection closed.
    type Intrusion = fn(&mut WireClient) -> bool;
    let intrusions: [(&str, Intrusion); 5] = [
        ("metadata", |c| c.topic_names().is_none()),
        ("create", |c| c.create_topic("intruder").is_none()),
        ("produce", |c| c.produce("kept", &[b"intruder"]).is_none()),
        ("fetch", |c| c.fetch("kept").is_none()),
        // refused (ILLEGAL_SASL_STATE) or not read at all, and the connection closed after it
        ("authenticate", |c| {
            match c.sasl_authenticate(b"n,,n=weir,r=again") {
                None => true,
                Some((code, _, _)) => code == 34 && c.api_versions().is_closed(),
            }
        }),
    ];

    type Forgery<'a> = Option<&'a dyn Fn(&str) -> String>;
    let failed_logins: [(&str, &str, &str, Forgery); 3] = [
        ("wrong password", "weir", "not the password", None),
        ("random proof", "weir", password, Some(&random_proof)),
        ("unknown user", "mallory", password, None),
    ];
    for (case, user, secret, forge) in failed_logins {
        let mut client = WireClient::connect(&address);
        let (code, message, bytes) =
            scram_exchange(&mut client, user, secret, forge).expect("the failure is answered");
        assert_eq!(
            code, 58,
            "{case}: SASL_AUTHENTICATION_FAILED, got {message:?}"
        );
        let message = message.unwrap_or_default();
        assert!(message.contains("invalid credentials"), "{case}: {message}");
        assert!(bytes.is_empty(), "{case}: SASL bytes after a failure");
        // The same answer for a wrong password and an unknown user: no probing for names.
        assert!(
            !message.contains("mallory") && !message.contains("unknown"),
            "{case}"
        );
        // The connection is closed: even ApiVersions gets nothing.
        assert!(client.api_versions().is_closed(), "{case}: still open");
        for (what, intrusion) in intrusions {
            let mut client = WireClient::connect(&address);
            scram_exchange(&mut client, user, secret, forge).expect("the failure is answered");
            assert!(
                intrusion(&mut client),
                "{case}: {what} after the failure was served"
            );
        }
    }

    // Requests before any handshake, each on a connection of its own.
    for (what, intrusion) in intrusions {
        let mut client = WireClient::connect(&address);
        assert!(
            intrusion(&mut client),
            "{what} before the handshake was served"
        );
    }
    // An unknown mechanism ends the connection too.
    let mut client = WireClient::connect(&address);
    assert_eq!(client.sasl_handshake("PLAIN"), Some(33)); // UNSUPPORTED_SASL_MECHANISM
    assert!(
        client.api_versions().is_closed(),
        "open after an unsupported mechanism"
    );

    // An independent reader with the right password: only what the good login wrote.
    let consumer = reader(
        &address,
        "wire-check",
        "kept",
        &[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanisms", "SCRAM-SHA-256"),
            ("sasl.username", "weir"),
            ("sasl.password", password),
        ],
    );
    assert_eq!(count_to_end(&consumer), written);
    let mut check = WireClient::connect(&address);
    scram_exchange(&mut check, "weir", password, None).expect("answered");
    let topics = check.topic_names().unwrap();
    assert!(
        !topics.iter().any(|t| t.starts_with("intruder")),
        "an intruder created a topic: {topics:?}"
    );
}

/// A request the embedded broker does not carry out (DeleteRecords) is refused with an error
/// code, on both storage engines: it used to panic the request's task (`todo!()`), with
/// `sqlite://` the one task that serves every storage request. The connection and the broker
/// go on serving: the same connection and a new one can still write and read.
#[test]
fn a_delete_records_request_is_refused_and_the_broker_goes_on() {
    for engine in ["memory://", "sqlite"] {
        let dir = tempfile::tempdir().unwrap();
        let storage = match engine {
            "sqlite" => format!("sqlite://{}", dir.path().join("b.db").display()),
            other => other.to_string(),
        };
        let (_broker, address) = common::kafka::broker(dir.path(), &storage);
        let mut client = WireClient::connect(&address);
        assert_eq!(client.create_topic("t"), Some(0), "{engine}");
        // DeleteRecords v0: one topic `t`, partition 0 up to offset 0, a 1 s timeout.
        let mut body = Vec::new();
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(b"t");
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&0i32.to_be_bytes());
        body.extend_from_slice(&0i64.to_be_bytes());
        body.extend_from_slice(&1000i32.to_be_bytes());
        let answer = client.request(21, 0, &body).body(engine);
        // throttle, 1 topic `t`, 1 partition: index 0, low watermark, error POLICY_VIOLATION (44)
        let error = i16::from_be_bytes([answer[answer.len() - 2], answer[answer.len() - 1]]);
        assert_eq!(error, 44, "{engine}: {answer:?}");
        let values: [&[u8]; 2] = [b"after", b"refusal"];
        let mut written = false;
        for _ in 0..50 {
            if client.produce("t", &values) == Some(0) {
                written = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(written, "{engine}: the connection no longer writes");
        let mut fresh = WireClient::connect(&address);
        assert_eq!(fresh.fetch("t"), Some((0, 2)), "{engine}");
    }
}
