//! The encryption v2 channel of one connection as its reader sees it: plaintext until a v2
//! handshake starts, then the client's sealed `fin`, then nothing but records.
//!
//! Pure (no sockets, no timers): the task feeds it each inbound frame's bytes and gets back
//! what to parse, or what failed. The opener lives here, in the connection's own task, so
//! records are opened strictly in arrival order; the sealer goes to the writer.

use serde_json::value::RawValue;

use crate::crypto::v2::{self, Opener, ServerHandshake, ServerSigningKey};

/// Where the connection's v2 channel stands.
pub(crate) enum Channel {
    /// No v2 handshake (yet): frames are plaintext JSON (v1 and unencrypted clients stay here).
    Plain,
    /// The server hello went out; the next frame must be the client's sealed `fin` (record 0).
    AwaitingFin(Box<ServerHandshake>),
    /// Established: every frame must be the next client record.
    Open(Box<Opener>),
    /// A v2 failure closed the connection; frames still in flight are ignored.
    Dead,
}

/// What became of one inbound frame.
pub(crate) enum Inbound<'a> {
    /// Parse these bytes as a frame (a plaintext frame on a `Plain` channel).
    Plain(&'a [u8]),
    /// Parse these bytes as a frame (an opened record).
    Opened(Vec<u8>),
    /// The client's `fin` verified: give this sealer to the writer. Nothing to parse.
    Established(Box<v2::Sealer>),
    /// The handshake failed: `Encryption handshake failed`, then close 4004.
    HandshakeFailed,
    /// A record failed to open (tampered, replayed, reordered, dropped, reflected, plaintext):
    /// close 4004.
    RecordFailed,
    /// The channel is dead; drop the frame.
    Ignore,
}

impl Channel {
    /// Whether no v2 handshake has started.
    pub(crate) fn is_plain(&self) -> bool {
        matches!(self, Self::Plain)
    }

    /// Whether the channel is established (every frame in both directions is sealed).
    pub(crate) fn is_open(&self) -> bool {
        matches!(self, Self::Open(_))
    }

    /// Marks the channel dead after a failure.
    pub(crate) fn kill(&mut self) {
        *self = Self::Dead;
    }

    /// Answers a client hello (`handshake` event data). Returns the server hello frame to send
    /// in plaintext; the channel then waits for the client's `fin`.
    ///
    /// # Errors
    /// `Err(())` if a handshake already started, or the hello is malformed or offers no v2;
    /// the caller fails the handshake.
    pub(crate) fn start(
        &mut self,
        data: Option<&RawValue>,
        signing: Option<&ServerSigningKey>,
    ) -> Result<String, ()> {
        if !self.is_plain() {
            return Err(());
        }
        let data = data.map_or("null", RawValue::get);
        let hello = v2::parse_client_hello(data).map_err(|_| ())?;
        // SECURITY: `accept` only ever chooses v2, and fails for a hello that does not offer it.
        let (state, frame) = v2::accept(&hello, signing).map_err(|_| ())?;
        *self = Self::AwaitingFin(Box::new(state));
        Ok(frame)
    }

    /// Handles one inbound frame's bytes.
    pub(crate) fn inbound<'a>(&mut self, bytes: &'a [u8]) -> Inbound<'a> {
        match std::mem::replace(self, Self::Dead) {
            Self::Plain => {
                *self = Self::Plain;
                Inbound::Plain(bytes)
            }
            Self::AwaitingFin(handshake) => {
                // SECURITY: nothing but the sealed fin is accepted here: a plaintext
                // `authenticate` after a hello is a failed handshake, never a v1 fallback.
                let Ok(text) = std::str::from_utf8(bytes) else {
                    return Inbound::HandshakeFailed;
                };
                match handshake.finish(text) {
                    Ok(established) => {
                        let (sealer, opener) = established.into_parts();
                        *self = Self::Open(Box::new(opener));
                        Inbound::Established(Box::new(sealer))
                    }
                    Err(_) => Inbound::HandshakeFailed,
                }
            }
            Self::Open(mut opener) => {
                // SECURITY: after the handshake a plaintext (or binary, or non-UTF-8) frame is a
                // protocol error, as is any record that does not open as the next one.
                let opened = std::str::from_utf8(bytes)
                    .map_err(|_| ())
                    .and_then(|text| opener.open(text).map_err(|_| ()));
                match opened {
                    Ok(plaintext) => {
                        *self = Self::Open(opener);
                        Inbound::Opened(plaintext)
                    }
                    Err(()) => Inbound::RecordFailed,
                }
            }
            Self::Dead => Inbound::Ignore,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::v2::{ClientHandshake, Established, hello_data};

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).expect("json")
    }

    /// A channel past the server hello, and the client's state.
    fn started() -> (Channel, ClientHandshake, String) {
        let (client, hello) = ClientHandshake::start().expect("start");
        let mut channel = Channel::Plain;
        let data = raw(hello_data(&hello).expect("data"));
        let server_hello = channel.start(Some(&data), None).expect("accept");
        (channel, client, server_hello)
    }

    fn established() -> (Channel, Established) {
        let (mut channel, client, server_hello) = started();
        let (client, fin) = client
            .finish(hello_data(&server_hello).expect("data"), None)
            .expect("finish");
        assert!(matches!(
            channel.inbound(fin.as_bytes()),
            Inbound::Established(_)
        ));
        assert!(channel.is_open());
        (channel, client)
    }

    #[test]
    fn plain_frames_pass_through() {
        let mut channel = Channel::Plain;
        assert!(matches!(channel.inbound(b"{}"), Inbound::Plain(b"{}")));
        assert!(channel.is_plain());
    }

    #[test]
    fn records_open_in_order_and_any_failure_is_final() {
        let (mut channel, mut client) = established();
        let rec = client.sealer().seal(b"{\"event\":\"a\"}").expect("seal");
        assert!(
            matches!(channel.inbound(rec.as_bytes()), Inbound::Opened(p) if p == b"{\"event\":\"a\"}")
        );
        // A replay fails, and so does everything after it.
        assert!(matches!(
            channel.inbound(rec.as_bytes()),
            Inbound::RecordFailed
        ));
        let next = client.sealer().seal(b"{\"event\":\"b\"}").expect("seal");
        assert!(matches!(channel.inbound(next.as_bytes()), Inbound::Ignore));
    }

    #[test]
    fn plaintext_after_the_handshake_fails() {
        let (mut channel, _) = established();
        assert!(matches!(
            channel.inbound(br#"{"event":"authenticate","data":{}}"#),
            Inbound::RecordFailed
        ));
        let (mut channel, _) = established();
        assert!(matches!(
            channel.inbound(&[0xff, 0xfe]),
            Inbound::RecordFailed
        ));
    }

    #[test]
    fn anything_but_the_fin_fails_the_handshake() {
        let (mut channel, _, _) = started();
        assert!(matches!(
            channel.inbound(br#"{"event":"authenticate","data":{"token":"t"}}"#),
            Inbound::HandshakeFailed
        ));
        assert!(matches!(channel.inbound(b"{}"), Inbound::Ignore));
    }

    #[test]
    fn bad_hellos_and_second_hellos_are_refused() {
        let mut channel = Channel::Plain;
        assert!(channel.start(None, None).is_err());
        assert!(channel.start(Some(&raw(r#"{"v":["v1"]}"#)), None).is_err());
        let (mut channel, _, _) = started();
        let (_, hello) = ClientHandshake::start().expect("start");
        let data = raw(hello_data(&hello).expect("data"));
        assert!(channel.start(Some(&data), None).is_err());
    }
}
