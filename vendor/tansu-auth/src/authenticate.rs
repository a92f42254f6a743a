// Copyright ⓒ 2024-2026 Peter Morgan <peter.james.morgan@gmail.com>
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

use std::io::Cursor;

use crate::{Authentication, Error, LoginFailure, Stage};
use bytes::Bytes;
use rama::{Context, Service};
use tansu_sans_io::{ApiKey, ErrorCode, SaslAuthenticateRequest, SaslAuthenticateResponse};
use tokio::task;
use tracing::{debug, warn};

#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct SaslAuthenticateService {
    session_lifetime_ms: Option<i64>,
}

impl Default for SaslAuthenticateService {
    fn default() -> Self {
        Self {
            session_lifetime_ms: Some(60_000),
        }
    }
}

impl SaslAuthenticateService {
    pub fn session_lifetime_ms(self, session_lifetime_ms: Option<i64>) -> Self {
        Self {
            session_lifetime_ms,
        }
    }
}

impl ApiKey for SaslAuthenticateService {
    const KEY: i16 = SaslAuthenticateRequest::KEY;
}

impl<S> Service<S, SaslAuthenticateRequest> for SaslAuthenticateService
where
    S: Send + Sync + 'static,
{
    type Response = SaslAuthenticateResponse;
    type Error = Error;

    async fn serve(
        &self,
        ctx: Context<S>,
        req: SaslAuthenticateRequest,
    ) -> Result<Self::Response, Self::Error> {
        // weir patch: a failed exchange is answered with SASL_AUTHENTICATION_FAILED (58) and
        // ends the connection (through the connection's `LoginFailure`). Upstream answered a bad
        // proof or an unknown user with error code 0 and kept serving the connection.
        let failure = ctx.get::<LoginFailure>().cloned();
        let fail = move |response: SaslAuthenticateResponse| {
            if let Some(failure) = failure.as_ref() {
                failure.set()
            }
            response
        };

        let Some(authentication) = ctx.get::<Authentication>().cloned() else {
            return Ok(fail(illegal_state()));
        };

        let session_lifetime_ms = self.session_lifetime_ms;

        task::spawn_blocking(move || {
            authentication
                .stage
                .lock()
                .map_err(Into::into)
                .map(|mut guard| {
                    let Some(Stage::Session(session)) = guard.as_mut() else {
                        // before a handshake, after a failure, or a second exchange
                        _ = guard.replace(Stage::Failed);
                        return fail(illegal_state());
                    };

                    let mechanism = session.get_mechname().to_string();
                    let mut outcome = Cursor::new(Vec::new());

                    let state = match session.step(Some(&req.auth_bytes), &mut outcome) {
                        Ok(state) => state,
                        Err(err) => {
                            warn!(%mechanism, %err, "SASL login failed: malformed exchange");
                            _ = guard.replace(Stage::Failed);
                            return fail(authentication_failed(&mechanism));
                        }
                    };
                    debug!(?state);

                    if !state.is_finished() {
                        return SaslAuthenticateResponse::default()
                            .error_code(ErrorCode::None.into())
                            .error_message(None)
                            .auth_bytes(Bytes::from(outcome.into_inner()))
                            .session_lifetime_ms(Some(0));
                    }

                    match session.validation() {
                        Some(Ok(success)) => {
                            debug!(?success);
                            _ = guard.replace(Stage::Finished(Some(success)));

                            SaslAuthenticateResponse::default()
                                .error_code(ErrorCode::None.into())
                                .error_message(None)
                                .auth_bytes(Bytes::from(outcome.into_inner()))
                                .session_lifetime_ms(session_lifetime_ms)
                        }

                        rejected => {
                            // SCRAM's server-final message names the reason (`e=invalid-proof`,
                            // `e=unknown-user`); it is logged, and the client is told only that
                            // its credentials were refused, so that it cannot probe which user
                            // names exist.
                            let outcome = outcome.into_inner();
                            let reason = server_error(&outcome)
                                .map(str::to_owned)
                                .or_else(|| {
                                    rejected.and_then(Result::err).map(|err| err.to_string())
                                })
                                .unwrap_or_else(|| "no identity was validated".into());
                            warn!(%mechanism, %reason, "SASL login failed");
                            _ = guard.replace(Stage::Failed);
                            fail(authentication_failed(&mechanism))
                        }
                    }
                })
        })
        .await?
    }
}

/// The answer to a failed exchange: Kafka's error code, a reason that does not tell a wrong
/// password from an unknown user, no SASL bytes.
fn authentication_failed(mechanism: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .error_code(ErrorCode::SaslAuthenticationFailed.into())
        .error_message(Some(format!(
            "Authentication failed: invalid credentials with SASL mechanism {mechanism}"
        )))
        .auth_bytes(Bytes::from_static(b""))
        .session_lifetime_ms(Some(0))
}

/// The answer to a SaslAuthenticate without an exchange in progress.
fn illegal_state() -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .error_code(ErrorCode::IllegalSaslState.into())
        .error_message(Some(
            "SaslAuthenticate without a SASL exchange in progress".into(),
        ))
        .auth_bytes(Bytes::from_static(b""))
        .session_lifetime_ms(Some(0))
}

/// The `e=` attribute of a SCRAM server-final message, if `message` is one.
fn server_error(message: &[u8]) -> Option<&str> {
    std::str::from_utf8(message)
        .ok()?
        .split(',')
        .find_map(|attribute| attribute.strip_prefix("e="))
}
