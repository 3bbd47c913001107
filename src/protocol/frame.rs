//! Client frames in, server frames out.
//!
//! Inbound frames are parsed once into an [`InboundFrame`] whose `data` stays raw JSON: the
//! gateway never builds a tree it does not need. Outbound frames are encoded once per message
//! into the exact text every plaintext receiver gets, which is also the plaintext an encrypted
//! receiver's sealer consumes.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Limits, SystemEvent};

/// A parsed client frame `{event, data?, id?}`.
#[derive(Debug, Clone)]
pub struct InboundFrame {
    /// The event name (non-empty).
    pub event: String,
    /// The payload, as the client sent it; `None` when absent or `null`.
    pub data: Option<Box<RawValue>>,
    /// The optional application-defined message id.
    pub id: Option<String>,
}

/// Why a frame is not a valid message. Every variant is answered with
/// `Invalid message format`; the variants exist for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A binary frame that is not valid UTF-8.
    #[error("frame is not UTF-8")]
    NotUtf8,
    /// Not JSON at all.
    #[error("frame is not valid JSON")]
    NotJson,
    /// Valid JSON, but not an object.
    #[error("frame is not a JSON object")]
    NotObject,
    /// Nested deeper than the configured limit.
    #[error("frame nests deeper than the limit")]
    TooDeep,
    /// `event` is present but not a string.
    #[error("event is not a string")]
    EventNotString,
    /// `event` is longer than the configured limit.
    #[error("event name is longer than the limit")]
    EventTooLong,
}

#[derive(Deserialize)]
struct WireFrame<'a> {
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

impl InboundFrame {
    /// Parses a text (or UTF-8 binary) frame.
    ///
    /// Returns `Ok(None)` for a well-formed object without an `event` (or with an empty one):
    /// the spec drops those silently.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Option<Self>, FrameError> {
        let text = std::str::from_utf8(bytes).map_err(|_| FrameError::NotUtf8)?;
        Self::parse_str(text, limits)
    }

    /// [`InboundFrame::parse`] for a frame already known to be UTF-8 (a text message).
    pub fn parse_str(text: &str, limits: &Limits) -> Result<Option<Self>, FrameError> {
        // serde would accept a JSON array as a struct; only objects are messages.
        if !text.trim_start().starts_with('{') {
            return Err(if serde_json::from_str::<&RawValue>(text).is_ok() {
                FrameError::NotObject
            } else {
                FrameError::NotJson
            });
        }
        // SECURITY: bound nesting before serde recurses into it.
        if !json_depth_within(text.as_bytes(), limits.max_json_depth) {
            return Err(FrameError::TooDeep);
        }
        let wire: WireFrame<'_> = serde_json::from_str(text).map_err(|_| FrameError::NotJson)?;
        let Some(event) = wire.event else {
            return Ok(None);
        };
        let event = match serde_json::from_str::<Option<String>>(event.get()) {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(None),
            Err(_) => return Err(FrameError::EventNotString),
        };
        if event.is_empty() {
            return Ok(None);
        }
        if event.len() > limits.max_event_name_bytes {
            return Err(FrameError::EventTooLong);
        }
        let id = wire
            .id
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
        let data = wire.data.filter(|raw| raw.get() != "null");
        Ok(Some(Self { event, data, id }))
    }

    /// The system event this frame names, if any.
    pub fn system_event(&self) -> Option<SystemEvent> {
        SystemEvent::from_name(&self.event)
    }

    /// The payload, or JSON `null` when absent.
    pub fn data_or_null(&self) -> &RawValue {
        match &self.data {
            Some(raw) => raw,
            None => null_raw(),
        }
    }
}

/// JSON `null` as a raw value (the payload of frames and envelopes without `data`).
pub fn null_raw() -> &'static RawValue {
    // A constant that always parses.
    static NULL: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    NULL.get_or_init(|| RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!()))
}

