//! A connection's WebSocket after the opening handshake: reads client frames through
//! [`Decoder`](crate::protocol::websocket::Decoder) and writes the control frames (pongs,
//! pings, the close frame) before any data. Data frames come pre-framed from the writer
//! (`wire`) and go to the stream as they are.
//!
//! Reads go through a buffer of the worker thread's: a connection keeps bytes of its own only
//! for a frame that has not arrived whole (usually none), so an idle connection holds no read
//! buffer. Reading is cancel safe: what was read is in the connection or already returned, so
//! the task may poll the read beside its other wakers and drop it when another fires.
//!
//! A connection the server closes lingers (see [`Socket::linger`]): its close frame is followed
//! by a FIN, and what the client still sends is read and dropped until it closes its side, so
//! the client reads the close frame instead of a reset.

use std::{
    cell::RefCell,
    future::poll_fn,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio_util::either::Either;

use super::{Transport, transport::Line};
use crate::protocol::websocket::{
    DecodeError, Decoded, Decoder, Header, Incoming,
    opcode::{CLOSE, PING, PONG},
};

thread_local! {
    /// Where a worker thread's connections read into: zeroed once, then reused by every read.
    static READ: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Queued control frames beyond this many bytes are a peer that pings without reading: its
/// further pings get no pong (RFC 6455 lets an endpoint answer only the latest).
const MAX_CONTROL: usize = 1024;

/// How long a connection the server closed waits for the client to close its side (see
/// [`Socket::linger`]). A well-behaved client answers the close frame at once.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// Why a read ended the connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The client's bytes broke the protocol or a limit.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The stream failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The sizes a socket works with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SocketConfig {
    /// The longest message (and frame) a client may send.
    pub(crate) max_payload: usize,
    /// Bytes asked of the stream per read.
    pub(crate) read_chunk: usize,
}

/// The server side of one WebSocket.
pub(crate) struct Socket {
    io: Transport,
    decoder: Decoder,
    /// Bytes read and not yet decoded: the start of a frame, or frames after the one returned.
    pending: Vec<u8>,
    /// Control frames waiting to be written, ahead of any data.
    control: Vec<u8>,
    read_chunk: usize,
    /// Nothing more is read: the stream ended, failed, broke the protocol, or closed.
    read_done: bool,
    /// The client's close frame arrived, with its code if it had one: ours echoes it.
    peer_close: Option<Option<u16>>,
    /// A close frame was queued: nothing else is written after it.
    close_sent: bool,
    /// The client is done: its close frame arrived, it closed its side, or the stream failed.
    /// (A client that broke the protocol is not: it may still be sending.)
    peer_done: bool,
}

impl Socket {
    /// A socket on `io`, whose first bytes (`early`, read with the request head) are the
    /// client's first frames.
    pub(crate) fn new(io: Transport, early: Vec<u8>, config: SocketConfig) -> Self {
        Self {
            io,
            decoder: Decoder::new(config.max_payload),
            pending: early,
            control: Vec::new(),
            read_chunk: config.read_chunk.max(1),
            read_done: false,
            peer_close: None,
            close_sent: false,
            peer_done: false,
        }
    }

    /// The next message or control frame from the client; `None` once the stream has ended
    /// (closed, failed or done with). A ping's pong is queued before the ping is returned.
    /// Cancel safe.
    pub(crate) async fn next(&mut self) -> Option<Result<Incoming, ReadError>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, ReadError>>> {
        if self.read_done {
            return Poll::Ready(None);
        }
        // A pong goes out as soon as it can; a full socket only keeps it queued.
        if let Poll::Ready(Err(e)) = self.poll_control(cx) {
            return self.fail(e.into());
        }
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            let (used, found) = self.decode(&pending);
            self.keep(pending, used);
            if let Some(found) = found {
                return self.found(found);
            }
        }
        loop {
            let read = self.poll_read_with(cx, |this, read| {
                if read.is_empty() {
                    return None;
                }
                Some(if this.pending.is_empty() {
                    // The usual case: whole frames, decoded where they were read.
                    let (used, found) = this.decode(read);
                    this.pending = read[used..].to_vec();
                    found
                } else {
                    let mut pending = std::mem::take(&mut this.pending);
                    pending.extend_from_slice(read);
                    let (used, found) = this.decode(&pending);
                    this.keep(pending, used);
                    found
                })
            });
            match ready!(read) {
                Err(e) => return self.fail(e.into()),
                // The peer closed its side.
                Ok(None) => {
                    self.read_done = true;
                    self.peer_done = true;
                    return Poll::Ready(None);
                }
                Ok(Some(Some(found))) => return self.found(found),
                Ok(Some(None)) => {}
            }
        }
    }

    /// Decodes frames from `input` until one completes something or the input runs out:
    /// how many bytes were used, and what was found.
    fn decode(&mut self, input: &[u8]) -> (usize, Option<Result<Incoming, DecodeError>>) {
        let mut used = 0;
        loop {
            match self.decoder.decode(&input[used..]) {
                Ok(Decoded::Incomplete) => return (used, None),
                Ok(Decoded::Frame(n, None)) => used += n,
                Ok(Decoded::Frame(n, Some(incoming))) => return (used + n, Some(Ok(incoming))),
                Err(e) => return (used, Some(Err(e))),
            }
        }
    }

    /// Keeps what `buf` holds past its first `used` bytes (none: no buffer at all).
    fn keep(&mut self, mut buf: Vec<u8>, used: usize) {
        buf.drain(..used);
        if buf.is_empty() {
            buf = Vec::new();
        }
        self.pending = buf;
    }

    /// Returns what a read found: a ping gets its pong queued, a close ends the reading.
    fn found(
        &mut self,
        found: Result<Incoming, DecodeError>,
    ) -> Poll<Option<Result<Incoming, ReadError>>> {
        match &found {
            Ok(Incoming::Ping(payload)) => {
                if !self.close_sent && self.control.len() < MAX_CONTROL {
                    push_control(&mut self.control, PONG, payload);
                }
            }
            Ok(Incoming::Close(code)) => {
                self.peer_close = Some(*code);
                self.read_done = true;
                self.peer_done = true;
                self.pending = Vec::new();
            }
            Ok(_) => {}
            Err(e) => return self.fail((*e).into()),
        }
        Poll::Ready(Some(found.map_err(ReadError::from)))
    }

    /// Ends the reading with `e`. A stream that failed is done; a client that broke the
    /// protocol may still be sending.
    fn fail(&mut self, e: ReadError) -> Poll<Option<Result<Incoming, ReadError>>> {
        self.read_done = true;
        self.peer_done = matches!(e, ReadError::Io(_));
        self.pending = Vec::new();
        Poll::Ready(Some(Err(e)))
    }

    /// Writes the queued control frames.
    fn poll_control(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.control.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.control))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.control.drain(..n);
        }
        if self.control.capacity() > MAX_CONTROL {
            self.control = Vec::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Writes the queued control frames, then as much of `bytes` (whole frames) as the stream
    /// takes.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_control(cx))?;
        Pin::new(&mut self.io).poll_write(cx, bytes)
    }

    /// Writes the queued control frames, then all of `bytes`.
    pub(crate) async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush_control().await?;
        self.io.write_all(bytes).await
    }

    /// Writes the queued control frames, then whatever the stream still holds (a tail the
    /// fan-out's direct write left in the line).
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| {
            ready!(self.poll_control(cx))?;
            Pin::new(&mut self.io).poll_flush(cx)
        })
        .await
    }

    /// The accepted socket the fan-out may write to as well; `None` for hyper's upgraded
    /// connections.
    pub(crate) fn line(&self) -> Option<&Arc<Line>> {
        match &self.io {
            Either::Left(io) => Some(&io.0),
            Either::Right(_) => None,
        }
    }

    /// Writes the queued control frames.
    pub(crate) async fn flush_control(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_control(cx)).await
    }

    /// Sends a ping (an empty one: the client's pong is all the server looks for).
    pub(crate) async fn ping(&mut self) -> io::Result<()> {
        if self.close_sent {
            return Err(io::ErrorKind::NotConnected.into());
        }
        push_control(&mut self.control, PING, &[]);
        self.flush_control().await
    }

    /// Sends the close frame: `code` and `reason`, or, when the client closed first, the echo
    /// of its code. Only the first call sends anything.
    pub(crate) async fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        if !self.close_sent {
            self.close_sent = true;
            match self.peer_close {
                Some(Some(theirs)) => push_control(&mut self.control, CLOSE, &theirs.to_be_bytes()),
                Some(None) => push_control(&mut self.control, CLOSE, &[]),
                None => {
                    let mut payload = [0; 125];
                    let reason = &reason.as_bytes()[..reason.len().min(123)];
                    payload[..2].copy_from_slice(&code.to_be_bytes());
                    payload[2..2 + reason.len()].copy_from_slice(reason);
                    push_control(&mut self.control, CLOSE, &payload[..2 + reason.len()]);
                }
            }
        }
        // Whole, not only handed to the line: the linger that follows shuts the socket.
        self.flush().await
    }

    /// After the server's close frame went out: ends the writing side (a FIN follows the close
    /// frame), then reads what the client still sends and drops it, until the client closes
    /// its side, the stream fails or `limit` passes. Closing a socket with unread bytes resets
    /// the connection, and a reset can reach the client before it has read the close frame
    /// (a client that sent a message over the size limit would see 1006 instead of 1009).
    ///
    /// Does nothing when the client is done already (its close frame, its FIN or a failure
    /// ended the reading) or when the close frame is still queued (the client does not read).
    /// Holds no buffer: the bytes go through the thread's read buffer.
    pub(crate) async fn linger(&mut self, limit: Duration) {
        let stranded = self.line().is_some_and(|line| line.has_stranded());
        if self.peer_done || !self.close_sent || !self.control.is_empty() || stranded {
            return;
        }
        self.pending = Vec::new();
        let _ = tokio::time::timeout(limit, async {
            self.io.shutdown().await?;
            while poll_fn(|cx| self.poll_discard(cx)).await? > 0 {}
            io::Result::Ok(())
        })
        .await;
        self.peer_done = true;
    }

    /// Reads into the thread's buffer and forgets it: how many bytes came (0: the stream ended).
    fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.poll_read_with(cx, |_, read| read.len())
    }

    /// Reads once into the thread's read buffer and gives `use_read` what came (nothing: the
    /// stream ended).
    fn poll_read_with<R>(
        &mut self,
        cx: &mut Context<'_>,
        use_read: impl FnOnce(&mut Self, &[u8]) -> R,
    ) -> Poll<io::Result<R>> {
        READ.with_borrow_mut(|scratch| {
            if scratch.len() < self.read_chunk {
                scratch.resize(self.read_chunk, 0);
            }
            let mut buf = ReadBuf::new(&mut scratch[..self.read_chunk]);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
            Poll::Ready(Ok(use_read(self, buf.filled())))
        })
    }
}

