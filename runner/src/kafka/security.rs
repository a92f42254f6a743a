//! Reaching a cluster that wants TLS or SASL: the `tls` and `sasl` keys of a Kafka stage (or of
//! `[kafka]`), turned into librdkafka's `security.protocol`, `ssl.*` and `sasl.*` settings.
//! Passwords come from the pipeline file (usually `${ENV}`) or a file, are kept in a [`Secret`]
//! that never prints, and are handed only to librdkafka.

use crate::stage::OptionIssue;
use rdkafka::ClientConfig;
use serde::Deserialize;
use std::path::Path;

/// A password: shown as `***` in logs, `Debug` output and messages.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Secret(text)
    }
}

impl Secret {
    /// The secret itself, for the one place that hands it on.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// `tls = { ca, cert, key, key_password }`: connect over TLS, checking the brokers' certificates
/// against `ca` (else the system's store), presenting `cert`/`key` when the cluster wants
/// client certificates.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsOptions {
    /// PEM file of the CA(s) that signed the brokers' certificates.
    pub ca: Option<String>,
    /// PEM file of this client's certificate.
    pub cert: Option<String>,
    /// PEM file of this client's private key.
    pub key: Option<String>,
    /// Password of `key`, if it is encrypted.
    pub key_password: Option<Secret>,
}

/// The SASL mechanisms weir's librdkafka is built with.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum Mechanism {
    /// Username and password in the clear (use with TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// Salted challenge-response, SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// Salted challenge-response, SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// `sasl = { mechanism, username, password | password_file }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslOptions {
    /// How to authenticate.
    pub mechanism: Mechanism,
    /// The user.
    pub username: String,
    /// The password (write `"${KAFKA_PASSWORD}"` to keep it out of the file).
    pub password: Option<Secret>,
    /// A file whose first line is the password.
    pub password_file: Option<String>,
}

/// The librdkafka settings the security keys own (set with `tls`/`sasl`, not `options`).
pub const OWNED_SETTINGS: &[&str] = &[
    "security.protocol",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "sasl.mechanisms",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
];

/// Checks `tls` and `sasl` (files readable, one password source); issues name the key.
pub fn check(tls: Option<&TlsOptions>, sasl: Option<&SaslOptions>) -> Vec<OptionIssue> {
    let mut issues = Vec::new();
    if let Some(tls) = tls {
        for (key, file) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
            if let Some(file) = file
                && !Path::new(file).is_file()
            {
                issues.push(OptionIssue::new(
                    format!("tls.{key}"),
                    format!("{file} is not a readable file"),
                ));
            }
        }
        if tls.cert.is_some() != tls.key.is_some() {
            issues.push(OptionIssue::new(
                "tls",
                "a client certificate needs both `cert` and `key`",
            ));
        }
    }
    if let Some(sasl) = sasl {
        issues.extend(check_password(
            "sasl",
            sasl.password.as_ref(),
            sasl.password_file.as_deref(),
        ));
        if sasl.mechanism == Mechanism::Plain && tls.is_none() {
            issues.push(
                OptionIssue::new(
                    "sasl.mechanism",
                    "PLAIN without `tls` sends the password in the clear",
                )
                .hint("add `tls = {}` (or a `ca`), or use SCRAM-SHA-256"),
            );
        }
    }
    issues
}

/// Checks that a password has exactly one source, `password` or a readable `password_file`;
/// issues name the key under `table` (e.g. `sasl.password_file`).
pub fn check_password(
    table: &str,
    password: Option<&Secret>,
    password_file: Option<&str>,
) -> Option<OptionIssue> {
    match (password, password_file) {
        (None, None) => Some(
            OptionIssue::new(table, "no password: set `password` or `password_file`")
                .hint("password = \"${KAFKA_PASSWORD}\" keeps it out of the file"),
        ),
        (Some(_), Some(_)) => Some(OptionIssue::new(
            table,
            "set `password` or `password_file`, not both",
        )),
        (None, Some(file)) if !Path::new(file).is_file() => Some(OptionIssue::new(
            format!("{table}.password_file"),
            format!("{file} is not a readable file"),
        )),
        _ => None,
    }
}

/// The password itself: `password`, or the first line of `password_file`. An unreadable file
/// is an error naming the file (never its content).
pub fn read_password(
    table: &str,
    password: Option<&Secret>,
    password_file: Option<&str>,
) -> Result<String, String> {
    match (password, password_file) {
        (Some(Secret(password)), _) => Ok(password.clone()),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map(|text| text.lines().next().unwrap_or_default().to_string())
            .map_err(|e| format!("cannot read {table}.password_file {file}: {e}")),
        (None, None) => Err(format!("{table} has no password")),
    }
}

/// Sets the librdkafka settings for `tls` and `sasl` on `config`. A `password_file` that cannot
/// be read is an error naming the file (never its content).
pub fn apply(
    config: &mut ClientConfig,
    tls: Option<&TlsOptions>,
    sasl: Option<&SaslOptions>,
) -> Result<(), String> {
    let protocol = match (tls.is_some(), sasl.is_some()) {
        (false, false) => return Ok(()),
        (true, false) => "SSL",
        (false, true) => "SASL_PLAINTEXT",
        (true, true) => "SASL_SSL",
    };
    config.set("security.protocol", protocol);
    if let Some(tls) = tls {
        for (setting, file) in [
            ("ssl.ca.location", &tls.ca),
            ("ssl.certificate.location", &tls.cert),
            ("ssl.key.location", &tls.key),
        ] {
            if let Some(file) = file {
                config.set(setting, file);
            }
        }
        if let Some(Secret(password)) = &tls.key_password {
            config.set("ssl.key.password", password);
        }
    }
    if let Some(sasl) = sasl {
        config.set("sasl.mechanisms", sasl.mechanism.name());
        config.set("sasl.username", &sasl.username);
        let password = read_password(
            "sasl",
            sasl.password.as_ref(),
            sasl.password_file.as_deref(),
        )?;
        config.set("sasl.password", password);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_keys_and_the_password_never_prints() {
        let tls = TlsOptions {
            ca: Some("/ca.pem".into()),
            ..TlsOptions::default()
        };
        let sasl = SaslOptions {
            mechanism: Mechanism::ScramSha512,
            username: "weir".into(),
            password: Some(Secret("hunter2".into())),
            password_file: None,
        };
        let mut config = ClientConfig::new();
        apply(&mut config, Some(&tls), Some(&sasl)).unwrap();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("ssl.ca.location"), Some("/ca.pem"));
        assert_eq!(config.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.password"), Some("hunter2"));
        assert!(!format!("{sasl:?}").contains("hunter2"));
        let mut plain = ClientConfig::new();
        apply(&mut plain, Some(&tls), None).unwrap();
        assert_eq!(plain.get("security.protocol"), Some("SSL"));
        assert!(
            check(
                None,
                Some(&SaslOptions {
                    mechanism: Mechanism::Plain,
                    ..sasl.clone()
                })
            )
            .iter()
            .any(|i| i.message.contains("in the clear"))
        );
    }
}
