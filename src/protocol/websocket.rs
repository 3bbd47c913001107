//! The server's reading of RFC 6455 client frames, without I/O: header checks, limits,
//! unmasking, fragmented messages, control frames, UTF-8. The connection task feeds it the
//! bytes it read (`session::socket`); the fuzz target `websocket_decode` feeds it anything.
//!
//! Every limit is checked from the header alone, before the payload arrives, so a peer cannot
//! make the server buffer more than one frame header plus `max_payload` bytes.

/// A complete message or control frame from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A text message (all its fragments), checked as UTF-8.
    Text(String),
    /// A binary message (all its fragments).
    Binary(Vec<u8>),
    /// A ping, with the payload its pong must carry (at most 125 bytes).
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// A close frame, with its status code when it carried one (its reason is checked as UTF-8
    /// and dropped).
    Close(Option<u16>),
}

/// Why the client's bytes cannot be read on: each ends the connection with its close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A frame, or the message its fragments add up to, is longer than the limit (1009).
    #[error("message longer than the maximum payload length")]
    TooBig,
    /// The bytes break RFC 6455 (1002).
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
    /// A text message or a close reason is not UTF-8 (1007).
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
}

/// What [`Decoder::decode`] found at the start of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// The first frame is not complete yet: read more and call again with the same bytes and
    /// what follows them.
    Incomplete,
    /// The first frame was taken: its length in bytes (to drop from the input), and what it
    /// completed (`None` for a fragment of a message still under way).
    Frame(usize, Option<Incoming>),
}

/// The fragments of a message under way.
#[derive(Debug)]
struct Partial {
    text: bool,
    data: Vec<u8>,
}

/// Decodes a client's frames one at a time, keeping a fragmented message between calls. After
/// an error the connection is over: the decoder is not meant to be called again.
#[derive(Debug)]
pub struct Decoder {
    max_payload: usize,
    partial: Option<Partial>,
}

/// The opcodes of RFC 6455 §5.2.
pub mod opcode {
    /// A further fragment of a message.
    pub const CONTINUATION: u8 = 0x0;
    /// The first (or only) frame of a text message.
    pub const TEXT: u8 = 0x1;
    /// The first (or only) frame of a binary message.
    pub const BINARY: u8 = 0x2;
    /// A close frame.
    pub const CLOSE: u8 = 0x8;
    /// A ping.
    pub const PING: u8 = 0x9;
    /// A pong.
    pub const PONG: u8 = 0xA;
}

use opcode::{BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT};

const FIN: u8 = 0x80;
const RESERVED: u8 = 0x70;
const MASKED: u8 = 0x80;
/// The longest payload of a control frame.
const MAX_CONTROL: u64 = 125;

