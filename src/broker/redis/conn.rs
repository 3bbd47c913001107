//! The subscriber's pub/sub connection. Over TCP and Unix sockets it is the project's own:
//! commands go out as RESP2 arrays and replies are read through [`resp::Decoder`] in place, in a
//! buffer that holds at most one reply (a payload over the envelope limit is skipped as it
//! arrives, not queued). A subscription's confirmation then costs a few hundred instructions,
//! where the `redis` crate's general reply parser took ~7,000 under callgrind, one for every
//! connection's `SUBSCRIBE` and `UNSUBSCRIBE` in interest mode (redis-rs#2184). TLS connections
//! (`rediss://`, with a TLS feature of the `redis` crate) use the crate's pub/sub connection.

use std::time::Duration;

use futures_util::StreamExt;
use redis::{
    ConnectionAddr, RedisWrite, ToRedisArgs,
    aio::{PubSubSink, PubSubStream},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    time::timeout,
};

use super::Node;
use crate::protocol::resp::{self, Decoded, Reply};

/// What a read asks the socket for at least.
const READ_CHUNK: usize = 16 * 1024;

/// A read or write buffer left larger than this by a burst is given back once empty.
const RETAINED_BUFFER: usize = 256 * 1024;

/// A subscription command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Command {
    Subscribe,
    Unsubscribe,
    PatternSubscribe,
}

impl Command {
    fn name(self) -> &'static [u8] {
        match self {
            Self::Subscribe => b"SUBSCRIBE",
            Self::Unsubscribe => b"UNSUBSCRIBE",
            Self::PatternSubscribe => b"PSUBSCRIBE",
        }
    }
}

/// What arrives on a subscribed connection, for the subscriber.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Event<'a> {
    /// A message on a channel or through a pattern.
    Message {
        channel: &'a [u8],
        payload: &'a [u8],
    },
    /// A message too long for the envelope limit, skipped unread.
    TooLong { channel: Option<&'a [u8]> },
    /// One channel's or pattern's subscription confirmed (own connections only: the crate's
    /// commands return once confirmed).
    Confirmed,
    /// The reply to a `PING` sent with [`Sink::ping`] (own connections only).
    Pong,
}

/// The writing half of a subscriber connection.
pub(super) enum Sink {
    Own(OwnSink),
    Crate(PubSubSink),
}

/// The reading half of a subscriber connection.
pub(super) enum Stream {
    Own(OwnStream),
    Crate {
        stream: PubSubStream,
        /// The message [`Stream::next`] last returned, which its event borrows.
        last: Option<redis::Msg>,
    },
}

/// Names as the arguments of one command, written straight from the caller's strings.
struct Names<'a, T>(&'a [T]);

impl<T: AsRef<str>> ToRedisArgs for Names<'_, T> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        for name in self.0 {
            out.write_arg(name.as_ref().as_bytes());
        }
    }

    fn num_of_args(&self) -> usize {
        self.0.len()
    }
}

/// Opens a pub/sub connection to `node`: the project's own over TCP and Unix sockets (after
/// `AUTH` when the URL carries a password), the crate's otherwise. Replies longer than
/// `max_bulk` bytes are skipped (own connections; see [`resp::Decoder::new`]).
pub(super) async fn open(
    node: &Node,
    max_bulk: usize,
    limit: Duration,
) -> Result<(Sink, Stream), String> {
    let connected = timeout(limit, async {
        match node.info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = stream.set_nodelay(true);
                let (read, write) = stream.into_split();
                own(Box::new(read), Box::new(write), node, max_bulk).await
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| e.to_string())?;
                let (read, write) = stream.into_split();
                own(Box::new(read), Box::new(write), node, max_bulk).await
            }
            _ => {
                let client = node.client()?;
                let (sink, stream) = client
                    .get_async_pubsub()
                    .await
                    .map_err(|e| e.to_string())?
                    .split();
                Ok((Sink::Crate(sink), Stream::Crate { stream, last: None }))
            }
        }
    })
    .await;
    connected.unwrap_or_else(|_| Err(format!("connect timed out after {limit:?}")))
}

/// Authenticates an own connection when the node's URL has a password.
async fn own(
    read: Box<dyn AsyncRead + Send + Unpin>,
    write: Box<dyn AsyncWrite + Send + Unpin>,
    node: &Node,
    max_bulk: usize,
) -> Result<(Sink, Stream), String> {
    let mut sink = OwnSink {
        io: write,
        out: Vec::new(),
    };
    let mut stream = OwnStream {
        io: read,
        buf: Vec::new(),
        start: 0,
        decoder: resp::Decoder::new(max_bulk),
    };
    let settings = node.info.redis_settings();
    if let Some(password) = settings.password() {
        // SECURITY: the password goes to the socket only, never into a log or an error.
        let mut args = Vec::with_capacity(2);
        if let Some(username) = settings.username() {
            args.push(username.as_bytes());
        }
        args.push(password.as_bytes());
        sink.write(b"AUTH", args.into_iter()).await?;
        match stream.reply().await? {
            Some(Reply::Status(_)) => {}
            Some(Reply::Error(text)) => {
                return Err(format!("AUTH refused: {}", String::from_utf8_lossy(text)));
            }
            Some(_) => return Err("unexpected reply to AUTH".into()),
            None => return Err("connection closed".into()),
        }
    }
    Ok((Sink::Own(sink), Stream::Own(stream)))
}

