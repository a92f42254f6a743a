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

use crate::{Authentication, Error, LoginFailure, Stage};
use rama::{Context, Service};
use rsasl::prelude::Mechname;
use tansu_sans_io::{ApiKey, ErrorCode, SaslHandshakeRequest, SaslHandshakeResponse};
use tracing::{debug, instrument};

#[derive(Clone, Copy, Debug, Default, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct SaslHandshakeService;

impl ApiKey for SaslHandshakeService {
    const KEY: i16 = SaslHandshakeRequest::KEY;
}

impl<S> Service<S, SaslHandshakeRequest> for SaslHandshakeService
where
    S: Send + Sync + 'static,
{
    type Response = SaslHandshakeResponse;
    type Error = Error;

    #[instrument(skip(self, ctx), ret)]
    async fn serve(
        &self,
        ctx: Context<S>,
        req: SaslHandshakeRequest,
    ) -> Result<Self::Response, Self::Error> {
        // weir patch: a handshake that starts no exchange (an unknown or unavailable mechanism,
        // a second handshake on a connection, one after a failed exchange) ends the connection
        // once answered, as a Kafka broker does; the stage it leaves is `Failed`.
        let failure = ctx.get::<LoginFailure>().cloned();
        let unsupported = move |mechanism: String| {
            if let Some(failure) = failure.as_ref() {
                failure.set()
            }
            SaslHandshakeResponse::default()
                .error_code(ErrorCode::UnsupportedSaslMechanism.into())
                .mechanisms(Some([mechanism].into()))
        };

        let Some(authentication) = ctx.get::<Authentication>().cloned() else {
            return Ok(unsupported(req.mechanism));
        };

        authentication
            .stage
            .lock()
            .map_err(Into::into)
            .and_then(|mut guard| {
                let Some(Stage::Server(server)) = guard.replace(Stage::Failed) else {
                    return Ok(unsupported(req.mechanism));
                };
                let Ok(mechanism) = Mechname::parse(req.mechanism.as_bytes()) else {
                    return Ok(unsupported(req.mechanism));
                };

                debug!(available = ?server.get_available().into_iter().map(|mechanism|mechanism.mechanism.as_str()).collect::<Vec<_>>());

                match server.start_suggested(mechanism) {
                    Ok(session) => {
                        let mechanisms = [session.get_mechname().to_string()];
                        _ = guard.replace(Stage::Session(session));
                        Ok(SaslHandshakeResponse::default()
                            .error_code(ErrorCode::None.into())
                            .mechanisms(Some(mechanisms.into())))
                    }
                    Err(err) => {
                        debug!(?err, ?mechanism);
                        Ok(unsupported(req.mechanism))
                    }
                }
            })
    }
}
