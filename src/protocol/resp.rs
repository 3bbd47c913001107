//! The part of RESP2 a Redis pub/sub connection speaks, without I/O: commands written as arrays
//! of bulk strings, and what a subscribed connection receives (messages, pattern messages,
//! subscription confirmations, `PING` replies, status and error lines). The Redis subscriber reads
//! its socket through [`Decoder`]; the fuzz target `resp_decode` feeds it anything.
//!
//! Everything from Redis is untrusted. Each length is checked from its header line before its
//! bytes are awaited: a bulk string longer than the decoder's limit is not buffered but skipped
//! as it arrives (with the rest of its reply), so a reader holds at most a few header lines,
//! the names, and one limit's worth of payload, whatever was published.

/// Longest header line (`*4`, `$123`, `:5`) a reply may use, without its CRLF.
const MAX_HEADER_LINE: usize = 24;

/// Longest status or error line (`+OK`, `-ERR …`), without its CRLF.
pub const MAX_STATUS_LINE: usize = 4096;

/// Most elements in a reply a subscribed connection receives (`pmessage` has four).
const MAX_ELEMENTS: usize = 4;

/// Longest bulk string RESP allows (Redis's `proto-max-bulk-len` cap, 512 MiB).
const MAX_BULK: u64 = 512 * 1024 * 1024;

/// The least a [`Decoder`] buffers of a bulk string, whatever its limit: reply kinds, channel
/// names and patterns always fit.
pub const MIN_BULK_LIMIT: usize = 1024;

/// Which subscription command a [`Reply::Confirmed`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// `SUBSCRIBE`.
    Subscribe,
    /// `UNSUBSCRIBE`.
    Unsubscribe,
    /// `PSUBSCRIBE`.
    PatternSubscribe,
    /// `PUNSUBSCRIBE`.
    PatternUnsubscribe,
}

/// One reply on a subscribed connection, borrowed from the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `message`: a payload published on a channel the connection subscribed to.
    Message {
        /// The channel.
        channel: &'a [u8],
        /// The payload.
        payload: &'a [u8],
    },
    /// `pmessage`: a payload published on a channel matching a subscribed pattern.
    PatternMessage {
        /// The subscribed pattern.
        pattern: &'a [u8],
        /// The channel it was published on.
        channel: &'a [u8],
        /// The payload.
        payload: &'a [u8],
    },
    /// A message whose payload (or a name before it) is longer than the decoder's limit: its
    /// bytes are skipped as they arrive, never buffered.
    TooLong {
        /// The channel, when it came within the limit before the long element.
        channel: Option<&'a [u8]>,
    },
    /// A subscription command's confirmation, one per channel or pattern it named.
    Confirmed {
        /// The command it confirms.
        kind: Confirmation,
        /// The channel or pattern (empty for an `UNSUBSCRIBE` that named none).
        name: &'a [u8],
        /// How many channels and patterns the connection holds after it.
        count: i64,
    },
    /// The reply to `PING`.
    Pong,
    /// A status line other than `PONG` (`+OK`, the reply to `AUTH`).
    Status(&'a [u8]),
    /// An error line (`-ERR …`, `-NOAUTH …`).
    Error(&'a [u8]),
}

/// Why the bytes from Redis cannot be read on: the connection must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    /// The bytes are not RESP (a bad type byte, number or line ending).
    #[error("malformed reply from redis")]
    Malformed,
    /// Well-formed RESP that a subscribed connection is never sent.
    #[error("unexpected reply from redis")]
    Unexpected,
}

/// What one call of [`Decoder::decode`] found at the front of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A reply, and how many bytes it took.
    Reply(Located, usize),
    /// More bytes are needed.
    Incomplete,
}

/// Where a decoded reply is in the bytes it was decoded from: [`Located::reply`] reads it.
///
/// It holds positions, not the bytes, so a reader can decode once, read more into its buffer
/// if it must, and still borrow the reply from the buffer afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    shape: Shape,
    /// Start and end of the reply's parts, by shape: channel and payload; pattern, channel and
    /// payload; the confirmed name; the channel of a long message; a status or error text.
    parts: [(usize, usize); 3],
}

