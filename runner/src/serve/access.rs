//! Who may connect to a server weir runs for browsers and clients (the dashboard, the `websocket`
//! sink): the token, the origin allow-list and the connection cap.
//!
//! - **Token.** Presented in the Socket.IO handshake's `auth` payload, an
//!   `Authorization: Bearer` header or the `weir_token` cookie — never in a URL, where it would
//!   end up in browser history, proxy logs and `Referer` headers. Compared in constant time
//!   (`serve::token`).
//! - **Origin.** A browser connection is let in when its `Origin` is on the dashboard's own port
//!   at `localhost` or an IP address, or listed in `allowed_origins`. The `Host` header is not
//!   trusted: a page on an attacker's name that resolves to this machine (DNS rebinding) sends a
//!   matching `Host` but its own name in `Origin`. Clients that send no `Origin` are not browsers
//!   and are left to the token.
//! - **Cap.** At most `max_connections` clients at a time; more are refused and counted.

use crate::serve::token::{Token, bearer};
use axum::http::{HeaderMap, header};
use serde_json::Value;
use std::net::IpAddr;

/// The cookie the page keeps the token in.
pub const TOKEN_COOKIE: &str = "weir_token";

/// Who may connect.
#[derive(Clone, Debug)]
pub struct Access {
    /// The token clients must present, if one is set.
    token: Option<Token>,
    /// Origins allowed besides the dashboard's own (`*` for any).
    allowed_origins: Vec<String>,
    /// The port the dashboard listens on.
    port: u16,
    /// Most clients connected at once.
    pub max_connections: usize,
}

/// Why a connection was refused (sent to the client, counted, logged at debug level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or not the right one.
    Token,
    /// A browser page from an origin not allowed.
    Origin,
    /// `max_connections` clients are connected already.
    Full,
}

impl Refusal {
    /// The reason as told to the client.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Token => "missing or wrong token",
            Refusal::Origin => "origin not allowed",
            Refusal::Full => "too many connections",
        }
    }
}

impl Access {
    /// Access for a dashboard on `port`.
    pub fn new(
        token: Option<&str>,
        allowed_origins: Vec<String>,
        port: u16,
        max_connections: usize,
    ) -> Self {
        Access {
            token: token.map(Token::new),
            allowed_origins,
            port,
            max_connections,
        }
    }

    /// Checks a new connection's token (from `auth` or `headers`) and origin.
    pub fn check(&self, headers: &HeaderMap, auth: Option<&Value>) -> Result<(), Refusal> {
        if let Some(expected) = &self.token {
            let presented = auth
                .and_then(|a| a.get("token"))
                .and_then(Value::as_str)
                .or_else(|| bearer(headers))
                .map(|t| t.as_bytes().to_vec())
                .or_else(|| cookie(headers, TOKEN_COOKIE).map(percent_decoded));
            let matches = presented.is_some_and(|p| expected.matches(&p));
            if !matches {
                return Err(Refusal::Token);
            }
        }
        // No `Origin`: not a browser, the token (if any) decides. Several: every one must pass.
        let allowed = headers
            .get_all(header::ORIGIN)
            .iter()
            .all(|o| o.to_str().is_ok_and(|origin| self.origin_allowed(origin)));
        if allowed {
            Ok(())
        } else {
            Err(Refusal::Origin)
        }
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        if self
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        {
            return true;
        }
        let Some((scheme, rest)) = origin.split_once("://") else {
            return false;
        };
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return false,
        };
        let (host, port) = split_host_port(rest, default_port);
        port == Some(self.port)
            && (host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok())
    }
}

/// A cookie value as the page wrote it (`encodeURIComponent`), decoded.
fn percent_decoded(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// `host[:port]` (IPv6 in brackets) into the host without brackets and the port.
fn split_host_port(text: &str, default_port: u16) -> (&str, Option<u16>) {
    if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return (text, None);
        };
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok(),
            None if after.is_empty() => Some(default_port),
            None => None,
        };
        return (host, port);
    }
    match text.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()),
        None => (text, Some(default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_token_comes_from_auth_a_bearer_header_or_the_cookie_never_the_url() {
        let access = Access::new(Some("s3cret"), Vec::new(), 5000, 10);
        let none = HeaderMap::new();
        assert_eq!(access.check(&none, None), Err(Refusal::Token));
        assert_eq!(
            access.check(&none, Some(&json!({"token": "s3cret"}))),
            Ok(())
        );
        assert_eq!(
            access.check(&none, Some(&json!({"token": "s3cre"}))),
            Err(Refusal::Token)
        );
        let bearer = headers(&[(header::AUTHORIZATION, "Bearer s3cret")]);
        assert_eq!(access.check(&bearer, None), Ok(()));
        let cookie = headers(&[(header::COOKIE, "theme=dark; weir_token=s3cret")]);
        assert_eq!(access.check(&cookie, None), Ok(()));
        let encoded = Access::new(Some("a b;c%"), Vec::new(), 5000, 10);
        let cookie = headers(&[(header::COOKIE, "weir_token=a%20b%3Bc%25")]);
        assert_eq!(encoded.check(&cookie, None), Ok(()));
        let wrong_cookie = headers(&[(header::COOKIE, "weir_token=nope")]);
        assert_eq!(access.check(&wrong_cookie, None), Err(Refusal::Token));
    }

    #[test]
    fn origins_on_the_dashboards_port_at_localhost_or_an_address_are_its_own() {
        let access = Access::new(None, vec!["https://charts.example".into()], 5000, 10);
        let from = |origin: &str, host: &str| {
            access.check(
                &headers(&[(header::ORIGIN, origin), (header::HOST, host)]),
                None,
            )
        };
        for own in [
            "http://127.0.0.1:5000",
            "http://localhost:5000",
            "http://LOCALHOST:5000",
            "http://192.168.1.20:5000",
            "http://[::1]:5000",
            "https://charts.example",
        ] {
            assert_eq!(from(own, "127.0.0.1:5000"), Ok(()), "{own}");
        }
        // DNS rebinding: the attacker's page sends a Host that matches, but its own Origin.
        assert_eq!(
            from(
                "http://rebind.attacker.example:5000",
                "rebind.attacker.example:5000"
            ),
            Err(Refusal::Origin)
        );
        for foreign in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "null",
            "file://",
            "http://[::1]",
        ] {
            assert_eq!(
                from(foreign, "127.0.0.1:5000"),
                Err(Refusal::Origin),
                "{foreign}"
            );
        }
        // No Origin: not a browser.
        assert_eq!(access.check(&HeaderMap::new(), None), Ok(()));
    }
}