impl Decoder {
    /// A decoder refusing messages (and frames) longer than `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        Self {
            max_payload,
            partial: None,
        }
    }

    /// Decodes the frame at the start of `input`.
    ///
    /// # Errors
    /// [`DecodeError`] when the frame breaks the protocol or a limit; the header alone decides
    /// a size or protocol error, so it comes before the payload has arrived.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, DecodeError> {
        let [b0, b1, ..] = *input else {
            return Ok(Decoded::Incomplete);
        };
        if b0 & RESERVED != 0 {
            return Err(DecodeError::Protocol("reserved bits set"));
        }
        if b1 & MASKED == 0 {
            return Err(DecodeError::Protocol("client frame not masked"));
        }
        let fin = b0 & FIN != 0;
        let opcode = b0 & 0x0F;
        let (len, mask_at) = match b1 & 0x7F {
            126 => match input.get(2..4) {
                Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
                _ => return Ok(Decoded::Incomplete),
            },
            127 => match input.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                Some(bytes) => (u64::from_be_bytes(bytes), 10),
                None => return Ok(Decoded::Incomplete),
            },
            short => (u64::from(short), 2),
        };
        match opcode {
            CONTINUATION if self.partial.is_none() => {
                return Err(DecodeError::Protocol("continuation without a message"));
            }
            TEXT | BINARY if self.partial.is_some() => {
                return Err(DecodeError::Protocol("new message inside a fragmented one"));
            }
            CONTINUATION | TEXT | BINARY => {
                let so_far = self.partial.as_ref().map_or(0, |p| p.data.len());
                let room = self.max_payload.saturating_sub(so_far);
                if len > room as u64 {
                    return Err(DecodeError::TooBig);
                }
            }
            CLOSE | PING | PONG => {
                if !fin {
                    return Err(DecodeError::Protocol("fragmented control frame"));
                }
                if len > MAX_CONTROL {
                    return Err(DecodeError::Protocol("control frame over 125 bytes"));
                }
            }
            _ => return Err(DecodeError::Protocol("unknown opcode")),
        }
        // At most `max_payload` (a `usize`) or 125: the conversion cannot fail.
        let len = usize::try_from(len).map_err(|_| DecodeError::TooBig)?;
        let start = mask_at + 4;
        let Some(mask) = input
            .get(mask_at..start)
            .and_then(|m| <[u8; 4]>::try_from(m).ok())
        else {
            return Ok(Decoded::Incomplete);
        };
        let Some(payload) = input.get(start..start + len) else {
            return Ok(Decoded::Incomplete);
        };
        let end = start + len;
        let incoming = match opcode {
            PING => Some(Incoming::Ping(unmasked(payload, mask))),
            PONG => Some(Incoming::Pong),
            CLOSE => Some(close(&unmasked(payload, mask))?),
            _ if fin && self.partial.is_none() => {
                Some(message(opcode == TEXT, unmasked(payload, mask))?)
            }
            _ => {
                let partial = self.partial.get_or_insert_with(|| Partial {
                    text: opcode == TEXT,
                    data: Vec::new(),
                });
                let at = partial.data.len();
                partial.data.extend_from_slice(payload);
                unmask(&mut partial.data[at..], mask);
                match self.partial.take_if(|_| fin) {
                    Some(done) => Some(message(done.text, done.data)?),
                    None => None,
                }
            }
        };
        Ok(Decoded::Frame(end, incoming))
    }
}

/// A complete message.
fn message(text: bool, data: Vec<u8>) -> Result<Incoming, DecodeError> {
    if text {
        String::from_utf8(data)
            .map(Incoming::Text)
            .map_err(|_| DecodeError::InvalidUtf8)
    } else {
        Ok(Incoming::Binary(data))
    }
}

/// A close frame's payload: nothing, or a status code a peer may send and a UTF-8 reason.
fn close(payload: &[u8]) -> Result<Incoming, DecodeError> {
    let Some((code, reason)) = payload.split_first_chunk::<2>() else {
        return if payload.is_empty() {
            Ok(Incoming::Close(None))
        } else {
            Err(DecodeError::Protocol("close payload of one byte"))
        };
    };
    let code = u16::from_be_bytes(*code);
    // RFC 6455 §7.4: the codes defined for sending, and the ranges for libraries and
    // applications; 1004–1006 and 1015 must never be sent.
    let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !allowed {
        return Err(DecodeError::Protocol("close code not allowed"));
    }
    std::str::from_utf8(reason).map_err(|_| DecodeError::InvalidUtf8)?;
    Ok(Incoming::Close(Some(code)))
}

/// A copy of `payload`, unmasked.
fn unmasked(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut data = payload.to_vec();
    unmask(&mut data, mask);
    data
}

/// Unmasks `data` in place: eight bytes at a time, then the rest.
pub(crate) fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The rest starts at a multiple of 8, so at the mask's first byte.
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

/// The longest frame header: 2 bytes, a 64-bit length and a mask.
pub const MAX_HEADER_LEN: usize = 14;

