//! The shared secret a listener may require: a token clients present (as `Authorization: Bearer`
//! or however the listener's protocol carries it), compared in constant time, and a warning for a
//! listener reachable from other machines without one.

use crate::stage::OptionIssue;
use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A required token, kept as its SHA-256 so comparing takes the same time whatever is presented.
#[derive(Clone)]
pub struct Token([u8; 32]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// The token `secret`.
    pub fn new(secret: &str) -> Self {
        Token(Sha256::digest(secret.as_bytes()).into())
    }

    /// True when `presented` is the token.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        bool::from(digest.ct_eq(&self.0))
    }

    /// True when `headers` carry `Authorization: Bearer <the token>`.
    pub fn in_bearer(&self, headers: &HeaderMap) -> bool {
        bearer(headers).is_some_and(|t| self.matches(t.as_bytes()))
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// A warning for `listen` (the option named `key`) reachable from other machines: without a
/// token anyone there may connect; with a token but without TLS the token crosses the network
/// in the clear.
pub fn open_listener_warning(
    key: &str,
    listen: &str,
    token_set: bool,
    tls_set: bool,
) -> Vec<OptionIssue> {
    open_listener_issue(key, listen, token_set, tls_set)
        .into_iter()
        .collect()
}

fn open_listener_issue(
    key: &str,
    listen: &str,
    token_set: bool,
    tls_set: bool,
) -> Option<OptionIssue> {
    let open = listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| !a.ip().is_loopback());
    if !open {
        None
    } else if !token_set {
        Some(
            OptionIssue::new(
                key,
                format!("{listen} is reachable from other machines and no token is set"),
            )
            .hint("set `token`, or listen on 127.0.0.1"),
        )
    } else if !tls_set {
        Some(
            OptionIssue::new(
                key,
                format!(
                    "{listen} is reachable from other machines and its token travels unencrypted"
                ),
            )
            .hint("set `tls = { cert, key }`, or listen on 127.0.0.1 behind a TLS proxy"),
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_the_token_itself_matches() {
        let token = Token::new("s3cret");
        assert!(token.matches(b"s3cret"));
        assert!(!token.matches(b"s3cre"));
        assert!(!token.matches(b""));
        let mut headers = HeaderMap::new();
        assert!(!token.in_bearer(&headers));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(token.in_bearer(&headers));
        assert_eq!(
            format!("{token:?}"),
            "Token(..)",
            "the secret never shows in logs"
        );
    }
}
