//! The connection's protocol state machine, free of sockets and timers.
//!
//! The I/O task feeds it parsed frames and the clock ([`Session::on_frame`],
//! [`Session::on_tick`]) and the outcome of authentication ([`Session::on_auth`]); it answers
//! with [`Action`]s for the task to carry out. Everything the spec says about the lifecycle
//! (`unauthorized → authenticating → authenticated → disconnected`, auth timeouts, which events
//! are allowed when) lives here and is unit-tested without a socket.

use std::{collections::VecDeque, time::Duration};

use serde_json::value::RawValue;
use tokio::time::Instant;

use super::rate::TokenBucket;
use crate::crypto::v2::HANDSHAKE_EVENT;
use crate::protocol::{CloseCode, ErrorMessage, FrameError, InboundFrame, Limits, SystemEvent};

/// The spec's client states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientState {
    /// Connected, `authenticate` not received yet.
    Unauthorized,
    /// The authenticate hook is running.
    Authenticating,
    /// Fully operational.
    Authenticated,
    /// Gone.
    Disconnected,
}

impl ClientState {
    /// The spec's name for the state.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Authenticating => "authenticating",
            Self::Authenticated => "authenticated",
            Self::Disconnected => "disconnected",
        }
    }

    pub(crate) const fn to_u8(self) -> u8 {
        self as u8
    }

    pub(crate) const fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Unauthorized,
            1 => Self::Authenticating,
            2 => Self::Authenticated,
            _ => Self::Disconnected,
        }
    }
}

/// What the I/O task must do in answer to an input.
#[derive(Debug)]
pub(crate) enum Action {
    /// Nothing (heartbeats, frames without `event`, system events a client may not send).
    Nothing,
    /// Send an `error` event.
    Error(ErrorMessage),
    /// Run the authenticate hook with this payload (the auth deadline was extended).
    Authenticate(Box<RawValue>),
    /// Answer an encryption v2 client hello (`handshake` before `authenticate`).
    Handshake(Option<Box<RawValue>>),
    /// Handle a `join` request.
    Join(Option<Box<RawValue>>),
    /// Handle a `leave` request.
    Leave(Option<Box<RawValue>>),
    /// Hand an application event to the message handler.
    Dispatch(InboundFrame),
}

/// Whether a frame may be handled, per the client's frame budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Within budget.
    Accept,
    /// Over budget: drop the frame; `notify` says whether to send `Rate limit exceeded` (once per
    /// streak of refusals).
    Refuse { notify: bool },
    /// Refused for as long again as the burst: close with 1008.
    Close,
}

/// How authentication ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthResult {
    /// Accepted (and the handshake, if any, succeeded).
    Accepted,
    /// The connection is being closed with this code.
    Refused(CloseCode),
}

/// One connection's protocol state.
#[derive(Debug)]
pub(crate) struct Session {
    state: ClientState,
    auth_timeout: Duration,
    auth_deadline: Option<Instant>,
    /// Frames received while authentication runs, replayed in order once it succeeds.
    pending: VecDeque<Result<Option<InboundFrame>, FrameError>>,
    max_pending: usize,
    frames: TokenBucket,
    /// Frames refused in a row; reaching the burst size closes the connection.
    refused: u32,
    frame_burst: u32,
    joins: TokenBucket,
}

impl Session {
    /// A fresh connection at `now`: unauthorized, with the initial auth deadline.
    pub(crate) fn new(now: Instant, auth_timeout: Duration, limits: &Limits) -> Self {
        Self {
            state: ClientState::Unauthorized,
            auth_timeout,
            auth_deadline: Some(now + auth_timeout),
            pending: VecDeque::new(),
            max_pending: limits.max_frames_during_auth,
            frames: TokenBucket::new(limits.frames_per_second, limits.frame_burst, now),
            refused: 0,
            frame_burst: limits.frame_burst.max(1),
            joins: TokenBucket::new(limits.joins_per_second, limits.join_burst, now),
        }
    }