/// Which reply a [`Located`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Message,
    PatternMessage,
    TooLong { channel: bool },
    Confirmed { kind: Confirmation, count: i64 },
    Pong,
    Status,
    Error,
}

impl Located {
    fn new(shape: Shape, parts: &[(usize, usize)]) -> Self {
        let mut all = [(0, 0); 3];
        all[..parts.len()].copy_from_slice(parts);
        Self { shape, parts: all }
    }

    /// The reply, read from `buf`: the bytes [`Decoder::decode`] was given, from the first
    /// one it did not skip.
    pub fn reply<'a>(&self, buf: &'a [u8]) -> Reply<'a> {
        let part = |i: usize| {
            let (start, end) = self.parts[i];
            buf.get(start..end).unwrap_or_default()
        };
        match self.shape {
            Shape::Message => Reply::Message {
                channel: part(0),
                payload: part(1),
            },
            Shape::PatternMessage => Reply::PatternMessage {
                pattern: part(0),
                channel: part(1),
                payload: part(2),
            },
            Shape::TooLong { channel } => Reply::TooLong {
                channel: channel.then(|| part(0)),
            },
            Shape::Confirmed { kind, count } => Reply::Confirmed {
                kind,
                name: part(0),
                count,
            },
            Shape::Pong => Reply::Pong,
            Shape::Status => Reply::Status(part(0)),
            Shape::Error => Reply::Error(part(0)),
        }
    }
}

/// Reads replies from the bytes of a subscribed connection, in order.
///
/// Feed it what the socket delivered, from the first byte not yet consumed: each
/// [`Decoder::decode`] returns where a reply is and its length (drop those bytes once it is
/// read), or [`Decoded::Incomplete`] (read more and call it again with the same bytes and the
/// new ones).
#[derive(Debug, Clone)]
pub struct Decoder {
    max_bulk: usize,
    skip: Skip,
}

/// The rest of a [`Reply::TooLong`] still to come: `bytes` to drop, then `elements` more bulk
/// strings (their headers not read yet) to drop whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Skip {
    bytes: u64,
    elements: usize,
}

/// One element of a reply array, as far as it was read: a bulk string's start and end.
#[derive(Debug, Clone, Copy)]
enum Element {
    Bulk(usize, usize),
    Null,
    Int(i64),
}

impl Decoder {
    /// A decoder that buffers bulk strings of at most `max_bulk` bytes (never less than
    /// [`MIN_BULK_LIMIT`]) and skips longer ones.
    pub fn new(max_bulk: usize) -> Self {
        Self {
            max_bulk: max_bulk.max(MIN_BULK_LIMIT),
            skip: Skip::default(),
        }
    }

    /// Whether the decoder is in the middle of skipping a [`Reply::TooLong`].
    pub fn is_skipping(&self) -> bool {
        self.skip != Skip::default()
    }

    /// Decodes the reply at the front of `buf` (see [`Decoder`]). While a long message is being
    /// skipped, the bytes it returns as consumed belong to it, and it returns no reply for
    /// them ([`Decoded::Incomplete`] once all of `buf` is dropped, then the next reply).
    ///
    /// # Errors
    /// [`RespError`] when the bytes cannot be read on; the decoder is then of no further use.
    pub fn decode(&mut self, buf: &[u8]) -> Result<(Decoded, usize), RespError> {
        let skipped = self.skip_from(buf)?;
        if self.is_skipping() {
            return Ok((Decoded::Incomplete, skipped));
        }
        let buf = &buf[skipped..];
        let text = |shape, (text, used): (&[u8], usize)| {
            let shape = if shape == Shape::Status && text == b"PONG" {
                Shape::Pong
            } else {
                shape
            };
            Decoded::Reply(Located::new(shape, &[(1, 1 + text.len())]), used)
        };
        let decoded = match buf.first() {
            None => Decoded::Incomplete,
            Some(b'+') => line(buf, 1, MAX_STATUS_LINE)?
                .map_or(Decoded::Incomplete, |l| text(Shape::Status, l)),
            Some(b'-') => line(buf, 1, MAX_STATUS_LINE)?
                .map_or(Decoded::Incomplete, |l| text(Shape::Error, l)),
            Some(b'*' | b'>') => self.array(buf)?,
            // Valid RESP, but never sent to a subscribed connection.
            Some(b':' | b'$') => return Err(RespError::Unexpected),
            Some(_) => return Err(RespError::Malformed),
        };
        Ok((decoded, skipped))
    }

