// weir patch (new file): close a connection once its SASL exchange has failed; serve plaintext
// and TLS connections alike.
//
// Licensed under the Apache License, Version 2.0 (the "License"); see the crate's LICENSE.

//! The connection layer in front of a broker's services: it gives each connection a
//! [`LoginFailure`] (set by the SASL services when an exchange fails) and hands the services a
//! stream that reads as ended once it is set. So the failure is answered (the answer is written
//! before the next read) and the connection is then closed: nothing more is read from it, let
//! alone served. It also puts the [`TcpContext`] into the request context, as `TcpContextLayer`
//! does. A connection is plaintext or TLS ([`Connection`]); the services cannot tell.

use std::{
    fmt::{self, Debug},
    io,
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use rama::{Context, Layer, Service};
use tansu_auth::LoginFailure;
use tansu_service::TcpContext;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::server::TlsStream;

/// An accepted connection: plaintext, or TLS after a completed handshake.
#[derive(Debug)]
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A [`Layer`] making [`LoginGateService`]s.
#[derive(Clone, Debug, Default)]
pub struct LoginGateLayer {
    state: TcpContext,
}

impl LoginGateLayer {
    pub fn new(state: TcpContext) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for LoginGateLayer {
    type Service = LoginGateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LoginGateService {
            inner,
            state: self.state.clone(),
        }
    }
}

/// Serves one connection through `inner` with a fresh [`LoginFailure`] and a [`GatedStream`].
#[derive(Clone)]
pub struct LoginGateService<S> {
    inner: S,
    state: TcpContext,
}

impl<S> Debug for LoginGateService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(LoginGateService)).finish()
    }
}

impl<State, S> Service<State, Connection> for LoginGateService<S>
where
    S: Service<TcpContext, GatedStream>,
    State: Clone + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;

    async fn serve(
        &self,
        ctx: Context<State>,
        stream: Connection,
    ) -> Result<Self::Response, Self::Error> {
        let (mut ctx, _) = ctx.swap_state(self.state.clone());
        let failure = LoginFailure::default();
        _ = ctx.insert(failure.clone());
        self.inner.serve(ctx, GatedStream { stream, failure }).await
    }
}

/// A connection's stream that reads as ended once the connection's login has failed.
#[derive(Debug)]
pub struct GatedStream {
    stream: Connection,
    failure: LoginFailure,
}

impl AsyncRead for GatedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.failure.is_set() {
            // end of stream: the reader stops and the connection is dropped (closed)
            return Poll::Ready(Ok(()));
        }
        match &mut self.stream {
            Connection::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for GatedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.stream {
            Connection::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Connection::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Connection::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
