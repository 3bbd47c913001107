//! The Redis envelope `{serverId, type, target?, event, data, exclude?}` and its channels.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Limits, frame::json_depth_within};

/// The server id the reference emitter (and ours) publishes with.
pub const EMITTER_SERVER_ID: &str = "emitter";

/// What an envelope targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    /// One client, by id.
    Client,
    /// Every session of one user.
    User,
    /// Every member of one room.
    Room,
    /// Every authenticated client.
    Broadcast,
}

impl MessageType {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::User => "user",
            Self::Room => "room",
            Self::Broadcast => "broadcast",
        }
    }
}

/// A cross-instance message, field for field the reference's `IRedisSocketMessage`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// The publishing instance (`"emitter"` for emitters); a server drops its own envelopes.
    pub server_id: String,
    /// What `target` names.
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// Client id, user id or room name; absent for broadcasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The event to deliver.
    pub event: String,
    /// The payload, raw JSON (`null` when absent). Left out when absent, as JavaScript's
    /// `JSON.stringify` does, so a parsed envelope never grows when re-serialized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    /// Client ids that must not receive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
}

/// Why an envelope was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Larger than `Limits::max_envelope_bytes`.
    #[error("envelope is larger than the limit")]
    TooLarge,
    /// Nested deeper than `Limits::max_json_depth`.
    #[error("envelope nests deeper than the limit")]
    TooDeep,
    /// Not JSON of the envelope's shape (unknown `type` included).
    #[error("envelope is malformed")]
    Malformed,
    /// A client/user/room envelope without a target, or an empty event.
    #[error("envelope lacks its target or event")]
    MissingTarget,
    /// The channel it arrived on does not match its type and target.
    #[error("envelope does not match its channel")]
    ChannelMismatch,
}

impl Envelope {
    /// Parses untrusted bytes from the bus, with limits.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Self, EnvelopeError> {
        if bytes.len() > limits.max_envelope_bytes {
            return Err(EnvelopeError::TooLarge);
        }
        // SECURITY: the envelope nests its own object around `data`, hence the +1.
        if !json_depth_within(bytes, limits.max_json_depth + 1) {
            return Err(EnvelopeError::TooDeep);
        }
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|_| EnvelopeError::Malformed)?;
        envelope.validate()?;
        Ok(envelope)
    }

    /// Checks the fields agree: a non-empty event, and a target for every type but broadcast.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        if self.event.is_empty() {
            return Err(EnvelopeError::MissingTarget);
        }
        match (&self.kind, &self.target) {
            (MessageType::Broadcast, _) => Ok(()),
            (_, Some(target)) if !target.is_empty() => Ok(()),
            _ => Err(EnvelopeError::MissingTarget),
        }
    }

    /// The channel this envelope is published on.
    pub fn channel(&self) -> Channel {
        let target = self.target.clone().unwrap_or_default();
        match self.kind {
            MessageType::Broadcast => Channel::Broadcast,
            MessageType::Room => Channel::Room(target),
            MessageType::Client => Channel::Client(target),
            MessageType::User => Channel::User(target),
        }
    }

    /// Whether this envelope may arrive on `channel` (an envelope whose type or target
    /// disagrees with its channel is dropped).
    pub fn matches_channel(&self, channel: &str) -> bool {
        // `channel().name() == channel`, without building either.
        let target = self.target.as_deref().unwrap_or_default();
        let (prefix, rest) = match self.kind {
            MessageType::Broadcast => (Channel::BROADCAST, ""),
            MessageType::Room => (Channel::ROOM_PREFIX, target),
            MessageType::Client => (Channel::CLIENT_PREFIX, target),
            MessageType::User => (Channel::USER_PREFIX, target),
        };
        channel.strip_prefix(prefix) == Some(rest)
    }

    /// The payload, JSON `null` when absent.
    pub fn data_json(&self) -> &str {
        self.data.as_deref().map_or("null", RawValue::get)
    }

    /// Serializes for the bus.
    pub fn to_json(&self) -> String {
        // Serializing strings and raw JSON cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A bus channel, named as the spec's `WebSocketChannels`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// `ws:broadcast`
    Broadcast,
    /// `ws:room:{room}`
    Room(String),
    /// `ws:client:{id}`
    Client(String),
    /// `ws:user:{id}`
    User(String),
}

impl Channel {
    /// `ws:broadcast`
    pub const BROADCAST: &'static str = "ws:broadcast";
    /// Prefix of room channels.
    pub const ROOM_PREFIX: &'static str = "ws:room:";
    /// Prefix of client channels.
    pub const CLIENT_PREFIX: &'static str = "ws:client:";
    /// Prefix of user channels.
    pub const USER_PREFIX: &'static str = "ws:user:";
    /// Pattern matching every room channel.
    pub const ROOM_PATTERN: &'static str = "ws:room:*";
    /// Pattern matching every client channel.
    pub const CLIENT_PATTERN: &'static str = "ws:client:*";
    /// Pattern matching every user channel.
    pub const USER_PATTERN: &'static str = "ws:user:*";

    /// The channel's name on the bus.
    pub fn name(&self) -> String {
        let (prefix, rest) = self.parts();
        [prefix, rest].concat()
    }

