//! Validated room names.

use std::{fmt, sync::Arc};

/// Longest room name, counted in characters (Unicode scalar values, not UTF-16 units).
pub const MAX_ROOM_NAME_CHARS: usize = 256;
/// Prefix reserved for Redis channel names; no room may start with it.
pub const RESERVED_PREFIX: &str = "ws:";

/// A room name that passed the spec's rules: non-empty, at most [`MAX_ROOM_NAME_CHARS`]
/// characters, not starting with [`RESERVED_PREFIX`]. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(Arc<str>);

/// Why a string is not a room name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    /// The name is empty.
    #[error("room name is empty")]
    Empty,
    /// The name has more than [`MAX_ROOM_NAME_CHARS`] characters.
    #[error("room name is longer than {MAX_ROOM_NAME_CHARS} characters")]
    TooLong,
    /// The name starts with the reserved `ws:` prefix.
    #[error("room name starts with the reserved prefix `ws:`")]
    Reserved,
}

impl RoomName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, RoomNameError> {
        if name.is_empty() {
            return Err(RoomNameError::Empty);
        }
        // Cheap bound first: a string of at most 256 bytes has at most 256 characters.
        if name.len() > MAX_ROOM_NAME_CHARS && name.chars().count() > MAX_ROOM_NAME_CHARS {
            return Err(RoomNameError::TooLong);
        }
        if name.starts_with(RESERVED_PREFIX) {
            return Err(RoomNameError::Reserved);
        }
        Ok(Self(Arc::from(name)))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RoomName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for RoomName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for RoomName {
    type Error = RoomNameError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<String> for RoomName {
    type Error = RoomNameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(RoomName::new(""), Err(RoomNameError::Empty));
        assert_eq!(RoomName::new("ws:room:x"), Err(RoomNameError::Reserved));
        assert_eq!(RoomName::new("ws:"), Err(RoomNameError::Reserved));
        assert!(RoomName::new("ws").is_ok());
        assert!(RoomName::new("WS:upper").is_ok());
        assert!(RoomName::new(&"a".repeat(256)).is_ok());
        assert_eq!(RoomName::new(&"a".repeat(257)), Err(RoomNameError::TooLong));
    }

    #[test]
    fn length_counts_characters_not_utf16_units() {
        // 256 emoji are 512 UTF-16 units and 1024 bytes, but 256 characters.
        let emoji = "🔥".repeat(256);
        assert!(RoomName::new(&emoji).is_ok());
        assert_eq!(
            RoomName::new(&"🔥".repeat(257)),
            Err(RoomNameError::TooLong)
        );
        let accented = "é".repeat(256);
        assert!(RoomName::new(&accented).is_ok());
    }
}
