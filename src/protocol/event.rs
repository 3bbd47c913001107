//! System event names.

/// The events the protocol reserves. Application events are any other string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemEvent {
    /// Client → server: credentials (and, for encryption, a public key).
    Authenticate,
    /// Server → client: authentication succeeded.
    Connected,
    /// Connection closing.
    Disconnect,
    /// Client → server: join rooms.
    Join,
    /// Client → server: leave rooms.
    Leave,
    /// Server → client: an error notification `{message}`.
    Error,
    /// Client → server: keep-alive.
    Heartbeat,
    /// Either direction: a sealed message.
    Encrypted,
}

impl SystemEvent {
    /// Every system event.
    pub const ALL: [SystemEvent; 8] = [
        Self::Authenticate,
        Self::Connected,
        Self::Disconnect,
        Self::Join,
        Self::Leave,
        Self::Error,
        Self::Heartbeat,
        Self::Encrypted,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Authenticate => "authenticate",
            Self::Connected => "connected",
            Self::Disconnect => "disconnect",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Error => "error",
            Self::Heartbeat => "heartbeat",
            Self::Encrypted => "encrypted",
        }
    }

    /// The system event with this wire name, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in SystemEvent::ALL {
            assert_eq!(SystemEvent::from_name(e.as_str()), Some(e));
        }
        assert_eq!(SystemEvent::from_name("chat"), None);
        assert_eq!(SystemEvent::from_name("Authenticate"), None);
    }
}