    /// Charges one inbound frame against the client's budget (before it is parsed).
    pub(crate) fn admit(&mut self, now: Instant) -> Admit {
        if self.frames.try_take(now) {
            self.refused = 0;
            return Admit::Accept;
        }
        self.refused += 1;
        if self.refused >= self.frame_burst {
            Admit::Close
        } else {
            Admit::Refuse {
                notify: self.refused == 1,
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> ClientState {
        self.state
    }

    /// When the auth timer fires, if it is running.
    pub(crate) fn auth_deadline(&self) -> Option<Instant> {
        self.auth_deadline
    }

    /// A frame arrived (already parsed; parse errors included).
    pub(crate) fn on_frame(
        &mut self,
        frame: Result<Option<InboundFrame>, FrameError>,
        now: Instant,
    ) -> Action {
        if self.state == ClientState::Authenticating {
            // Keep the client's order: handle these once authentication is decided.
            if self.pending.len() < self.max_pending {
                self.pending.push_back(frame);
                return Action::Nothing;
            }
            return Action::Error(ErrorMessage::NotAuthenticated);
        }
        let frame = match frame {
            Err(_) => return Action::Error(ErrorMessage::InvalidMessageFormat),
            Ok(None) => return Action::Nothing,
            Ok(Some(frame)) => frame,
        };
        let system = frame.system_event();
        if system == Some(SystemEvent::Heartbeat) {
            return Action::Nothing;
        }
        // The v2 `handshake` event is not one of the spec's system events: before
        // authentication it is the v2 client hello; after it, an application event like any
        // other (applications negotiate encryption late through such messages).
        let handshake = system.is_none() && frame.event == HANDSHAKE_EVENT;
        match self.state {
            ClientState::Unauthorized if handshake => Action::Handshake(frame.data),
            ClientState::Unauthorized => {
                if system == Some(SystemEvent::Authenticate) {
                    self.state = ClientState::Authenticating;
                    self.auth_deadline = Some(now + self.auth_timeout * 3);
                    let data = frame
                        .data
                        .unwrap_or_else(|| crate::protocol::null_raw().to_owned());
                    Action::Authenticate(data)
                } else {
                    Action::Error(ErrorMessage::NotAuthenticated)
                }
            }
            ClientState::Authenticated => match system {
                Some(SystemEvent::Authenticate) => {
                    Action::Error(ErrorMessage::AlreadyAuthenticated)
                }
                Some(SystemEvent::Join) if !self.joins.try_take(now) => {
                    Action::Error(ErrorMessage::RateLimited)
                }
                Some(SystemEvent::Join) => Action::Join(frame.data),
                Some(SystemEvent::Leave) => Action::Leave(frame.data),
                // SECURITY: server-to-client event names never reach the message handler.
                Some(_) => Action::Nothing,
                None => Action::Dispatch(frame),
            },
            ClientState::Authenticating | ClientState::Disconnected => Action::Nothing,
        }
    }

    /// Authentication finished. On success, returns the frames received meanwhile, in order,
    /// for the task to feed back through [`Session::on_frame`].
    pub(crate) fn on_auth(
        &mut self,
        result: AuthResult,
    ) -> VecDeque<Result<Option<InboundFrame>, FrameError>> {
        self.auth_deadline = None;
        match result {
            AuthResult::Accepted => {
                self.state = ClientState::Authenticated;
                std::mem::take(&mut self.pending)
            }
            AuthResult::Refused(_) => {
                self.state = ClientState::Disconnected;
                self.pending.clear();
                VecDeque::new()
            }
        }
    }

    /// The clock moved; returns the close code if the auth timer expired.
    pub(crate) fn on_tick(&mut self, now: Instant) -> Option<CloseCode> {
        match self.auth_deadline {
            Some(deadline) if now >= deadline => {
                self.auth_deadline = None;
                self.state = ClientState::Disconnected;
                self.pending.clear();
                Some(CloseCode::AuthTimeout)
            }
            _ => None,
        }
    }

    /// The connection is gone.
    pub(crate) fn on_close(&mut self) {
        self.state = ClientState::Disconnected;
        self.auth_deadline = None;
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    fn limits(max_pending: usize) -> Limits {
        Limits {
            max_frames_during_auth: max_pending,
            ..Limits::default()
        }
    }

    #[test]
    fn v2_handshake_event_before_authentication_only() {
        let now = Instant::now();
        let mut s = Session::new(now, T, &limits(4));
        match s.on_frame(frame(r#"{"event":"handshake","data":{"v":[]}}"#), now) {
            Action::Handshake(Some(data)) => assert_eq!(data.get(), r#"{"v":[]}"#),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.state(),
            ClientState::Unauthorized,
            "still before authenticate"
        );
        let mut s = authed(now);
        assert!(matches!(
            s.on_frame(frame(r#"{"event":"handshake","data":{}}"#), now),
            Action::Dispatch(f) if f.event == "handshake"
        ));
    }

    #[test]
    fn frame_budget_refuses_then_closes() {
        let now = Instant::now();
        let l = Limits {
            frames_per_second: 10,
            frame_burst: 3,
            ..Limits::default()
        };
        let mut s = Session::new(now, T, &l);
        assert!(
            (0..3).all(|_| s.admit(now) == Admit::Accept),
            "the burst is admitted"
        );
        assert_eq!(s.admit(now), Admit::Refuse { notify: true });
        assert_eq!(s.admit(now), Admit::Refuse { notify: false });
        assert_eq!(s.admit(now), Admit::Close);
        // A client that slows down recovers.
        let mut s = Session::new(now, T, &l);
        (0..3).for_each(|_| assert_eq!(s.admit(now), Admit::Accept));
        assert_eq!(s.admit(now), Admit::Refuse { notify: true });
        assert_eq!(s.admit(now + Duration::from_millis(100)), Admit::Accept);
        assert_eq!(
            s.admit(now + Duration::from_millis(100)),
            Admit::Refuse { notify: true }
        );
    }

    #[test]
    fn join_budget() {
        let now = Instant::now();
        let l = Limits {
            joins_per_second: 1,
            join_burst: 2,
            ..Limits::default()
        };
        let mut s = Session::new(now, T, &l);
        s.on_frame(frame(r#"{"event":"authenticate"}"#), now);
        s.on_auth(AuthResult::Accepted);
        let join = || frame(r#"{"event":"join","data":{"rooms":["a"]}}"#);
        assert!(matches!(s.on_frame(join(), now), Action::Join(_)));
        assert!(matches!(s.on_frame(join(), now), Action::Join(_)));
        assert!(matches!(
            s.on_frame(join(), now),
            Action::Error(ErrorMessage::RateLimited)
        ));
        assert!(matches!(
            s.on_frame(join(), now + Duration::from_secs(1)),
            Action::Join(_)
        ));
    }

    fn frame(s: &str) -> Result<Option<InboundFrame>, FrameError> {
        InboundFrame::parse(s.as_bytes(), &Limits::default())
    }

    fn authed(now: Instant) -> Session {
        let mut s = Session::new(now, T, &limits(4));
        assert!(matches!(
            s.on_frame(
                frame(r#"{"event":"authenticate","data":{"token":"t"}}"#),
                now
            ),
            Action::Authenticate(_)
        ));
        assert!(s.on_auth(AuthResult::Accepted).is_empty());
        s
    }

    #[test]
    fn unauthorized_client_may_only_authenticate() {
        let now = Instant::now();
        let mut s = Session::new(now, T, &limits(4));
        assert!(matches!(
            s.on_frame(frame(r#"{"event":"join","data":{"rooms":["a"]}}"#), now),
            Action::Error(ErrorMessage::NotAuthenticated)
        ));
        assert!(matches!(
            s.on_frame(frame(r#"{"event":"chat"}"#), now),
            Action::Error(ErrorMessage::NotAuthenticated)
        ));
        assert!(matches!(
            s.on_frame(frame(r#"{"event":"heartbeat"}"#), now),
            Action::Nothing
        ));
        assert!(matches!(
            s.on_frame(frame(r#"{"data":1}"#), now),
            Action::Nothing
        ));
        assert!(matches!(
            s.on_frame(frame("[]"), now),
            Action::Error(ErrorMessage::InvalidMessageFormat)
        ));
        match s.on_frame(frame(r#"{"event":"authenticate"}"#), now) {
            Action::Authenticate(data) => assert_eq!(data.get(), "null"),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.state(), ClientState::Authenticating);
    }

    #[test]
    fn auth_timeouts_initial_then_three_times() {
        let now = Instant::now();
        let mut s = Session::new(now, T, &limits(4));
        assert_eq!(s.on_tick(now + T - Duration::from_millis(1)), None);
        assert_eq!(s.on_tick(now + T), Some(CloseCode::AuthTimeout));
        assert_eq!(s.state(), ClientState::Disconnected);

        let mut s = Session::new(now, T, &limits(4));
        let later = now + Duration::from_secs(4);
        s.on_frame(frame(r#"{"event":"authenticate"}"#), later);
        assert_eq!(s.auth_deadline(), Some(later + T * 3));
        assert_eq!(s.on_tick(now + T), None, "the initial timer was replaced");
        assert_eq!(s.on_tick(later + T * 3), Some(CloseCode::AuthTimeout));
    }

    #[test]
    fn frames_during_auth_are_replayed_in_order() {
        let now = Instant::now();
        let mut s = Session::new(now, T, &limits(2));
        s.on_frame(frame(r#"{"event":"authenticate"}"#), now);
        assert!(matches!(
            s.on_frame(frame(r#"{"event":"join","data":{"rooms":["a"]}}"#), now),
            Action::Nothing
        ));
        assert!(matches!(
            s.on_frame(frame(r#"{"event":"chat"}"#), now),
            Action::Nothing
        ));
        assert!(matches!(
            s.on_frame(frame(r#"{"event":"third"}"#), now),
            Action::Error(ErrorMessage::NotAuthenticated)
        ));
        let replay: Vec<_> = s.on_auth(AuthResult::Accepted).into_iter().collect();
        assert_eq!(replay.len(), 2);
        let actions: Vec<_> = replay.into_iter().map(|f| s.on_frame(f, now)).collect();
        assert!(matches!(actions[0], Action::Join(_)));
        assert!(matches!(&actions[1], Action::Dispatch(f) if f.event == "chat"));
    }

    #[test]
    fn refused_auth_drops_pending_frames() {
        let now = Instant::now();
        let mut s = Session::new(now, T, &limits(4));
        s.on_frame(frame(r#"{"event":"authenticate"}"#), now);
        s.on_frame(frame(r#"{"event":"chat"}"#), now);
        assert!(
            s.on_auth(AuthResult::Refused(CloseCode::AuthFailed))
                .is_empty()
        );
        assert_eq!(s.state(), ClientState::Disconnected);
        assert!(matches!(
            s.on_frame(frame(r#"{"event":"chat"}"#), now),
            Action::Nothing
        ));
    }

    #[test]
    fn authenticated_routing() {
        let now = Instant::now();
        let mut s = authed(now);
        assert!(matches!(
            s.on_frame(frame(r#"{"event":"authenticate"}"#), now),
            Action::Error(ErrorMessage::AlreadyAuthenticated)
        ));
        assert!(matches!(
            s.on_frame(frame(r#"{"event":"join","data":{"rooms":[]}}"#), now),
            Action::Join(Some(_))
        ));
        assert!(matches!(
            s.on_frame(frame(r#"{"event":"leave"}"#), now),
            Action::Leave(None)
        ));
        for reserved in ["connected", "error", "encrypted", "disconnect", "heartbeat"] {
            let f = frame(&format!("{{\"event\":\"{reserved}\",\"data\":1}}"));
            assert!(matches!(s.on_frame(f, now), Action::Nothing), "{reserved}");
        }
        assert!(matches!(
            s.on_frame(frame(r#"{"event":"chat","data":1}"#), now),
            Action::Dispatch(_)
        ));
        assert_eq!(
            s.on_tick(now + T * 100),
            None,
            "no auth timer once authenticated"
        );
    }
}
