//! One connection: a pure protocol state machine (`state`), the encryption v2 record channel
//! (`channel`, also pure), a byte-bounded outbound queue (`outbox`) and the task that does the
//! socket I/O and timers (`task`: once the handshake is done, it reads the socket and writes
//! all but what the fan-out writes itself to a parked writer's socket), the WebSocket over the
//! stream (`socket`), the stream itself and the line the task and the fan-out share on it
//! (`transport`), and the outbound framing the fan-out and the writer share (`wire`).

mod channel;
mod outbox;
mod rate;
mod socket;
pub(crate) mod state;
mod task;
mod transport;
pub(crate) mod wire;

pub(crate) use outbox::{Outbox, Push, Queued, sealed_cost};
pub(crate) use socket::{Socket, SocketConfig};
pub use state::ClientState;
pub(crate) use task::run;
#[cfg(test)]
pub(crate) use task::run_future_size;
pub(crate) use transport::{Line, LineIo, Transport};