    /// The name's fixed prefix and the rest (the room, client or user id).
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Self::Broadcast => (Self::BROADCAST, ""),
            Self::Room(room) => (Self::ROOM_PREFIX, room),
            Self::Client(id) => (Self::CLIENT_PREFIX, id),
            Self::User(id) => (Self::USER_PREFIX, id),
        }
    }

    /// Reads a channel name; `None` for names outside the `ws:` scheme.
    pub fn parse(name: &str) -> Option<Self> {
        if name == Self::BROADCAST {
            return Some(Self::Broadcast);
        }
        if let Some(room) = name.strip_prefix(Self::ROOM_PREFIX) {
            return Some(Self::Room(room.to_owned()));
        }
        if let Some(id) = name.strip_prefix(Self::CLIENT_PREFIX) {
            return Some(Self::Client(id.to_owned()));
        }
        name.strip_prefix(Self::USER_PREFIX)
            .map(|id| Self::User(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_emitter_json_parses() {
        // What the reference WebSocketEmitter.toRoom publishes.
        let raw = br#"{"serverId":"emitter","type":"room","target":"dashboard","event":"data:update","data":{"metric":"cpu","value":42.5},"exclude":["c1"]}"#;
        let e = Envelope::parse(raw, &Limits::default()).unwrap();
        assert_eq!(e.server_id, EMITTER_SERVER_ID);
        assert_eq!(e.kind, MessageType::Room);
        assert_eq!(e.target.as_deref(), Some("dashboard"));
        assert_eq!(e.data_json(), r#"{"metric":"cpu","value":42.5}"#);
        assert_eq!(e.exclude.as_deref(), Some(&["c1".to_owned()][..]));
        assert!(e.matches_channel("ws:room:dashboard"));
        assert!(!e.matches_channel("ws:client:dashboard"));
        assert!(!e.matches_channel("ws:broadcast"));
    }

    #[test]
    fn field_names_are_the_references() {
        let e = Envelope {
            server_id: "s1".into(),
            kind: MessageType::User,
            target: Some("u1".into()),
            event: "n".into(),
            data: Some(RawValue::from_string("{\"a\":1}".into()).unwrap()),
            exclude: None,
        };
        assert_eq!(
            e.to_json(),
            r#"{"serverId":"s1","type":"user","target":"u1","event":"n","data":{"a":1}}"#
        );
    }

    #[test]
    fn untrusted_envelopes_are_refused() {
        let l = Limits::default();
        let bad: &[&[u8]] = &[
            b"not json",
            b"[]",
            br#"{"serverId":"x","type":"everyone","event":"e","data":1}"#,
            br#"{"type":"room","target":"r","event":"e","data":1}"#,
        ];
        for b in bad {
            assert_eq!(
                Envelope::parse(b, &l).unwrap_err(),
                EnvelopeError::Malformed
            );
        }
        assert_eq!(
            Envelope::parse(
                br#"{"serverId":"x","type":"room","event":"e","data":1}"#,
                &l
            )
            .unwrap_err(),
            EnvelopeError::MissingTarget
        );
        assert_eq!(
            Envelope::parse(
                br#"{"serverId":"x","type":"broadcast","event":"","data":1}"#,
                &l
            )
            .unwrap_err(),
            EnvelopeError::MissingTarget
        );
        // Exactly at the size limit parses; one byte more does not.
        let head = r#"{"serverId":"x","type":"broadcast","event":"e","data":""#;
        let pad = l.max_envelope_bytes - head.len() - 2;
        let at = format!("{head}{}\"}}", "a".repeat(pad));
        assert_eq!(at.len(), l.max_envelope_bytes);
        assert!(Envelope::parse(at.as_bytes(), &l).is_ok());
        let past = format!("{head}{}\"}}", "a".repeat(pad + 1));
        assert_eq!(
            Envelope::parse(past.as_bytes(), &l).unwrap_err(),
            EnvelopeError::TooLarge
        );
        // An envelope without data accepted at the limit re-serializes within it.
        let head = r#"{"serverId":"x","type":"broadcast","event":""#;
        let no_data = format!(
            "{head}{}\"}}",
            "e".repeat(l.max_envelope_bytes - head.len() - 2)
        );
        let parsed = Envelope::parse(no_data.as_bytes(), &l).unwrap();
        assert!(Envelope::parse(parsed.to_json().as_bytes(), &l).is_ok());
        let big = vec![b' '; l.max_envelope_bytes + 1];
        assert_eq!(
            Envelope::parse(&big, &l).unwrap_err(),
            EnvelopeError::TooLarge
        );
        let deep = format!(
            r#"{{"serverId":"x","type":"broadcast","event":"e","data":{}1{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(
            Envelope::parse(deep.as_bytes(), &l).unwrap_err(),
            EnvelopeError::TooDeep
        );
        let broadcast_on_client = br#"{"serverId":"x","type":"broadcast","event":"e","data":1}"#;
        let e = Envelope::parse(broadcast_on_client, &l).unwrap();
        assert!(!e.matches_channel("ws:client:abc"));
        assert!(e.matches_channel("ws:broadcast"));
    }

    #[test]
    fn channels_round_trip() {
        for c in [
            Channel::Broadcast,
            Channel::Room("chat:general".into()),
            Channel::Client("c-1".into()),
            Channel::User("u:1".into()),
        ] {
            assert_eq!(Channel::parse(&c.name()), Some(c));
        }
        assert_eq!(Channel::parse("other"), None);
        assert_eq!(Channel::Room("x".into()).name(), "ws:room:x");
    }
}