impl Sink {
    /// Sends `command` for `names` (at least one). Returns how many confirmations will arrive
    /// on the stream for it: one per name on an own connection, none on the crate's, whose
    /// command returns once Redis confirmed it.
    pub(super) async fn command<T: AsRef<str>>(
        &mut self,
        command: Command,
        names: &[T],
    ) -> Result<usize, String> {
        match self {
            Self::Own(sink) => {
                let args = names.iter().map(|n| n.as_ref().as_bytes());
                sink.write(command.name(), args).await?;
                Ok(names.len())
            }
            Self::Crate(sink) => {
                let names = Names(names);
                let done = match command {
                    Command::Subscribe => sink.subscribe(names).await,
                    Command::Unsubscribe => sink.unsubscribe(names).await,
                    Command::PatternSubscribe => sink.psubscribe(names).await,
                };
                done.map(|()| 0).map_err(|e| e.to_string())
            }
        }
    }

    /// Sends a `PING`. An own connection's reply arrives on the stream as [`Event::Pong`] and
    /// this returns `false`; the crate's returns `true` once it answered.
    pub(super) async fn ping(&mut self) -> Result<bool, String> {
        match self {
            Self::Own(sink) => sink
                .write(b"PING", std::iter::empty())
                .await
                .map(|()| false),
            Self::Crate(sink) => sink
                .ping::<redis::Value>()
                .await
                .map(|_| true)
                .map_err(|e| e.to_string()),
        }
    }
}

impl Stream {
    /// The next event; `Ok(None)` once the connection closed.
    pub(super) async fn next(&mut self) -> Result<Option<Event<'_>>, String> {
        match self {
            Self::Own(stream) => {
                let Some(reply) = stream.reply().await? else {
                    return Ok(None);
                };
                match reply {
                    Reply::Message { channel, payload }
                    | Reply::PatternMessage {
                        channel, payload, ..
                    } => Ok(Some(Event::Message { channel, payload })),
                    Reply::TooLong { channel } => Ok(Some(Event::TooLong { channel })),
                    Reply::Confirmed { .. } => Ok(Some(Event::Confirmed)),
                    Reply::Pong => Ok(Some(Event::Pong)),
                    Reply::Error(text) => Err(format!(
                        "redis replied with an error: {}",
                        String::from_utf8_lossy(text)
                    )),
                    Reply::Status(_) => Err("unexpected status reply from redis".into()),
                }
            }
            Self::Crate { stream, last } => {
                let Some(msg) = stream.next().await else {
                    return Ok(None);
                };
                let msg = last.insert(msg);
                Ok(Some(Event::Message {
                    channel: msg.get_channel_name().as_bytes(),
                    payload: msg.get_payload_bytes(),
                }))
            }
        }
    }
}

/// The writing half of an own connection.
pub(super) struct OwnSink {
    io: Box<dyn AsyncWrite + Send + Unpin>,
    /// The command being written (kept for the next one).
    out: Vec<u8>,
}

impl OwnSink {
    async fn write<'a>(
        &mut self,
        command: &'a [u8],
        args: impl ExactSizeIterator<Item = &'a [u8]>,
    ) -> Result<(), String> {
        self.out.clear();
        resp::encode_command(&mut self.out, command, args);
        let written = self.io.write_all(&self.out).await;
        if self.out.capacity() > RETAINED_BUFFER {
            self.out = Vec::new();
        }
        written.map_err(|e| e.to_string())
    }
}

/// The reading half of an own connection: replies are decoded where they landed.
pub(super) struct OwnStream {
    io: Box<dyn AsyncRead + Send + Unpin>,
    buf: Vec<u8>,
    /// Where the first byte not yet consumed is in `buf`.
    start: usize,
    decoder: resp::Decoder,
}

impl OwnStream {
    /// The next reply, reading as much as it takes; `Ok(None)` once the connection closed.
    async fn reply(&mut self) -> Result<Option<Reply<'_>>, String> {
        loop {
            let (decoded, skipped) = self
                .decoder
                .decode(&self.buf[self.start..])
                .map_err(|e| e.to_string())?;
            // What a skipped long message took is gone for good.
            self.start += skipped;
            if let Decoded::Reply(located, used) = decoded {
                let at = self.start;
                self.start += used;
                return Ok(Some(located.reply(&self.buf[at..])));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Reads more bytes behind those not yet consumed; `false` at the end of the stream.
    async fn fill(&mut self) -> Result<bool, String> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > RETAINED_BUFFER {
                self.buf = Vec::new();
            }
        } else if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(READ_CHUNK);
        let n = self
            .io
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| e.to_string())?;
        Ok(n > 0)
    }
}
