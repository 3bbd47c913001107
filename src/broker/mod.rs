//! Brokers carry [`Envelope`]s between server instances and from emitters to servers.
//!
//! [`MemoryBroker`] is the embedded default (one process, or several servers in one process,
//! which is how the tests run "instances"); the Redis broker scales out across processes.
//! A server publishes every cross-instance send and receives every envelope through an inbox
//! it owns; it drops its own envelopes (self-dedup by server id) and envelopes whose channel
//! and type disagree.
//!
#![doc = include_str!("../../docs/scale-out.md")]

use std::{future::Future, pin::Pin, sync::Arc};

use tokio::sync::mpsc;

use crate::protocol::{Channel, Envelope};

mod memory;
mod redis;
mod signing;

pub use self::redis::{RedisBroker, RedisConfig, RedisStats, SubscriptionMode};
pub use self::signing::{MIN_SIGNING_KEY_BYTES, SigningKey, SigningKeyTooShort};
pub use memory::MemoryBroker;

/// A boxed, sendable future, as the dyn-compatible broker methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An envelope received from the bus, with the channel it arrived on.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The channel name the envelope arrived on.
    pub channel: Arc<str>,
    /// The envelope.
    pub envelope: Arc<Envelope>,
}

/// What can go wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The bus cannot be reached now (the publish is counted and logged by the broker).
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker was shut down.
    #[error("broker is shut down")]
    Closed,
    /// A configuration problem (bad URL, bad key).
    #[error("broker configuration: {0}")]
    Config(String),
}

/// Carries envelopes between instances.
///
/// Implementations must be cheap to share (`Arc<dyn Broker>`); every method may be called
/// concurrently.
pub trait Broker: Send + Sync + 'static {
    /// Publishes `envelope` on its channel ([`Envelope::channel`]).
    fn publish(&self, envelope: Arc<Envelope>) -> BoxFuture<'_, Result<(), BrokerError>>;

    /// Starts delivering envelopes into `inbox`. A server calls this once; the returned
    /// [`Subscription`] lets it declare interest and stop.
    fn subscribe(
        &self,
        inbox: mpsc::Sender<Delivery>,
    ) -> BoxFuture<'_, Result<Box<dyn Subscription>, BrokerError>>;

    /// Whether the bus is reachable now (for readiness probes).
    fn is_ready(&self) -> bool {
        true
    }

    /// Releases connections. Publishing afterwards fails with [`BrokerError::Closed`].
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// One server's subscription to the bus.
///
/// The hub calls [`watch`](Subscription::watch) when a room, user or client gets its first local
/// member and [`unwatch`](Subscription::unwatch) when the last one leaves, so interest-based
/// brokers can subscribe to exactly the channels this instance has an audience for. These calls
/// never block: they may be made while the hub holds its index lock.
pub trait Subscription: Send + Sync {
    /// This instance now has a local member for `channel`.
    fn watch(&self, channel: &Channel) {
        let _ = channel;
    }
    /// This instance no longer has a local member for `channel`.
    fn unwatch(&self, channel: &Channel) {
        let _ = channel;
    }
    /// Every client id this instance assigns starts with `prefix`. A subscription that can
    /// receive every `ws:client:{id}` and `ws:room:{id}` channel under it at once (one pattern
    /// each, say) does so and returns true: the hub then does not watch a client's own
    /// channels one by one, and the subscription must itself ignore watches of channels the
    /// prefix covers (a room named after a client id), so nothing arrives twice. Defaults to
    /// false: every channel is watched on its own.
    fn watch_own_ids(&self, prefix: &str) -> bool {
        let _ = prefix;
        false
    }
    /// Stops delivering into the inbox.
    fn close(&self);
}
