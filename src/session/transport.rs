//! The byte stream under a connection's WebSocket: the accepted TCP socket itself when
//! [`Server::serve`](crate::Server::serve) answered the opening handshake, or hyper's upgraded
//! connection when an axum handler did ([`Server::upgrade`](crate::Server::upgrade)).

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::either::Either;

/// A connection's byte stream: `Left` is the socket as accepted (nothing between the WebSocket and
/// the kernel), `Right` hyper's upgraded connection (its own buffered bytes first, then the
/// socket). `Either` forwards every read and write to the side it holds.
pub(crate) type Transport = Either<TcpStream, TokioIo<hyper::upgrade::Upgraded>>;
