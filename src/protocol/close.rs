//! Close codes and the exact error strings of the spec.

/// Why the server closes a connection, with the code and reason it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: normal closure (the application closed the client).
    Normal,
    /// 1001: the server is shutting down, or the transport went idle.
    GoingAway,
    /// 1002: the client's bytes broke the WebSocket protocol (RFC 6455).
    ProtocolError,
    /// 1007: a text message or close reason was not UTF-8.
    InvalidPayload,
    /// 1008: a policy was violated (backpressure limit, rate limit).
    PolicyViolation,
    /// 1009: a frame exceeded the maximum payload length.
    MessageTooBig,
    /// 1013: the server is at a capacity limit (too many authentications in progress).
    TryAgainLater,
    /// 4001: no `authenticate` within `auth_timeout`, or authentication took longer than three times it.
    AuthTimeout,
    /// 4002: no frame within `heartbeat_timeout`.
    HeartbeatTimeout,
    /// 4003: the authenticate hook rejected the client or failed.
    AuthFailed,
    /// 4004: encryption is required and the handshake failed or is unavailable.
    EncryptionRequired,
}

impl CloseCode {
    /// The numeric code sent in the close frame.
    pub const fn code(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::GoingAway => 1001,
            Self::ProtocolError => 1002,
            Self::InvalidPayload => 1007,
            Self::PolicyViolation => 1008,
            Self::MessageTooBig => 1009,
            Self::TryAgainLater => 1013,
            Self::AuthTimeout => 4001,
            Self::HeartbeatTimeout => 4002,
            Self::AuthFailed => 4003,
            Self::EncryptionRequired => 4004,
        }
    }

    /// The reason text sent in the close frame.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Normal => "Closed",
            Self::GoingAway => "Server shutting down",
            Self::ProtocolError => "Protocol error",
            Self::InvalidPayload => "Invalid frame payload data",
            Self::PolicyViolation => "Policy violation",
            Self::MessageTooBig => "Message too big",
            Self::TryAgainLater => "Try again later",
            Self::AuthTimeout => "Authentication timeout",
            Self::HeartbeatTimeout => "Heartbeat timeout",
            Self::AuthFailed => "Authentication failed",
            Self::EncryptionRequired => "Encryption required",
        }
    }
}

/// The `message` strings of `error` events, exactly as the spec spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorMessage {
    /// The frame was not a JSON object with a string `event`, or its payload had the wrong shape.
    InvalidMessageFormat,
    /// A non-`authenticate` event from a client that is not authenticated.
    NotAuthenticated,
    /// A second `authenticate` from an authenticated client.
    AlreadyAuthenticated,
    /// The authenticate hook rejected the credentials (followed by close 4003).
    AuthenticationFailed,
    /// The authenticate hook failed (followed by close 4003).
    AuthenticationError,
    /// The encryption handshake failed (followed by close 4004).
    EncryptionHandshakeFailed,
    /// The client sends faster than its frame budget allows.
    RateLimited,
}

impl ErrorMessage {
    /// The exact wire string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidMessageFormat => "Invalid message format",
            Self::NotAuthenticated => "Not authenticated",
            Self::AlreadyAuthenticated => "Already authenticated",
            Self::AuthenticationFailed => "Authentication failed",
            Self::AuthenticationError => "Authentication error",
            Self::EncryptionHandshakeFailed => "Encryption handshake failed",
            Self::RateLimited => "Rate limit exceeded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_spec() {
        assert_eq!(CloseCode::GoingAway.code(), 1001);
        assert_eq!(CloseCode::AuthTimeout.code(), 4001);
        assert_eq!(CloseCode::HeartbeatTimeout.code(), 4002);
        assert_eq!(CloseCode::AuthFailed.code(), 4003);
        assert_eq!(CloseCode::EncryptionRequired.code(), 4004);
        assert_eq!(CloseCode::MessageTooBig.code(), 1009);
    }

    #[test]
    fn strings_match_the_spec() {
        assert_eq!(
            ErrorMessage::InvalidMessageFormat.as_str(),
            "Invalid message format"
        );
        assert_eq!(ErrorMessage::NotAuthenticated.as_str(), "Not authenticated");
        assert_eq!(
            ErrorMessage::AlreadyAuthenticated.as_str(),
            "Already authenticated"
        );
        assert_eq!(
            ErrorMessage::AuthenticationFailed.as_str(),
            "Authentication failed"
        );
        assert_eq!(
            ErrorMessage::AuthenticationError.as_str(),
            "Authentication error"
        );
        assert_eq!(
            ErrorMessage::EncryptionHandshakeFailed.as_str(),
            "Encryption handshake failed"
        );
    }
}