    /// Drops what is left of a skipped reply from the front of `buf`; returns how many bytes.
    fn skip_from(&mut self, buf: &[u8]) -> Result<usize, RespError> {
        let mut at = 0;
        while self.is_skipping() {
            if self.skip.bytes > 0 {
                let left = buf.len() - at;
                let take = usize::try_from(self.skip.bytes).map_or(left, |n| n.min(left));
                at += take;
                self.skip.bytes -= take as u64;
                if self.skip.bytes > 0 {
                    break;
                }
                continue;
            }
            // The next element's header says how much more to drop.
            let Some((len, used)) = bulk_header(&buf[at..])? else {
                break;
            };
            at += used;
            self.skip.elements -= 1;
            self.skip.bytes = len.map_or(0, |n| n + 2);
        }
        Ok(at)
    }

    /// Reads an array reply: every element up to the one that is too long, if any.
    fn array(&mut self, buf: &[u8]) -> Result<Decoded, RespError> {
        let Some((count, mut at)) = number(buf, 1)? else {
            return Ok(Decoded::Incomplete);
        };
        let count = usize::try_from(count).map_err(|_| RespError::Unexpected)?;
        if !(2..=MAX_ELEMENTS).contains(&count) {
            return Err(RespError::Unexpected);
        }
        let mut elements = [Element::Null; MAX_ELEMENTS];
        for i in 0..count {
            let rest = &buf[at..];
            match rest.first() {
                None => return Ok(Decoded::Incomplete),
                Some(b':') => {
                    let Some((n, used)) = number(rest, 1)? else {
                        return Ok(Decoded::Incomplete);
                    };
                    elements[i] = Element::Int(n);
                    at += used;
                }
                Some(b'$') => {
                    let Some((len, used)) = bulk_header(rest)? else {
                        return Ok(Decoded::Incomplete);
                    };
                    let Some(len) = len else {
                        elements[i] = Element::Null;
                        at += used;
                        continue;
                    };
                    if len > self.max_bulk as u64 {
                        // Too long to buffer: what came before it names the message, and the
                        // rest is dropped as it arrives.
                        let kind = match elements[0] {
                            Element::Bulk(s, e) if i > 0 => &buf[s..e],
                            _ => &[],
                        };
                        let channel = match (kind, &elements[..i], count) {
                            (b"message", [_, Element::Bulk(s, e)], 3)
                            | (b"pmessage", [_, _, Element::Bulk(s, e)], 4) => Some((*s, *e)),
                            (b"message" | b"pmessage", ..) => None,
                            _ => return Err(RespError::Unexpected),
                        };
                        self.skip = Skip {
                            bytes: len + 2,
                            elements: count - i - 1,
                        };
                        let shape = Shape::TooLong {
                            channel: channel.is_some(),
                        };
                        let parts = channel.as_slice();
                        return Ok(Decoded::Reply(Located::new(shape, parts), at + used));
                    }
                    let start = at + used;
                    let Some(end) = start.checked_add(len as usize) else {
                        return Err(RespError::Malformed);
                    };
                    if buf.len() < end + 2 {
                        return Ok(Decoded::Incomplete);
                    }
                    if &buf[end..end + 2] != b"\r\n" {
                        return Err(RespError::Malformed);
                    }
                    elements[i] = Element::Bulk(start, end);
                    at = end + 2;
                }
                Some(_) => return Err(RespError::Unexpected),
            }
        }
        let located = classify(buf, &elements[..count]).ok_or(RespError::Unexpected)?;
        Ok(Decoded::Reply(located, at))
    }
}

