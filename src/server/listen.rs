//! [`Server::serve`]: the accept loop. A WebSocket opening handshake for the server's path is
//! answered here, on the accepted socket, and the session runs in the connection's own task
//! with nothing between the WebSocket reader and the socket. Every other request, and every
//! handshake this path declines, goes to the application's axum [`Router`] over hyper, the
//! bytes already read included, so it is answered exactly as `axum::serve` would answer it
//! (the handshake's refusals by [`Server::upgrade`]).

use std::{
    future::{Future, IntoFuture},
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, http::header};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
};
use tungstenite::handshake::derive_accept_key;

use super::{
    Server, Shared,
    upgrade::{self, Headers as _},
};
use crate::session::{self, Line, LineIo, Socket, Transport};

/// What the first read of a request head reserves: an upgrade from a browser is a few hundred
/// bytes (more with cookies).
const HEAD_BUFFER: usize = 1024;

/// The largest request head this path parses; a larger one goes to hyper, whose own limit
/// applies.
const MAX_HEAD: usize = 16 * 1024;

/// Headers parsed in place; a request with more goes to hyper.
const MAX_HEADERS: usize = 32;

/// How long [`Server::serve`] waits after a failed `accept` that is not about one connection
/// (out of file descriptors, say) before accepting again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// The future of [`Server::serve`]: await it to run the listener.
#[must_use = "a `Serve` does nothing until it is awaited"]
pub struct Serve {
    server: Server,
    listener: TcpListener,
    app: Router,
    signal: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl Serve {
    /// Stops accepting when `signal` completes, then tells the HTTP connections in progress
    /// to finish their request and close, and returns once they have. WebSocket sessions are
    /// not waited for: close them with [`Server::shutdown`] (which sends 1001 to each).
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.signal = Some(Box::pin(signal));
        self
    }
}

impl IntoFuture for Serve {
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            // The accept loop runs on a worker thread wherever this future is awaited (on a
            // `block_on` thread, say), so each connection's task starts in that worker's own
            // queue instead of being handed to another thread and waking it.
            let mut task = AbortOnDrop(tokio::spawn(self.run()));
            match (&mut task.0).await {
                Ok(served) => served,
                Err(e) => Err(io::Error::other(e)),
            }
        })
    }
}

/// Stops the accept loop when the future awaiting it is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<io::Result<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What every connection's task shares for handing requests to the application.
struct Http {
    app: Router,
    /// Changes when the listener stops: HTTP connections finish their request and close.
    stop: watch::Receiver<()>,
    /// Held by every HTTP connection (and by this value): once all are dropped, the graceful
    /// shutdown is complete.
    live: mpsc::Sender<()>,
}

impl Serve {
    pub(super) fn new(server: Server, listener: TcpListener, app: Router) -> Self {
        Self {
            server,
            listener,
            app,
            signal: None,
        }
    }

    async fn run(self) -> io::Result<()> {
        let Serve {
            server,
            listener,
            app,
            signal,
        } = self;
        let mut signal = signal.unwrap_or_else(|| Box::pin(std::future::pending()));
        let (stop_tx, stop) = watch::channel(());
        let (live, mut all_done) = mpsc::channel::<()>(1);
        let http = Arc::new(Http { app, stop, live });
        let mut nodelay = NoDelay::new(&listener);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut signal => break,
            };
            match accepted {
                Ok((stream, _)) => {
                    nodelay.apply(&stream);
                    let handshake = handshake(server.clone(), http.clone(), stream);
                    tokio::spawn(connection(Box::pin(handshake)));
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of file descriptors, say: accepting again at once would spin.
                    tracing::error!(error = %e, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                        () = &mut signal => break,
                    }
                }
            }
        }
        drop(listener);
        let _ = stop_tx.send(());
        drop(http);
        // Every sender gone: the HTTP connections have ended.
        let _ = all_done.recv().await;
        Ok(())
    }
}

/// `TCP_NODELAY` for every accepted socket. Frames are written in batches already: what
/// remains for Nagle's algorithm is to hold a batch back behind the peer's delayed ACK.
///
/// The option is set on the listener, and sockets accepted from it inherit it where the
/// system copies it (Linux and the BSDs do): the first accepted socket tells whether it did,
/// and only if not is the option set on each socket, a system call per connection.
struct NoDelay {
    /// Whether the listener has the option.
    listener: bool,
    /// Whether accepted sockets come with it, once the first one told.
    inherited: Option<bool>,
}

