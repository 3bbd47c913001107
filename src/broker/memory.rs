//! The in-process broker: the embedded default and the multi-instance test fixture.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use tokio::sync::mpsc;

use super::{BoxFuture, Broker, BrokerError, Delivery, Subscription};
use crate::protocol::Envelope;

/// Delivers every published envelope to every subscribed server in this process.
///
/// Clone it (it is an `Arc` inside) and hand the clones to several servers to run them as
/// separate instances of one deployment.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    // std Mutex: held only to copy the sender list, never across an await.
    subscribers: Mutex<Vec<(u64, mpsc::Sender<Delivery>)>>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

impl MemoryBroker {
    /// A broker with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the broker for every holder: publishes fail with [`BrokerError::Closed`] and
    /// subscribers stop receiving.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        if let Ok(mut subs) = self.inner.subscribers.lock() {
            subs.clear();
        }
    }

    /// How many servers are subscribed.
    pub fn subscriber_count(&self) -> usize {
        self.inner.subscribers.lock().map(|s| s.len()).unwrap_or(0)
    }
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker")
            .field("subscribers", &self.subscriber_count())
            .finish()
    }
}

impl Broker for MemoryBroker {
    fn publish(&self, envelope: Arc<Envelope>) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move {
            if self.inner.closed.load(Ordering::Acquire) {
                return Err(BrokerError::Closed);
            }
            let senders: Vec<_> = match self.inner.subscribers.lock() {
                Ok(subs) => subs.iter().map(|(_, tx)| tx.clone()).collect(),
                Err(_) => return Err(BrokerError::Closed),
            };
            let channel: Arc<str> = envelope.channel().name().into();
            for tx in senders {
                // Awaiting applies backpressure to the publisher instead of dropping; a
                // subscriber that went away is skipped.
                let _ = tx
                    .send(Delivery {
                        channel: channel.clone(),
                        envelope: envelope.clone(),
                    })
                    .await;
            }
            Ok(())
        })
    }

    fn subscribe(
        &self,
        inbox: mpsc::Sender<Delivery>,
    ) -> BoxFuture<'_, Result<Box<dyn Subscription>, BrokerError>> {
        Box::pin(async move {
            if self.inner.closed.load(Ordering::Acquire) {
                return Err(BrokerError::Closed);
            }
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut subs) = self.inner.subscribers.lock() {
                subs.push((id, inbox));
            }
            Ok(Box::new(MemorySubscription {
                id,
                inner: self.inner.clone(),
            }) as Box<dyn Subscription>)
        })
    }

    /// A no-op: several servers may share one memory broker, and each one's shutdown only
    /// closes its own subscription. Use [`MemoryBroker::close`] to stop the broker itself.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

struct MemorySubscription {
    id: u64,
    inner: Arc<Inner>,
}

impl Subscription for MemorySubscription {
    fn close(&self) {
        if let Ok(mut subs) = self.inner.subscribers.lock() {
            subs.retain(|(id, _)| *id != self.id);
        }
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MessageType;

    fn envelope(server: &str) -> Arc<Envelope> {
        Arc::new(Envelope {
            server_id: server.into(),
            kind: MessageType::Room,
            target: Some("r".into()),
            event: "e".into(),
            data: None,
            exclude: None,
        })
    }

    #[tokio::test]
    async fn every_subscriber_receives_every_envelope_once() {
        let broker = MemoryBroker::new();
        let (tx1, mut rx1) = mpsc::channel(8);
        let (tx2, mut rx2) = mpsc::channel(8);
        let s1 = broker.subscribe(tx1).await.unwrap();
        let _s2 = broker.subscribe(tx2).await.unwrap();
        broker.publish(envelope("a")).await.unwrap();
        assert_eq!(&*rx1.recv().await.unwrap().channel, "ws:room:r");
        assert_eq!(rx2.recv().await.unwrap().envelope.server_id, "a");
        assert!(rx1.try_recv().is_err());
        s1.close();
        assert_eq!(broker.subscriber_count(), 1);
        broker.shutdown().await;
        assert!(
            broker.publish(envelope("a")).await.is_ok(),
            "shutdown leaves a shared broker running"
        );
        broker.close();
        assert!(matches!(
            broker.publish(envelope("a")).await,
            Err(BrokerError::Closed)
        ));
    }
}
