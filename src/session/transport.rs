//! The byte stream under a connection's WebSocket: the accepted TCP socket itself when
//! [`Server::serve`](crate::Server::serve) answered the opening handshake, or hyper's upgraded
//! connection when an axum handler did ([`Server::upgrade`](crate::Server::upgrade)).
//!
//! An accepted socket is a [`Line`], shared by the connection's task and the fan-out: a
//! message to a client whose task has nothing queued is written by the fan-out itself
//! ([`Outbox::write_direct`](super::Outbox::write_direct)), as uWebSockets writes inside the
//! loop that publishes, instead of waking the task to write it. Two writers on one stream stay
//! frame-whole because every write through the line is all or nothing for the caller: what
//! the kernel does not take at once is kept in the line (`stranded`) and written before
//! anything else, by whichever writer comes next.

use std::{
    io::{self, Read as _},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, ready},
};

use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, Interest, ReadBuf},
    net::TcpStream,
};
use tokio_util::either::Either;

/// A connection's byte stream: `Left` is the socket as accepted (nothing between the WebSocket and
/// the kernel), `Right` hyper's upgraded connection (its own buffered bytes first, then the
/// socket). `Either` forwards every read and write to the side it holds.
pub(crate) type Transport = Either<LineIo, TokioIo<hyper::upgrade::Upgraded>>;

/// A stranded tail larger than this is not kept once it is written.
const RETAINED_STRANDED: usize = 64 * 1024;

/// An accepted TCP socket that the connection's task and the fan-out both write to.
pub(crate) struct Line {
    stream: TcpStream,
    /// The tail of a write the kernel did not take: whole frames' ends, written before any
    /// other bytes. Locked around every write, so writes from two threads never interleave.
    stranded: Mutex<Vec<u8>>,
    /// Whether `stranded` holds bytes (read without the lock).
    has_stranded: AtomicBool,
}

/// What [`Line::try_write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrote {
    /// The kernel took every byte.
    All,
    /// The bytes are taken, part of them kept in the line until the socket can take them.
    Stranded,
    /// Nothing was written: an earlier tail is still waiting.
    Blocked,
}

impl Line {
    /// Wraps an accepted socket.
    pub(crate) fn new(stream: TcpStream) -> Arc<Self> {
        Arc::new(Self {
            stream,
            stranded: Mutex::new(Vec::new()),
            has_stranded: AtomicBool::new(false),
        })
    }

    /// Whether bytes are waiting in the line for the socket.
    pub(crate) fn has_stranded(&self) -> bool {
        self.has_stranded.load(Ordering::Acquire)
    }

    /// Writes `bytes` (whole frames) without waiting: taken whole by the kernel, taken with a
    /// tail kept in the line, or, while an earlier tail still waits, not at all.
    pub(crate) fn try_write(&self, bytes: &[u8]) -> io::Result<Wrote> {
        let mut stranded = self.lock();
        if !self.flush_locked(&mut stranded)? {
            return Ok(Wrote::Blocked);
        }
        self.write_locked(&mut stranded, bytes)
    }