/// What a complete array reply is.
fn classify(buf: &[u8], elements: &[Element]) -> Option<Located> {
    use Element::{Bulk, Int, Null};
    let [Bulk(s, e), ref rest @ ..] = *elements else {
        return None;
    };
    Some(match (&buf[s..e], rest) {
        (b"message", &[Bulk(cs, ce), Bulk(ps, pe)]) => {
            Located::new(Shape::Message, &[(cs, ce), (ps, pe)])
        }
        (b"pmessage", &[Bulk(a, b), Bulk(cs, ce), Bulk(ps, pe)]) => {
            Located::new(Shape::PatternMessage, &[(a, b), (cs, ce), (ps, pe)])
        }
        (kind, &[name, Int(count)]) => {
            let kind = match kind {
                b"subscribe" => Confirmation::Subscribe,
                b"unsubscribe" => Confirmation::Unsubscribe,
                b"psubscribe" => Confirmation::PatternSubscribe,
                b"punsubscribe" => Confirmation::PatternUnsubscribe,
                _ => return None,
            };
            let name = match name {
                Bulk(s, e) => (s, e),
                Null => (0, 0),
                Int(_) => return None,
            };
            Located::new(Shape::Confirmed { kind, count }, &[name])
        }
        (b"pong", &[Bulk(..)]) => Located::new(Shape::Pong, &[]),
        _ => return None,
    })
}

/// The text of the CRLF-terminated line that starts `from` bytes into `buf`, and where the next
/// line starts; `None` until the CRLF arrives. A line longer than `max` is malformed.
fn line(buf: &[u8], from: usize, max: usize) -> Result<Option<(&[u8], usize)>, RespError> {
    let rest = buf.get(from..).unwrap_or_default();
    // The line's end is within its first `max + 1` bytes, or the line is too long.
    let window = &rest[..rest.len().min(max + 1)];
    match window.iter().position(|&b| b == b'\r' || b == b'\n') {
        Some(cr) if window[cr] == b'\n' => Err(RespError::Malformed),
        Some(cr) => match rest.get(cr + 1) {
            Some(b'\n') => Ok(Some((&rest[..cr], from + cr + 2))),
            Some(_) => Err(RespError::Malformed),
            None => Ok(None),
        },
        None if rest.len() > max => Err(RespError::Malformed),
        None => Ok(None),
    }
}

/// The decimal number on the header line starting `from` bytes into `buf`, and where the next
/// line starts.
fn number(buf: &[u8], from: usize) -> Result<Option<(i64, usize)>, RespError> {
    let Some((text, used)) = line(buf, from, MAX_HEADER_LINE)? else {
        return Ok(None);
    };
    let (negative, digits) = match text {
        [b'-', digits @ ..] => (true, digits),
        digits => (false, digits),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(RespError::Malformed);
    }
    let magnitude = digits.iter().try_fold(0i64, |n, &d| {
        n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    });
    let n = magnitude.ok_or(RespError::Malformed)?;
    Ok(Some((if negative { -n } else { n }, used)))
}

/// A bulk string's header at the front of `buf`: its length (`None` for the null bulk string),
/// and the header's length.
fn bulk_header(buf: &[u8]) -> Result<Option<(Option<u64>, usize)>, RespError> {
    match buf.first() {
        None => Ok(None),
        Some(b'$') => match number(buf, 1)? {
            None => Ok(None),
            Some((-1, used)) => Ok(Some((None, used))),
            Some((len, used)) => match u64::try_from(len) {
                Ok(len) if len <= MAX_BULK => Ok(Some((Some(len), used))),
                _ => Err(RespError::Malformed),
            },
        },
        Some(_) => Err(RespError::Unexpected),
    }
}