/// Appends an unmasked control frame (payload at most 125 bytes).
fn push_control(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    let payload = &payload[..payload.len().min(125)];
    out.extend_from_slice(Header::new(true, opcode, payload.len(), None).as_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use crate::session::transport::LineIo;
    use std::time::Duration;

    use tokio::{
        io::AsyncReadExt as _,
        net::{TcpListener, TcpStream},
    };

    use super::*;
    use crate::protocol::websocket::{client_frame, opcode::TEXT};

    async fn pair() -> (Socket, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let config = SocketConfig {
            max_payload: 1024,
            read_chunk: 16,
        };
        (
            Socket::new(
                Transport::Left(LineIo(Line::new(server))),
                Vec::new(),
                config,
            ),
            client,
        )
    }

    async fn next_text(socket: &mut Socket) -> String {
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
            Ok(Some(Ok(Incoming::Text(text)))) => text,
            other => panic!("{other:?}"),
        }
    }

    fn text(s: &str) -> Vec<u8> {
        client_frame(true, TEXT, s.as_bytes(), [1, 2, 3, 4])
    }

    /// Frames arriving together, and a frame arriving in pieces over reads shorter than it:
    /// each comes out whole, and once nothing is left over the connection keeps no buffer.
    #[tokio::test]
    async fn frames_come_out_whole_and_an_idle_socket_keeps_no_buffer() {
        let (mut socket, mut client) = pair().await;
        let long = "a frame longer than one read of sixteen bytes";
        let mut bytes = text("one");
        bytes.extend(text("two"));
        let third = text(long);
        bytes.extend_from_slice(&third[..5]);
        client.write_all(&bytes).await.expect("write");
        assert_eq!(next_text(&mut socket).await, "one");
        assert_eq!(next_text(&mut socket).await, "two");
        assert!(
            !socket.pending.is_empty(),
            "the third frame's start is kept"
        );
        client.write_all(&third[5..]).await.expect("write");
        assert_eq!(next_text(&mut socket).await, long);
        assert_eq!(socket.pending.capacity(), 0, "nothing kept once idle");
    }

    /// A peer that pings without reading cannot grow the queue of pongs: past `MAX_CONTROL`
    /// bytes its pings go unanswered (the latest ones are still read and counted as activity).
    #[tokio::test]
    async fn pongs_for_a_peer_that_does_not_read_are_bounded() {
        let (mut socket, _client) = pair().await;
        for _ in 0..1000 {
            let ping = socket.found(Ok(Incoming::Ping(vec![7; 125])));
            assert!(matches!(ping, Poll::Ready(Some(Ok(Incoming::Ping(_))))));
        }
        assert!(
            socket.control.len() <= MAX_CONTROL + 127,
            "{}",
            socket.control.len()
        );
        assert!(
            socket.control.len() >= MAX_CONTROL,
            "pongs are queued up to the bound"
        );
    }

    /// A ping is answered before anything else is written, and the close frame echoes the
    /// client's code; after it nothing is read.
    #[tokio::test]
    async fn pongs_go_first_and_the_close_echoes_the_code() {
        let (mut socket, mut client) = pair().await;
        let mut bytes = client_frame(true, PING, b"hey", [9, 9, 9, 9]);
        bytes.extend(client_frame(
            true,
            CLOSE,
            &4321u16.to_be_bytes(),
            [7, 7, 7, 7],
        ));
        client.write_all(&bytes).await.expect("write");
        assert!(matches!(socket.next().await, Some(Ok(Incoming::Ping(p))) if p == b"hey"));
        assert!(matches!(
            socket.next().await,
            Some(Ok(Incoming::Close(Some(4321))))
        ));
        assert!(
            socket.next().await.is_none(),
            "nothing is read after a close"
        );
        socket.write_all(b"").await.expect("write");
        socket.close(1000, "ignored").await.expect("close");
        socket.close(1001, "only once").await.expect("close");
        drop(socket);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("read");
        assert_eq!(
            got,
            [&[0x8A, 3][..], b"hey", &[0x88, 2], &4321u16.to_be_bytes()].concat()
        );
    }

    /// After the server's close: the client gets the close frame and then the end of the
    /// stream at once, while what it still sends is read and dropped until it closes.
    #[tokio::test]
    async fn a_lingering_close_drains_the_client_until_it_closes() {
        let (mut socket, mut client) = pair().await;
        socket.close(1009, "too big").await.expect("close");
        let linger = tokio::spawn(async move {
            socket.linger(Duration::from_secs(30)).await;
            socket
        });
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got))
            .await
            .expect("the stream ends at once")
            .expect("the stream ends cleanly");
        assert_eq!(&got[..4], &[0x88, 9, 0x03, 0xf1]);
        for _ in 0..64 {
            client
                .write_all(&[0; 4096])
                .await
                .expect("the server still reads");
        }
        assert!(!linger.is_finished());
        drop(client);
        let socket = tokio::time::timeout(Duration::from_secs(5), linger)
            .await
            .expect("lingering ends when the client closes")
            .expect("task");
        assert!(socket.peer_done && socket.pending.capacity() == 0);
    }

    /// A client that never closes its side is waited for no longer than the limit; one that
    /// closed first, or a close frame the client never read, is not waited for at all.
    #[tokio::test]
    async fn lingering_is_bounded_and_skipped_when_the_client_is_done() {
        let (mut socket, _silent) = pair().await;
        socket.close(1000, "").await.expect("close");
        let started = tokio::time::Instant::now();
        socket.linger(Duration::from_millis(200)).await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(5));

        let (mut socket, mut client) = pair().await;
        client
            .write_all(&client_frame(true, CLOSE, &[3, 232], [1, 2, 3, 4]))
            .await
            .expect("write");
        assert!(matches!(
            socket.next().await,
            Some(Ok(Incoming::Close(Some(1000))))
        ));
        socket.close(1000, "").await.expect("echo");
        let started = tokio::time::Instant::now();
        socket.linger(Duration::from_secs(30)).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the client closed first"
        );

        let (mut socket, _client) = pair().await;
        socket.close_sent = true;
        socket.control = vec![0x88, 0];
        let started = tokio::time::Instant::now();
        socket.linger(Duration::from_secs(30)).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the close frame is still queued"
        );
    }
}