impl NoDelay {
    fn new(listener: &TcpListener) -> Self {
        Self {
            listener: socket2::SockRef::from(listener)
                .set_tcp_nodelay(true)
                .is_ok(),
            inherited: None,
        }
    }

    /// Gives `stream` the option, unless it came with it.
    fn apply(&mut self, stream: &TcpStream) {
        let listener = self.listener;
        let inherited =
            *(self.inherited).get_or_insert_with(|| listener && stream.nodelay().unwrap_or(false));
        if !inherited {
            let _ = stream.set_nodelay(true);
        }
    }
}

/// Errors that concern one connection only: the listener goes on at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A connection that became a session: the server's state and the socket.
type Accepted = (Arc<Shared>, Box<Socket>);

/// One accepted connection's task: its request head decides whether it becomes a session here
/// or goes to hyper. The handshake comes boxed, so its buffers, hyper's connection state and
/// its arguments are not kept in the task of a session that lives on: the task holds one
/// pointer besides the session's own future.
async fn connection(handshake: Pin<Box<impl Future<Output = Option<Accepted>>>>) {
    if let Some((shared, socket)) = handshake.await {
        session::run(shared, socket).await;
    }
}

/// Reads the request head. An upgrade this path takes is answered with `101` and returned as
/// the session's socket; anything else is served to its end through hyper.
async fn handshake(server: Server, http: Arc<Http>, mut stream: TcpStream) -> Option<Accepted> {
    let mut head = Vec::with_capacity(HEAD_BUFFER);
    // SECURITY: a peer that does not finish its request head in the time it has to
    // authenticate is dropped, so idle sockets cannot pile up before the session's own
    // timers run.
    let limit = server.shared.options.auth_timeout;
    let found = tokio::time::timeout(limit, read_head(&server, &mut stream, &mut head)).await;
    let (accept, len) = match found {
        Ok(Ok(Some(Head::Upgrade { accept, len }))) => (accept, len),
        Ok(Ok(Some(Head::Http))) => {
            // Boxed: hyper's connection state would make up most of every handshake's future.
            Box::pin(serve_http(http, stream, head)).await;
            return None;
        }
        // Closed, failed, or too slow before a head arrived.
        Ok(Ok(None) | Err(_)) | Err(_) => return None,
    };
    drop(http);
    // What followed the head is the client's first frames (usually nothing: no allocation).
    let early = head.split_off(len);
    // The head's buffer takes the answer.
    head.clear();
    head.extend_from_slice(SWITCHING);
    head.extend_from_slice(accept.as_bytes());
    head.extend_from_slice(b"\r\n\r\n");
    if stream.write_all(&head).await.is_err() {
        return None;
    }
    drop(head);
    let socket = Socket::new(
        Transport::Left(LineIo(Line::new(stream))),
        early,
        server.socket_config(),
    );
    Some((server.shared, Box::new(socket)))
}

/// The `101` answer up to the accept value.
const SWITCHING: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: ";

/// What a connection's request head asks for.
#[derive(Debug, PartialEq)]
enum Head {
    /// A WebSocket upgrade for the server's path that the server takes: the accept value to
    /// answer with, and the head's length (any bytes after it are the client's first frames).
    Upgrade { accept: String, len: usize },
    /// Anything else, for hyper.
    Http,
}

/// Reads until the request head is complete and tells what it is; `None` if the peer closed
/// first.
async fn read_head(
    server: &Server,
    stream: &mut TcpStream,
    head: &mut Vec<u8>,
) -> io::Result<Option<Head>> {
    loop {
        if head.len() == head.capacity() {
            if head.len() >= MAX_HEAD {
                return Ok(Some(Head::Http));
            }
            head.reserve(head.len());
        }
        if stream.read_buf(head).await? == 0 {
            return Ok(None);
        }
        if let Some(found) = classify(server, head) {
            return Ok(Some(found));
        }
    }
}