/// A frame header as it goes on the wire (see [`Header::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl Header {
    /// The header of a frame: the final bit, the opcode, the payload's length in the shortest
    /// of the three length formats, and the mask when there is one (client frames only).
    pub fn new(fin: bool, opcode: u8, len: usize, mask: Option<[u8; 4]>) -> Self {
        let mut bytes = [0; MAX_HEADER_LEN];
        bytes[0] = if fin { FIN } else { 0 } | opcode;
        let masked = if mask.is_some() { MASKED } else { 0 };
        let mut at = 2;
        match len {
            n if n < 126 => bytes[1] = masked | n as u8,
            n if n <= usize::from(u16::MAX) => {
                bytes[1] = masked | 126;
                bytes[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                at = 4;
            }
            n => {
                bytes[1] = masked | 127;
                bytes[2..10].copy_from_slice(&(n as u64).to_be_bytes());
                at = 10;
            }
        }
        if let Some(mask) = mask {
            bytes[at..at + 4].copy_from_slice(&mask);
            at += 4;
        }
        Self {
            bytes,
            len: at as u8,
        }
    }

    /// The header's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A masked client frame, as a browser would send it (for tests and the fuzz seeds).
#[doc(hidden)]
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + MAX_HEADER_LEN);
    out.extend_from_slice(Header::new(fin, opcode, payload.len(), Some(mask)).as_bytes());
    let at = out.len();
    out.extend_from_slice(payload);
    unmask(&mut out[at..], mask);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn one(decoder: &mut Decoder, input: &[u8]) -> Result<Option<Incoming>, DecodeError> {
        match decoder.decode(input)? {
            Decoded::Frame(n, incoming) => {
                assert_eq!(n, input.len(), "the whole frame is taken");
                Ok(incoming)
            }
            Decoded::Incomplete => panic!("complete frame reported incomplete"),
        }
    }

    /// RFC 6455 §5.7's masked "Hello".
    #[test]
    fn the_rfc_example_decodes() {
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut d = Decoder::new(1024);
        assert_eq!(
            one(&mut d, &frame),
            Ok(Some(Incoming::Text("Hello".into())))
        );
        assert_eq!(client_frame(true, TEXT, b"Hello", MASK), frame);
    }

    #[test]
    fn every_length_format_and_every_prefix() {
        for len in [0usize, 1, 7, 8, 9, 125, 126, 127, 65_535, 65_536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let frame = client_frame(true, BINARY, &payload, MASK);
            let mut d = Decoder::new(100_000);
            assert_eq!(one(&mut d, &frame), Ok(Some(Incoming::Binary(payload))));
            for cut in [0, 1, 2, 3, 5, 9, frame.len() - 1] {
                if cut < frame.len() {
                    assert_eq!(
                        d.decode(&frame[..cut]),
                        Ok(Decoded::Incomplete),
                        "{len}/{cut}"
                    );
                }
            }
        }
    }

    #[test]
    fn fragments_with_control_frames_between_them() {
        let mut d = Decoder::new(1024);
        assert_eq!(
            one(&mut d, &client_frame(false, TEXT, b"Hel", MASK)),
            Ok(None)
        );
        let ping = client_frame(true, PING, b"p", [1, 2, 3, 4]);
        assert_eq!(one(&mut d, &ping), Ok(Some(Incoming::Ping(b"p".to_vec()))));
        assert_eq!(
            one(
                &mut d,
                &client_frame(false, CONTINUATION, b"lo, ", [9, 8, 7, 6])
            ),
            Ok(None)
        );
        assert_eq!(
            one(
                &mut d,
                &client_frame(true, CONTINUATION, "wörld".as_bytes(), MASK)
            ),
            Ok(Some(Incoming::Text("Hello, wörld".into())))
        );
        // A UTF-8 character split across fragments is fine; the message is checked whole.
        let text = "é".as_bytes();
        assert_eq!(
            one(&mut d, &client_frame(false, TEXT, &text[..1], MASK)),
            Ok(None)
        );
        assert_eq!(
            one(&mut d, &client_frame(true, CONTINUATION, &text[1..], MASK)),
            Ok(Some(Incoming::Text("é".into())))
        );
    }

    #[test]
    fn protocol_errors() {
        let cases: [(Vec<u8>, &str); 7] = [
            (vec![0x81, 0x05, 0, 0, 0, 0, 0], "client frame not masked"),
            (vec![0xC1, 0x80, 0, 0, 0, 0], "reserved bits set"),
            (vec![0x83, 0x80, 0, 0, 0, 0], "unknown opcode"),
            (
                client_frame(true, CONTINUATION, b"x", MASK),
                "continuation without a message",
            ),
            (
                client_frame(false, PING, b"", MASK),
                "fragmented control frame",
            ),
            (
                client_frame(true, PING, &[0; 126], MASK),
                "control frame over 125 bytes",
            ),
            (
                client_frame(true, CLOSE, &[3], MASK),
                "close payload of one byte",
            ),
        ];
        for (frame, why) in cases {
            assert_eq!(
                Decoder::new(1024).decode(&frame),
                Err(DecodeError::Protocol(why))
            );
        }
        let mut d = Decoder::new(1024);
        assert_eq!(
            one(&mut d, &client_frame(false, BINARY, b"a", MASK)),
            Ok(None)
        );
        assert_eq!(
            d.decode(&client_frame(true, TEXT, b"b", MASK)),
            Err(DecodeError::Protocol("new message inside a fragmented one"))
        );
    }

    #[test]
    fn limits_are_checked_from_the_header() {
        // The header of a 2 KiB frame is enough to refuse it.
        let frame = client_frame(true, TEXT, &[b'a'; 2048], MASK);
        assert_eq!(
            Decoder::new(1024).decode(&frame[..8]),
            Err(DecodeError::TooBig)
        );
        assert_eq!(
            Decoder::new(1024).decode(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::TooBig)
        );
        // Exactly the limit passes; fragments adding up past it do not.
        let mut d = Decoder::new(4);
        assert!(one(&mut d, &client_frame(true, TEXT, b"abcd", MASK)).is_ok());
        assert_eq!(
            one(&mut d, &client_frame(false, TEXT, b"abc", MASK)),
            Ok(None)
        );
        assert_eq!(
            d.decode(&client_frame(true, CONTINUATION, b"de", MASK)),
            Err(DecodeError::TooBig)
        );
    }

    #[test]
    fn utf8_and_close_frames() {
        let mut d = Decoder::new(1024);
        assert_eq!(
            d.decode(&client_frame(true, TEXT, &[0xff], MASK)),
            Err(DecodeError::InvalidUtf8)
        );
        let close_with =
            |payload: &[u8]| Decoder::new(64).decode(&client_frame(true, CLOSE, payload, MASK));
        assert_eq!(
            close_with(b""),
            Ok(Decoded::Frame(6, Some(Incoming::Close(None))))
        );
        assert_eq!(
            close_with(b"\x03\xe8bye"),
            Ok(Decoded::Frame(11, Some(Incoming::Close(Some(1000)))))
        );
        assert_eq!(
            close_with(b"\x0f\xa0"),
            Ok(Decoded::Frame(8, Some(Incoming::Close(Some(4000)))))
        );
        for code in [999u16, 1004, 1005, 1006, 1015, 2999, 5000] {
            assert_eq!(
                close_with(&code.to_be_bytes()),
                Err(DecodeError::Protocol("close code not allowed")),
                "{code}"
            );
        }
        assert_eq!(close_with(b"\x03\xe8\xff"), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn unmasking_matches_byte_by_byte_at_every_length() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut fast = data.clone();
            unmask(&mut fast, MASK);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ MASK[i % 4])
                .collect();
            assert_eq!(fast, slow);
        }
    }
}