/// Appends `command` and its `args` to `out`, as an array of bulk strings.
pub fn encode_command<'a>(
    out: &mut Vec<u8>,
    command: &'a [u8],
    args: impl ExactSizeIterator<Item = &'a [u8]>,
) {
    push_header(out, b'*', args.len() + 1);
    for arg in std::iter::once(command).chain(args) {
        push_header(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_header(out: &mut Vec<u8>, kind: u8, n: usize) {
    use std::io::Write as _;
    // Writing to a `Vec` cannot fail.
    let _ = write!(out, "{}{n}\r\n", char::from(kind));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes every reply in `bytes`, fed `feed` bytes at a time, as a reader would.
    fn decode_all(bytes: &[u8], max_bulk: usize, feed: usize) -> Result<Vec<String>, RespError> {
        let mut decoder = Decoder::new(max_bulk);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for chunk in bytes.chunks(feed.max(1)) {
            buf.extend_from_slice(chunk);
            loop {
                let (decoded, skipped) = decoder.decode(&buf)?;
                let used = match decoded {
                    Decoded::Reply(located, used) => {
                        out.push(format!("{:?}", located.reply(&buf[skipped..])));
                        used
                    }
                    Decoded::Incomplete => 0,
                };
                buf.drain(..skipped + used);
                if used == 0 {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn all_feeds(bytes: &[u8], max_bulk: usize) -> Result<Vec<String>, RespError> {
        let whole = decode_all(bytes, max_bulk, bytes.len());
        for feed in [1, 2, 7] {
            assert_eq!(
                decode_all(bytes, max_bulk, feed),
                whole,
                "fed {feed} at a time"
            );
        }
        whole
    }

    #[test]
    fn reads_what_a_subscribed_connection_receives() {
        let bytes = b"+OK\r\n\
            *3\r\n$9\r\nsubscribe\r\n$12\r\nws:broadcast\r\n:1\r\n\
            *3\r\n$10\r\npsubscribe\r\n$9\r\nws:room:*\r\n:2\r\n\
            *3\r\n$7\r\nmessage\r\n$12\r\nws:broadcast\r\n$5\r\nhello\r\n\
            *4\r\n$8\r\npmessage\r\n$9\r\nws:room:*\r\n$9\r\nws:room:a\r\n$0\r\n\r\n\
            *2\r\n$4\r\npong\r\n$0\r\n\r\n\
            *3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n\
            +PONG\r\n-NOAUTH Authentication required.\r\n";
        let replies = all_feeds(bytes, 1024).expect("valid");
        let expected = [
            Reply::Status(b"OK"),
            Reply::Confirmed {
                kind: Confirmation::Subscribe,
                name: b"ws:broadcast",
                count: 1,
            },
            Reply::Confirmed {
                kind: Confirmation::PatternSubscribe,
                name: b"ws:room:*",
                count: 2,
            },
            Reply::Message {
                channel: b"ws:broadcast",
                payload: b"hello",
            },
            Reply::PatternMessage {
                pattern: b"ws:room:*",
                channel: b"ws:room:a",
                payload: b"",
            },
            Reply::Pong,
            Reply::Confirmed {
                kind: Confirmation::Unsubscribe,
                name: b"",
                count: 0,
            },
            Reply::Pong,
            Reply::Error(b"NOAUTH Authentication required."),
        ];
        let expected: Vec<String> = expected.iter().map(|r| format!("{r:?}")).collect();
        assert_eq!(replies, expected);
    }

    #[test]
    fn a_payload_over_the_limit_is_skipped_and_the_next_reply_read() {
        let long = MIN_BULK_LIMIT + 1;
        let mut bytes = format!("*3\r\n$7\r\nmessage\r\n$4\r\nws:a\r\n${long}\r\n").into_bytes();
        bytes.extend(std::iter::repeat_n(b'x', long));
        bytes.extend_from_slice(b"\r\n*3\r\n$7\r\nmessage\r\n$4\r\nws:b\r\n$2\r\nok\r\n");
        // A channel over the limit skips the payload after it as well.
        bytes.extend_from_slice(
            format!("*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n${long}\r\n").as_bytes(),
        );
        bytes.extend(std::iter::repeat_n(b'c', long));
        bytes.extend_from_slice(b"\r\n$3\r\nabc\r\n+PONG\r\n");
        let replies = all_feeds(&bytes, 0).expect("valid");
        assert_eq!(
            replies,
            [
                format!(
                    "{:?}",
                    Reply::TooLong {
                        channel: Some(b"ws:a")
                    }
                ),
                format!(
                    "{:?}",
                    Reply::Message {
                        channel: b"ws:b",
                        payload: b"ok"
                    }
                ),
                format!("{:?}", Reply::TooLong { channel: None }),
                format!("{:?}", Reply::Pong),
            ]
        );
        // Only the message's own bytes are skipped, never a byte of the next reply.
        let mut decoder = Decoder::new(0);
        let head = format!("*3\r\n$7\r\nmessage\r\n$1\r\na\r\n${long}\r\n");
        let (decoded, skipped) = decoder.decode(head.as_bytes()).expect("valid");
        let Decoded::Reply(located, used) = decoded else {
            panic!("a reply: {decoded:?}");
        };
        assert_eq!((used, skipped), (head.len(), 0));
        assert_eq!(
            located.reply(head.as_bytes()),
            Reply::TooLong {
                channel: Some(b"a")
            }
        );
        assert!(decoder.is_skipping());
        let mut rest = vec![b'x'; long];
        rest.extend_from_slice(b"\r\n+OK\r\n");
        let (decoded, skipped) = decoder.decode(&rest[..10]).expect("valid");
        assert_eq!((decoded, skipped), (Decoded::Incomplete, 10));
        let (decoded, skipped) = decoder.decode(&rest[10..]).expect("valid");
        let Decoded::Reply(located, used) = decoded else {
            panic!("a reply: {decoded:?}");
        };
        assert_eq!((used, skipped), (5, long - 10 + 2));
        assert_eq!(located.reply(&rest[10 + skipped..]), Reply::Status(b"OK"));
        assert!(!decoder.is_skipping());
    }

    #[test]
    fn refuses_what_is_not_a_subscribed_connections_reply() {
        let bad: &[&[u8]] = &[
            b":1\r\n",
            b"$3\r\nabc\r\n",
            b"*1\r\n$4\r\npong\r\n",
            b"*5\r\n",
            b"*-1\r\n",
            b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n:1\r\n",
            b"*3\r\n$9\r\nsubscribe\r\n:1\r\n:1\r\n",
            b"*3\r\n$6\r\nfoobar\r\n$1\r\na\r\n:1\r\n",
            b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n*1\r\n",
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n$1\r\n1\r\n",
            // Over the limit, in a reply that is not a message.
            b"*3\r\n$9\r\nsubscribe\r\n$2000\r\n",
        ];
        let malformed: &[&[u8]] = &[
            b"?\r\n",
            b"*3\n",
            b"*3\rx",
            b"*x\r\n",
            b"*\r\n",
            b"*99999999999999999999\r\n",
            b"*3\r\n$7\r\nmessagexx",
            b"*3\r\n$-2\r\n",
            b"*3\r\n$1x\r\n",
            b"*3\r\n$600000000\r\n",
            b"*000000000000000000000000003\r\n",
        ];
        for (inputs, error) in [
            (bad, RespError::Unexpected),
            (malformed, RespError::Malformed),
        ] {
            for bytes in inputs {
                let text = String::from_utf8_lossy(bytes);
                assert_eq!(all_feeds(bytes, 16), Err(error), "{text}");
            }
        }
        // A status line that never ends is refused once it outgrows the limit, not buffered.
        let mut endless = b"+".to_vec();
        endless.extend_from_slice(&[b'a'; MAX_STATUS_LINE + 2]);
        assert_eq!(all_feeds(&endless, 16), Err(RespError::Malformed));
        let mut decoder = Decoder::new(16);
        assert_eq!(
            decoder.decode(&endless[..MAX_STATUS_LINE]),
            Ok((Decoded::Incomplete, 0))
        );
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(
            &mut out,
            b"SUBSCRIBE",
            [b"ws:user:a".as_slice(), b""].into_iter(),
        );
        assert_eq!(
            out,
            b"*3\r\n$9\r\nSUBSCRIBE\r\n$9\r\nws:user:a\r\n$0\r\n\r\n".to_vec()
        );
    }
}
