//! The embedded broker's SCRAM users (`embedded = { users = [...] }`, `weir broker --user`):
//! their options, and the credentials the broker stores for them (RFC 5802 / RFC 7677: a salt,
//! an iteration count, `StoredKey` and `ServerKey`; never the password). With at least one user
//! the broker accepts only clients that authenticate with SCRAM-SHA-256 or SCRAM-SHA-512.

use super::security::{Secret, check_password, read_password};
use crate::stage::OptionIssue;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256, Sha512};

/// `{ username, password | password_file }`: a user the broker accepts.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BrokerUser {
    /// The name clients give as `sasl.username`.
    pub username: String,
    /// The password (write `"${BROKER_PASSWORD}"` to keep it out of the file).
    pub password: Option<Secret>,
    /// A file whose first line is the password.
    pub password_file: Option<String>,
}

impl BrokerUser {
    /// A user whose password is the first line of `file` (`weir broker --user NAME:FILE`).
    pub fn from_file(username: &str, file: &str) -> Self {
        BrokerUser {
            username: username.into(),
            password: None,
            password_file: Some(file.into()),
        }
    }
}

/// Iterations of PBKDF2 for a stored credential: Kafka's minimum for SCRAM and its tools'
/// default.
pub const ITERATIONS: u32 = 4096;

/// Checks each user (a name, one password source); issues name `users[i]`.
pub fn check(users: &[BrokerUser]) -> Vec<OptionIssue> {
    let mut issues = Vec::new();
    for (index, user) in users.iter().enumerate() {
        let table = format!("users[{index}]");
        if user.username.is_empty() {
            issues.push(OptionIssue::new(
                format!("{table}.username"),
                "a user needs a name",
            ));
        }
        if users[..index].iter().any(|u| u.username == user.username) {
            issues.push(OptionIssue::new(
                format!("{table}.username"),
                format!("user `{}` is listed twice", user.username),
            ));
        }
        issues.extend(check_password(
            &table,
            user.password.as_ref(),
            user.password_file.as_deref(),
        ));
    }
    issues
}

/// A SCRAM hash function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScramHash {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

/// What the broker keeps for one user and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCredential {
    /// Random bytes mixed into the password.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`: checks a client's proof.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`: proves the broker to the client.
    pub server_key: Vec<u8>,
}

/// The stored credential of `password` with `salt`.
pub fn credential(hash: ScramHash, password: &str, salt: &[u8]) -> StoredCredential {
    match hash {
        ScramHash::Sha256 => credential_with::<Sha256, Hmac<Sha256>>(password, salt),
        ScramHash::Sha512 => credential_with::<Sha512, Hmac<Sha512>>(password, salt),
    }
}

fn credential_with<H, M>(password: &str, salt: &[u8]) -> StoredCredential
where
    H: Digest,
    M: Mac + KeyInit + hmac::digest::Update + hmac::digest::FixedOutput + Clone + Sync,
{
    let mut salted = vec![0u8; <H as Digest>::output_size()];
    pbkdf2::pbkdf2::<M>(password.as_bytes(), salt, ITERATIONS, &mut salted)
        .expect("HMAC takes keys of any length");
    let keyed = |label: &[u8]| {
        let mut mac =
            <M as KeyInit>::new_from_slice(&salted).expect("HMAC takes keys of any length");
        Mac::update(&mut mac, label);
        Mac::finalize(mac).into_bytes().to_vec()
    };
    StoredCredential {
        salt: salt.to_vec(),
        iterations: ITERATIONS,
        stored_key: H::digest(keyed(b"Client Key")).to_vec(),
        server_key: keyed(b"Server Key"),
    }
}

/// Each user's name and password, read now (from the file for `password_file`).
pub fn passwords(users: &[BrokerUser]) -> Result<Vec<(String, Secret)>, String> {
    users
        .iter()
        .enumerate()
        .map(|(index, user)| {
            read_password(
                &format!("users[{index}]"),
                user.password.as_ref(),
                user.password_file.as_deref(),
            )
            .map(|password| (user.username.clone(), Secret::from(password)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 exchange (user "user", password "pencil"): a broker holding
    /// only our stored credential accepts the RFC's client proof and answers with the RFC's
    /// server signature, checked the way a SCRAM server and client check them.
    #[test]
    fn the_stored_credential_verifies_rfc_7677s_exchange() {
        let salt = decode64("W22ZaJ0SNY7soEsUEjb6gQ==");
        let stored = credential(ScramHash::Sha256, "pencil", &salt);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let hmac = |key: &[u8]| {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
            Mac::update(&mut mac, auth_message.as_bytes());
            Mac::finalize(mac).into_bytes().to_vec()
        };
        let proof = decode64("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let client_key: Vec<u8> = proof
            .iter()
            .zip(hmac(&stored.stored_key))
            .map(|(p, s)| p ^ s)
            .collect();
        assert_eq!(Sha256::digest(&client_key).to_vec(), stored.stored_key);
        assert_eq!(
            hmac(&stored.server_key),
            decode64("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        );
        let other = credential(ScramHash::Sha256, "pencil2", &salt);
        assert_ne!(other.stored_key, stored.stored_key);
    }

    fn decode64(text: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
    }

    #[test]
    fn users_need_a_name_one_password_source_and_no_repeats() {
        let user = |name: &str| BrokerUser {
            username: name.into(),
            password: Some(Secret::from("x".to_string())),
            password_file: None,
        };
        assert!(check(&[user("a"), user("b")]).is_empty());
        let issues = check(&[user(""), user("b"), user("b")]);
        let keys: Vec<_> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["users[0].username", "users[2].username"]);
        let no_password = BrokerUser {
            password: None,
            ..user("c")
        };
        assert_eq!(check(&[no_password])[0].key, "users[0]");
    }
}