    /// [`Line::try_write`] for the task: `Pending` (the socket's write readiness registered)
    /// while an earlier tail waits, else every byte counted as written.
    fn poll_write(&self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            match self.try_write(bytes)? {
                Wrote::All | Wrote::Stranded => return Poll::Ready(Ok(bytes.len())),
                Wrote::Blocked => ready!(self.stream.poll_write_ready(cx))?,
            }
        }
    }

    /// Writes the stranded tail; `Pending` (write readiness registered) until it is all out.
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.flush_locked(&mut self.lock())? {
                return Poll::Ready(Ok(()));
            }
            ready!(self.stream.poll_write_ready(cx))?;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A panic while the lock was held cannot leave the bytes torn: take them as they are.
        self.stranded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One `send` that never waits: the bytes the kernel took, 0 when the socket is full.
    fn send(&self, bytes: &[u8]) -> io::Result<usize> {
        match self.stream.try_write(bytes) {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes what is stranded; true once nothing is.
    fn flush_locked(&self, stranded: &mut Vec<u8>) -> io::Result<bool> {
        if stranded.is_empty() {
            return Ok(true);
        }
        let n = self.send(stranded)?;
        if n < stranded.len() {
            stranded.drain(..n);
            return Ok(false);
        }
        if stranded.capacity() > RETAINED_STRANDED {
            *stranded = Vec::new();
        } else {
            stranded.clear();
        }
        self.has_stranded.store(false, Ordering::Release);
        Ok(true)
    }

    /// Writes `bytes` with nothing stranded; what the kernel does not take is stranded.
    fn write_locked(&self, stranded: &mut Vec<u8>, bytes: &[u8]) -> io::Result<Wrote> {
        if bytes.is_empty() {
            return Ok(Wrote::All);
        }
        let n = self.send(bytes)?;
        if n == bytes.len() {
            return Ok(Wrote::All);
        }
        stranded.extend_from_slice(&bytes[n..]);
        self.has_stranded.store(true, Ordering::Release);
        Ok(Wrote::Stranded)
    }
}

/// The task's handle on a [`Line`]: reads as the socket does, writes through the line.
pub(crate) struct LineIo(pub(crate) Arc<Line>);

impl AsyncRead for LineIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = &self.0.stream;
        loop {
            ready!(stream.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let len = unfilled.len();
            let mut read = 0;
            // A read shorter than the buffer emptied the socket (epoll reports the next data
            // as a new event). Told to `try_io` as `WouldBlock`, it clears the readiness seen
            // before the read, as tokio's own `TcpStream::poll_read` does: the next read
            // waits for that event instead of spending a `recv` to learn the socket is empty.
            let result = stream.try_io(Interest::READABLE, || {
                read = (&*socket2::SockRef::from(stream)).read(unfilled)?;
                if read > 0 && read < len {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(read)
                }
            });
            match result {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Poll::Ready(Err(e)),
                // Not ready, or the socket was empty after all: wait for the next event.
                Err(_) if read == 0 => {}
                // The bytes read (none at end of stream), also when the read was short.
                _ => {
                    buf.advance(read);
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl AsyncWrite for LineIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }

    /// Writes the stranded tail, then ends the sending side (a FIN).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.0.poll_flush(cx))?;
        Poll::Ready(socket2::SockRef::from(&self.0.stream).shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::TcpListener,
    };

    use super::*;

    async fn pair() -> (Arc<Line>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (
            Line::new(accepted.expect("accept").0),
            client.expect("connect"),
        )
    }

    /// Numbered 1 KiB blocks, so the reader can tell a torn or reordered write.
    fn block(n: u32) -> Vec<u8> {
        let mut b = vec![(n % 251) as u8; 1024];
        b[..4].copy_from_slice(&n.to_be_bytes());
        b
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_from_two_threads_arrive_whole_and_in_each_writers_order() {
        let (line, mut client) = pair().await;
        // The fan-out's side: blocks written without waiting, retried while a tail waits.
        let direct = {
            let line = line.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while n < 4000 {
                    match line.try_write(&block(2 * n)).expect("write") {
                        Wrote::Blocked => std::thread::yield_now(),
                        Wrote::All | Wrote::Stranded => n += 1,
                    }
                }
            })
        };
        // The task's side, through the AsyncWrite the socket uses.
        let task = {
            let mut io = LineIo(line.clone());
            tokio::spawn(async move {
                for n in 0..4000 {
                    io.write_all(&block(2 * n + 1)).await.expect("write");
                }
                io.flush().await.expect("flush");
            })
        };
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 8000 * 1024];
            client.read_exact(&mut got).await.map(|_| got)
        });
        tokio::task::spawn_blocking(move || direct.join())
            .await
            .expect("join")
            .expect("thread");
        task.await.expect("task");
        // The thread's last tail, if the kernel left one, goes out with a flush.
        LineIo(line.clone()).flush().await.expect("flush");
        assert!(!line.has_stranded());
        let got = tokio::time::timeout(Duration::from_secs(20), reader)
            .await
            .expect("in time")
            .expect("task")
            .expect("read");
        let (mut next_even, mut next_odd) = (0, 1);
        for chunk in got.chunks(1024) {
            let n = u32::from_be_bytes(chunk[..4].try_into().expect("4 bytes"));
            assert_eq!(chunk, block(n), "block {n} arrived whole");
            let next = if n % 2 == 0 {
                &mut next_even
            } else {
                &mut next_odd
            };
            assert_eq!(n, *next, "each writer's blocks in its order");
            *next += 2;
        }
    }

    #[tokio::test]
    async fn a_stranded_tail_blocks_the_next_write_until_the_peer_reads() {
        let (line, mut client) = pair().await;
        // Fill the socket: the last write strands a tail.
        let mut written = 0u32;
        while line.try_write(&block(written)).expect("write") == Wrote::All {
            written += 1;
        }
        written += 1;
        assert!(line.has_stranded());
        assert_eq!(
            line.try_write(&block(written)).expect("write"),
            Wrote::Blocked
        );
        // Shutting down writes the tail first, once the peer reads.
        let shutdown = tokio::spawn(async move { LineIo(line).shutdown().await });
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut got))
            .await
            .expect("in time")
            .expect("read");
        shutdown.await.expect("task").expect("shutdown");
        assert_eq!(got.len(), written as usize * 1024);
        for (n, chunk) in got.chunks(1024).enumerate() {
            assert_eq!(chunk, block(n as u32));
        }
    }

    /// A short read (the socket emptied) clears the read readiness, so the next read waits
    /// for epoll instead of trying a `recv`; a read that fills the buffer keeps it, and what
    /// is left is read without a new event.
    #[tokio::test]
    async fn a_short_read_clears_readiness_and_a_full_one_keeps_it() {
        let (line, mut client) = pair().await;
        let mut io = LineIo(line.clone());
        let mut buf = [0u8; 1024];
        client.write_all(b"hello").await.expect("write");
        let n = tokio::time::timeout(Duration::from_secs(5), io.read(&mut buf))
            .await
            .expect("read in time")
            .expect("read");
        assert_eq!(&buf[..n], b"hello");
        let mut tried = false;
        let probe = line.stream.try_io(Interest::READABLE, || {
            tried = true;
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
        assert!(probe.is_err());
        assert!(!tried, "the readiness outlived a short read");
        // New data is a new event: read, whole.
        client.write_all(&[7u8; 1500]).await.expect("write");
        let mut got = Vec::new();
        while got.len() < 1500 {
            let n = tokio::time::timeout(Duration::from_secs(5), io.read(&mut buf))
                .await
                .expect("read in time")
                .expect("read");
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, [7u8; 1500]);
        // EOF is still seen.
        drop(client);
        let n = tokio::time::timeout(Duration::from_secs(5), io.read(&mut buf))
            .await
            .expect("read in time")
            .expect("read");
        assert_eq!(n, 0);
    }
}
