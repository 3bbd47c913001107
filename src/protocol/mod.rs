//! The wire format, with no I/O: the reading of WebSocket client frames (`websocket`), inbound
//! frame parsing with limits, outbound encoding done once per message, system events, close
//! codes and the spec's exact error strings, validated room names, the Redis envelope with its
//! channel names, and the replies a Redis pub/sub connection reads (`resp`).
//!
//! Nothing here imports tokio, axum or redis (a test in this module checks it), so the parser can
//! be fuzzed and unit-tested on its own.

mod close;
mod envelope;
mod event;
mod frame;
mod limits;
pub mod resp;
mod room;
pub mod websocket;

pub use close::{CloseCode, ErrorMessage};
pub use envelope::{Channel, EMITTER_SERVER_ID, Envelope, EnvelopeError, MessageType};
pub use event::SystemEvent;
pub use frame::{
    FrameError, InboundFrame, encode_frame, encode_system, encode_system_into, json_depth_within,
    null_raw,
};
pub use limits::Limits;
pub use room::{MAX_ROOM_NAME_CHARS, RESERVED_PREFIX, RoomName, RoomNameError};

#[cfg(test)]
mod purity {
    /// `protocol/` and `crypto/` must stay free of I/O crates so they can be fuzzed and
    /// reasoned about alone.
    #[test]
    fn protocol_and_crypto_import_no_io_crates() {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut checked = 0;
        let mut dirs = vec![
            std::path::PathBuf::from(format!("{root}/src/protocol")),
            std::path::PathBuf::from(format!("{root}/src/crypto")),
        ];
        let mut files = Vec::new();
        // Walk subdirectories too (`crypto/v2/`).
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("source dir") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        for path in files {
            let text = std::fs::read_to_string(&path).expect("source file");
            for banned in ["tokio", "axum", "redis", "tungstenite", "hyper"] {
                for line in text.lines() {
                    let code = line.trim_start();
                    if code.starts_with("//") || code.contains("\"tokio\"") {
                        continue;
                    }
                    assert!(
                        !(code.contains(&format!("use {banned}"))
                            || code.contains(&format!("{banned}::"))),
                        "{} imports {banned}: {line}",
                        path.display()
                    );
                }
            }
            checked += 1;
        }
        assert!(
            checked >= 6,
            "expected the protocol sources, found {checked}"
        );
    }
}
