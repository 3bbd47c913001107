//! Outbound WebSocket framing: a text message becomes the exact bytes a server sends for it.
//!
//! Server frames are never masked, so the complete frame (header and payload) of a message is
//! the same for every receiver. The fan-out frames a plaintext message once and copies those
//! bytes into each receiver's outbox; the writer hands whole batches to the socket as they are
//! (`session::socket` reads, and writes the control frames ahead of them).

use std::cell::RefCell;

use crate::protocol::websocket::{Header, opcode::TEXT};

/// The longest header of an unmasked server frame: 2 bytes plus a 64-bit length.
pub(crate) const MAX_HEADER: usize = 10;

/// The header of one unfragmented, unmasked text frame of `len` payload bytes.
fn text_header(len: usize) -> Header {
    Header::new(true, TEXT, len, None)
}

/// Appends the header of one unfragmented, unmasked text frame of `len` payload bytes.
pub(crate) fn push_text_header(out: &mut Vec<u8>, len: usize) {
    // The two short forms as fixed-size copies, which compile to a store or two instead of a
    // call of `memcpy` per frame (a sealing writer writes one header per delivery).
    match *text_header(len).as_bytes() {
        [a, b] => out.extend_from_slice(&[a, b]),
        [a, b, c, d] => out.extend_from_slice(&[a, b, c, d]),
        ref long => out.extend_from_slice(long),
    }
}

/// Appends one complete text frame carrying `payload` (UTF-8 text).
pub(crate) fn push_text_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.reserve(payload.len() + MAX_HEADER);
    push_text_header(out, payload.len());
    out.extend_from_slice(payload);
}

/// Appends one complete text frame of `len` payload bytes, which `fill` appends to `out` (a
/// sealer writing its record in place). False, with `out` as it was, if `fill` fails or does
/// not append exactly `len` bytes.
#[inline]
pub(crate) fn push_text_frame_with<E>(
    out: &mut Vec<u8>,
    len: usize,
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> bool {
    let start = out.len();
    out.reserve(len.saturating_add(MAX_HEADER));
    push_text_header(out, len);
    let payload_at = out.len();
    if fill(out).is_err() || out.len() - payload_at != len {
        out.truncate(start);
        return false;
    }
    true
}

thread_local! {
    /// Where [`text_frame_with`] assembles a frame before it is copied out at its exact size.
    static ASSEMBLY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The most [`ASSEMBLY`] keeps between frames.
const KEPT_ASSEMBLY: usize = 16 * 1024;

/// One complete text frame whose payload (UTF-8 text) `fill` appends, in one allocation of its
/// exact size however long the payload turns out: it is assembled in a buffer of the thread's
/// (the payload written after room for the longest header) and copied out from its header on.
pub(crate) fn text_frame_with(fill: impl FnOnce(&mut Vec<u8>)) -> Box<[u8]> {
    ASSEMBLY.with_borrow_mut(|out| {
        out.clear();
        out.resize(MAX_HEADER, 0);
        fill(out);
        let header = text_header(out.len() - MAX_HEADER);
        let header = header.as_bytes();
        // The header ends where the payload starts; what is left of the room is skipped.
        let start = MAX_HEADER - header.len();
        out[start..MAX_HEADER].copy_from_slice(header);
        let frame = Box::from(&out[start..]);
        if out.capacity() > KEPT_ASSEMBLY {
            *out = Vec::new();
        }
        frame
    })
}

/// One complete text frame carrying `payload`.
pub(crate) fn text_frame(payload: &str) -> Box<[u8]> {
    text_frame_padded(payload, 0)
}

/// One complete text frame carrying `payload`, followed by `pad` spaces (not part of the frame)
/// in the same allocation.
pub(crate) fn text_frame_padded(payload: &str, pad: usize) -> Box<[u8]> {
    let mut out = Vec::with_capacity(payload.len() + MAX_HEADER + pad);
    push_text_frame(&mut out, payload.as_bytes());
    out.resize(out.len() + pad, b' ');
    out.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::frame::{
        Frame, FrameHeader,
        coding::{Data, OpCode},
    };

    /// Our bytes parse back as the frame tungstenite itself would write, at each length format.
    #[test]
    fn frames_match_the_codec_at_every_length_format() {
        for len in [0usize, 1, 125, 126, 65_535, 65_536, 200_000] {
            let payload = "x".repeat(len);
            let ours = text_frame(&payload);
            let filled = text_frame_with(|out| out.extend_from_slice(payload.as_bytes()));
            assert_eq!(filled, ours, "length {len}");
            let mut pushed = b"before".to_vec();
            push_text_frame(&mut pushed, payload.as_bytes());
            assert_eq!(&pushed[6..], &ours[..], "length {len}");
            let mut theirs = Vec::new();
            Frame::message(payload.clone(), OpCode::Data(Data::Text), true)
                .format(&mut theirs)
                .expect("formats");
            assert_eq!(&ours[..], &theirs[..], "length {len}");
            let mut cursor = std::io::Cursor::new(&ours);
            let (header, parsed_len) = FrameHeader::parse(&mut cursor)
                .expect("parses")
                .expect("complete");
            assert_eq!(parsed_len, len as u64);
            assert!(header.is_final && header.mask.is_none());
            assert_eq!(&ours[cursor.position() as usize..], payload.as_bytes());
            assert!(ours.len() <= len + MAX_HEADER);
        }
    }

    #[test]
    fn a_filled_frame_is_kept_only_when_the_filler_wrote_exactly_its_length() {
        let mut out = b"before".to_vec();
        assert!(push_text_frame_with(&mut out, 3, |o| {
            o.extend_from_slice(b"abc");
            Ok::<(), ()>(())
        }));
        assert_eq!(&out[6..], &text_frame("abc")[..]);
        let kept = out.clone();
        assert!(!push_text_frame_with(&mut out, 3, |o| {
            o.push(b'x');
            Err(())
        }));
        assert!(!push_text_frame_with(&mut out, 3, |o| {
            o.extend_from_slice(b"abcd");
            Ok::<(), ()>(())
        }));
        assert_eq!(out, kept);
    }
}