/// Whether the JSON text nests no deeper than `max` arrays/objects. A linear scan that skips
/// string contents; it does not validate the JSON.
pub fn json_depth_within(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// Encodes `{"event":<event>,"data":<data>}` in one allocation. `data` is already JSON.
///
/// The output is byte-identical to JavaScript's `JSON.stringify({event, data})` for the same
/// compact `data`, so it is also the plaintext the v1 profile seals.
pub fn encode_frame(event: &str, data: &RawValue) -> String {
    let data = data.get();
    let mut out = String::with_capacity(event.len() + data.len() + 22);
    out.push_str("{\"event\":");
    push_json_string(&mut out, event);
    out.push_str(",\"data\":");
    out.push_str(data);
    out.push('}');
    out
}

/// Encodes a system event whose payload is a serializable value.
pub fn encode_system<T: Serialize + ?Sized>(event: SystemEvent, data: &T) -> String {
    let mut out = Vec::with_capacity(64);
    encode_system_into(event, data, &mut out);
    // Only UTF-8 was written: JSON text.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`encode_system`]'s text to `out` (the caller's buffer: no allocation of its own).
pub fn encode_system_into<T: Serialize + ?Sized>(event: SystemEvent, data: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(b"{\"event\":\"");
    out.extend_from_slice(event.as_str().as_bytes());
    out.extend_from_slice(b"\",\"data\":");
    let at = out.len();
    if serde_json::to_writer(&mut *out, data).is_err() {
        // Serializing our own payload types cannot fail; keep the frame well-formed regardless.
        out.truncate(at);
        out.extend_from_slice(b"null");
    }
    out.push(b'}');
    debug_assert!(std::str::from_utf8(&out[start..]).is_ok());
}

fn push_json_string(out: &mut String, s: &str) {
    let plain = s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // serde_json's escaping of a &str cannot fail.
        match serde_json::to_string(s) {
            Ok(escaped) => out.push_str(&escaped),
            Err(_) => out.push_str("\"\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<InboundFrame>, FrameError> {
        InboundFrame::parse(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn parses_event_data_id_and_keeps_data_raw() {
        let f = parse(r#"{"event":"chat","data":{"b": [1, 2],"a":"x"},"id":"m1"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(f.event, "chat");
        assert_eq!(f.data.as_ref().unwrap().get(), r#"{"b": [1, 2],"a":"x"}"#);
        assert_eq!(f.id.as_deref(), Some("m1"));
    }

    #[test]
    fn missing_or_empty_event_is_dropped_silently() {
        assert!(parse(r#"{"data":1}"#).unwrap().is_none());
        assert!(parse(r#"{"event":"","data":1}"#).unwrap().is_none());
        assert!(parse(r#"{"event":null}"#).unwrap().is_none());
        assert!(parse("{}").unwrap().is_none());
    }

    #[test]
    fn non_objects_and_garbage_are_invalid() {
        for s in [
            "null",
            "[]",
            "3",
            "\"event\"",
            "true",
            "[{\"event\":\"x\"}]",
        ] {
            assert_eq!(parse(s).unwrap_err(), FrameError::NotObject, "{s}");
        }
        for s in [
            "",
            "{",
            "not json",
            "{\"event\":\"x\"",
            "{\"event\":\"x\"} trailing",
        ] {
            assert_eq!(parse(s).unwrap_err(), FrameError::NotJson, "{s}");
        }
        assert_eq!(
            parse(r#"{"event":3}"#).unwrap_err(),
            FrameError::EventNotString
        );
        assert_eq!(
            parse(r#"{"event":{"a":1}}"#).unwrap_err(),
            FrameError::EventNotString
        );
        assert_eq!(
            InboundFrame::parse(&[0xff, 0xfe, b'{'], &Limits::default()).unwrap_err(),
            FrameError::NotUtf8
        );
        assert_eq!(
            parse(r#"{"event":"a","event":"b"}"#).unwrap_err(),
            FrameError::NotJson,
            "duplicate keys are ambiguous"
        );
    }

    #[test]
    fn depth_is_bounded() {
        let limits = Limits::default();
        let ok = format!(
            "{{\"event\":\"x\",\"data\":{}{}}}",
            "[".repeat(limits.max_json_depth - 1),
            "]".repeat(limits.max_json_depth - 1)
        );
        assert!(parse(&ok).unwrap().is_some());
        let deep = format!(
            "{{\"event\":\"x\",\"data\":{}{}}}",
            "[".repeat(limits.max_json_depth),
            "]".repeat(limits.max_json_depth)
        );
        assert_eq!(parse(&deep).unwrap_err(), FrameError::TooDeep);
        let absurd = format!("{{\"data\":{}", "[".repeat(1_000_000));
        assert_eq!(parse(&absurd).unwrap_err(), FrameError::TooDeep);
        // Brackets inside strings do not count.
        let in_string = format!("{{\"event\":\"{}\"}}", "[".repeat(100));
        assert_eq!(parse(&in_string).unwrap().unwrap().event, "[".repeat(100));
        assert!(json_depth_within(br#"{"a":"\"[[[[["}"#, 1));
    }

    #[test]
    fn event_name_length_is_bounded() {
        let limits = Limits::default();
        let at = format!(
            "{{\"event\":\"{}\"}}",
            "e".repeat(limits.max_event_name_bytes)
        );
        assert!(parse(&at).unwrap().is_some());
        let past = format!(
            "{{\"event\":\"{}\"}}",
            "e".repeat(limits.max_event_name_bytes + 1)
        );
        assert_eq!(parse(&past).unwrap_err(), FrameError::EventTooLong);
    }

    #[test]
    fn encode_matches_json_stringify() {
        let data = RawValue::from_string(r#"{"message":"hello"}"#.to_owned()).unwrap();
        assert_eq!(
            encode_frame("notification", &data),
            r#"{"event":"notification","data":{"message":"hello"}}"#
        );
        let quoted = encode_frame("a\"b\\c\n", &data);
        let v: serde_json::Value = serde_json::from_str(&quoted).unwrap();
        assert_eq!(v["event"], "a\"b\\c\n");
        assert_eq!(
            encode_system(
                SystemEvent::Error,
                &serde_json::json!({"message": "Not authenticated"})
            ),
            r#"{"event":"error","data":{"message":"Not authenticated"}}"#
        );
    }

    #[test]
    fn null_data_reads_as_absent() {
        let f = parse(r#"{"event":"x","data":null}"#).unwrap().unwrap();
        assert!(f.data.is_none());
        assert_eq!(f.data_or_null().get(), "null");
    }
}
