//! The byte stream under a connection's WebSocket codec: the accepted TCP socket itself when
//! [`Server::serve`](crate::Server::serve) answered the opening handshake, or hyper's upgraded
//! connection when an axum handler did ([`Server::upgrade`](crate::Server::upgrade)).

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

/// A connection's byte stream. Both kinds are `Unpin`, so every call is a plain forward.
pub(crate) enum Transport {
    /// The socket as accepted: nothing between the codec and the kernel.
    Tcp(TcpStream),
    /// hyper's upgraded connection (its own buffered bytes first, then the socket).
    Upgraded(TokioIo<hyper::upgrade::Upgraded>),
}

macro_rules! forward {
    ($self:ident, $io:ident => $call:expr) => {
        match $self.get_mut() {
            Transport::Tcp($io) => $call,
            Transport::Upgraded($io) => $call,
        }
    };
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        forward!(self, io => Pin::new(io).poll_read(cx, buf))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        forward!(self, io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        forward!(self, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Tcp(io) => io.is_write_vectored(),
            Transport::Upgraded(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, io => Pin::new(io).poll_shutdown(cx))
    }
}