/// What `bytes` hold: `None` while the head is incomplete.
fn classify(server: &Server, bytes: &[u8]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return None,
        // Malformed, or more headers than parsed here: hyper answers it.
        Err(_) => return Some(Head::Http),
    };
    let path = request.path.unwrap_or_default();
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    if path != server.path() {
        return Some(Head::Http);
    }
    let headers = &*request.headers;
    let Ok(key) = upgrade::check(
        request.method == Some("GET"),
        request.version == Some(1),
        headers,
    ) else {
        return Some(Head::Http);
    };
    if !server.admits(headers.first_value(&header::ORIGIN)) {
        return Some(Head::Http);
    }
    Some(Head::Upgrade {
        accept: derive_accept_key(key),
        len,
    })
}

/// Serves the connection through hyper with the application's router, replaying the bytes
/// already read, until it closes (or, after the listener stopped, its request is done).
async fn serve_http(http: Arc<Http>, stream: TcpStream, head: Vec<u8>) {
    let io = TokioIo::new(Replay {
        head,
        at: 0,
        stream,
    });
    let service = TowerToHyperService::new(http.app.clone());
    let mut stop = http.stop.clone();
    let _live = http.live.clone();
    drop(http);
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => {
            if let Err(e) = served {
                tracing::trace!(error = %e, "HTTP connection ended with an error");
            }
            return;
        }
        _ = stop.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// A socket whose first bytes were read already: they are read again first.
struct Replay {
    head: Vec<u8>,
    at: usize,
    stream: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.head.len() {
            let n = buf.remaining().min(this.head.len() - this.at);
            buf.put_slice(&this.head[this.at..this.at + n]);
            this.at += n;
            if this.at == this.head.len() {
                this.head = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handshake's future (boxed for every connection) holds the head's reading and the
    /// answer; serving plain HTTP is boxed apart.
    #[tokio::test]
    async fn the_handshake_future_stays_small() {
        fn size<F: Future>(_: &F) -> usize {
            size_of::<F>()
        }
        let server = Server::builder()
            .authenticate(|_| async { Ok(None) })
            .build()
            .await
            .expect("builds");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let stream = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (live, _all_done) = mpsc::channel(1);
        let (_stop_tx, stop) = watch::channel(());
        let http = Arc::new(Http {
            app: Router::new(),
            stop,
            live,
        });
        let handshake = size(&handshake(server, http, stream));
        assert!(
            handshake <= 512,
            "the handshake's future is {handshake} bytes"
        );
    }

    /// Accepted sockets get `TCP_NODELAY`: on this system (Linux) they inherit it from the
    /// listener, and after the first, nothing is set per socket. Where they would not, each
    /// gets it set.
    #[tokio::test]
    async fn accepted_sockets_have_nodelay_from_the_listener() {
        async fn accept(listener: &TcpListener, nodelay: &mut NoDelay) -> (TcpStream, TcpStream) {
            let (client, accepted) = tokio::join!(
                TcpStream::connect(listener.local_addr().expect("addr")),
                listener.accept()
            );
            let (stream, _) = accepted.expect("accept");
            nodelay.apply(&stream);
            (client.expect("connect"), stream)
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut nodelay = NoDelay::new(&listener);
        assert!(nodelay.listener);
        for _ in 0..3 {
            let (_client, stream) = accept(&listener, &mut nodelay).await;
            assert!(stream.nodelay().expect("getsockopt"));
            assert_eq!(nodelay.inherited, Some(true));
        }
        // A listener whose sockets do not come with it: each accepted socket gets it set.
        let mut nodelay = NoDelay::new(&listener);
        socket2::SockRef::from(&listener)
            .set_tcp_nodelay(false)
            .expect("setsockopt");
        for _ in 0..2 {
            let (_client, stream) = accept(&listener, &mut nodelay).await;
            assert!(stream.nodelay().expect("getsockopt"));
            assert_eq!(nodelay.inherited, Some(false));
        }
    }

    /// Every idle connection keeps its task: besides the session's own future (bounded in
    /// `session::task`), it holds only the boxed handshake's pointer and its result.
    #[test]
    fn the_connection_task_adds_one_pointer_to_the_session() {
        fn size<F: Future>(_: &F) -> usize {
            size_of::<F>()
        }
        let handshake = Box::pin(std::future::pending::<Option<Accepted>>());
        let task = size(&connection(handshake));
        let session = crate::session::run_future_size();
        assert!(
            task <= session + 32,
            "the connection task is {task} bytes, the session's {session}"
        );
    }
}
