//! The per-connection outbound queue, bounded in bytes.
//!
//! Fan-out pushes into it without awaiting (a slow client never slows the publisher or its
//! neighbours); the connection's writer task drains everything queued in one go and flushes
//! once per batch.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use tokio::sync::Notify;

use crate::{
    crypto::v2,
    hub::{Outgoing, Run},
    protocol::CloseCode,
};

/// One queued item, in the order it goes out.
pub(crate) enum Queued {
    /// A message sent as it is: its complete frame is shared with every other plaintext
    /// receiver ([`Outgoing::wire`]), so queueing it writes one pointer, not the bytes.
    Frame(Arc<Outgoing>),
    /// Consecutive messages to one room sent as they are, shared by every plaintext member:
    /// one pointer (and one lock of this queue) for the whole run.
    Run(Arc<Run>),
    /// A complete frame of this client's own (the v2 server hello, `connected`).
    Own(Box<[u8]>),
    /// A message the writer passes through the client's sealer before sending.
    Seal(Arc<Outgoing>),
    /// A run of messages to seal, one by one, in order.
    SealRun(Arc<Run>),
    /// The connection's v2 sealer, handed to the writer once the handshake verified; every
    /// `Seal` after it is sealed with it. Queued with [`Outbox::push_control`], never dropped.
    Install(Box<v2::Sealer>),
}

impl Queued {
    /// A message as a client takes it: to seal, or sent as it is.
    pub(crate) fn message(msg: &Arc<Outgoing>, seal: bool) -> Self {
        if seal {
            Queued::Seal(msg.clone())
        } else {
            Queued::Frame(msg.clone())
        }
    }

    /// Whether the item is sent as it is (`Frame`, `Run`, `Own`): no sealing.
    pub(crate) fn is_ready(&self) -> bool {
        matches!(self, Queued::Frame(_) | Queued::Run(_) | Queued::Own(_))
    }

    /// Appends the complete frames of an item sent as it is; false (nothing appended) for
    /// items to seal or install.
    pub(crate) fn append_ready(&self, out: &mut Vec<u8>) -> bool {
        match self {
            Queued::Frame(m) => out.extend_from_slice(m.wire()),
            Queued::Run(run) => {
                for m in run.msgs() {
                    out.extend_from_slice(m.wire());
                }
            }
            Queued::Own(frame) => out.extend_from_slice(frame),
            Queued::Seal(_) | Queued::SealRun(_) | Queued::Install(_) => return false,
        }
        true
    }

    /// The frames the item puts on the wire.
    pub(crate) fn frames(&self) -> u64 {
        match self {
            Queued::Run(run) | Queued::SealRun(run) => run.msgs().len() as u64,
            Queued::Install(_) => 0,
            _ => 1,
        }
    }

    /// Bytes this item accounts for against the backpressure limit.
    fn cost(&self) -> usize {
        match self {
            Queued::Frame(m) => m.wire().len(),
            Queued::Run(run) => run.bytes(),
            Queued::Own(frame) => frame.len(),
            Queued::Seal(m) => sealed_cost(m),
            Queued::SealRun(run) => run.sealed_bytes(),
            Queued::Install(_) => 0,
        }
    }
}

/// What a message to seal accounts for: base64 of plaintext and tag, plus the wrapper.
pub(crate) fn sealed_cost(m: &Outgoing) -> usize {
    m.json().len() / 3 * 4 + 96
}

/// What [`Outbox::push_run`] did with a run's messages.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// Messages queued.
    pub(crate) queued: usize,
    /// Messages dropped for the byte limit.
    pub(crate) dropped: usize,
    /// The queue was empty before: the writer is owed a wake.
    pub(crate) first: bool,
}

impl Pushed {
    fn add(&mut self, push: Push, messages: usize) {
        match push {
            Push::First => {
                self.first = true;
                self.queued += messages;
            }
            Push::Queued => self.queued += messages,
            Push::Dropped => self.dropped += messages,
            Push::Closed => {}
        }
    }
}

/// What became of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// Queued for the writer, which was already owed a wake-up.
    Queued,
    /// Queued into an empty queue: the writer must be woken ([`Outbox::wake`]), now or when
    /// the fan-out batch ends.
    First,
    /// Dropped: the queue is over its byte limit (the client is marked backpressured).
    Dropped,
    /// The connection is closing; nothing more is sent.
    Closed,
}

struct State {
    items: Vec<Queued>,
    bytes: usize,
    close: Option<CloseCode>,
    closed: bool,
}

impl State {
    fn clear(&mut self) {
        self.items = Vec::new();
        self.bytes = 0;
    }
}

/// A byte-bounded queue with a single consumer (the connection task's writer).
pub(crate) struct Outbox {
    state: Mutex<State>,
    wake: Notify,
    backpressured: AtomicBool,
    dropped: AtomicU64,
    limit: usize,
    close_on_limit: bool,
}

impl Outbox {
    pub(crate) fn new(limit: usize, close_on_limit: bool) -> Self {
        Self {
            state: Mutex::new(State {
                items: Vec::new(),
                bytes: 0,
                close: None,
                closed: false,
            }),
            wake: Notify::new(),
            backpressured: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            limit,
            close_on_limit,
        }
    }

    /// Queues an item unless that would take the queue past its byte limit, and wakes the
    /// writer.
    pub(crate) fn push(&self, item: Queued) -> Push {
        let push = self.push_quiet(item);
        if push == Push::First {
            self.wake();
        }
        push
    }

    /// Wakes the writer (owed after a [`Push::First`]). A stored permit covers a writer that
    /// is not waiting yet; the writer drains everything each time it wakes, so one wake per
    /// batch is enough.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// [`Outbox::push`] without the wake: the caller wakes the writer on [`Push::First`] (the
    /// fan-out does, once per receiver per batch; see `hub::Cork`).
    pub(crate) fn push_quiet(&self, item: Queued) -> Push {
        let Ok(mut state) = self.state.lock() else {
            return Push::Closed;
        };
        self.admit(&mut state, item)
    }

    /// Queues a run of messages, sent as they are or (`seal`) through the client's sealer,
    /// under one lock: as one item when it fits under the byte limit, else message by
    /// message, so only what overflows is dropped. Like [`Outbox::push_quiet`], the caller
    /// owes the wake on [`Pushed::first`].
    pub(crate) fn push_run(&self, run: &Arc<Run>, seal: bool) -> Pushed {
        let mut pushed = Pushed::default();
        let Ok(mut state) = self.state.lock() else {
            return pushed;
        };
        let n = run.msgs().len();
        let cost = if seal {
            run.sealed_bytes()
        } else {
            run.bytes()
        };
        if state.bytes + cost <= self.limit || (n == 1 && state.items.is_empty()) {
            let item = if seal {
                Queued::SealRun(run.clone())
            } else {
                Queued::Run(run.clone())
            };
            pushed.add(self.admit(&mut state, item), n);
        } else {
            for m in run.msgs() {
                pushed.add(self.admit(&mut state, Queued::message(m, seal)), 1);
            }
        }
        pushed
    }

    /// Queues `item` unless the queue is closing or the byte limit refuses it.
    fn admit(&self, state: &mut State, item: Queued) -> Push {
        if state.closed || state.close.is_some() {
            return Push::Closed;
        }
        let cost = item.cost();
        // An empty queue always takes one item, so a single large frame still goes out.
        let was_empty = state.items.is_empty();
        if !was_empty && state.bytes + cost > self.limit {
            self.backpressured.store(true, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if self.close_on_limit {
                state.clear();
                state.close = Some(CloseCode::PolicyViolation);
                // The writer takes this lock only to swap the queue; waking it here is safe.
                self.wake();
            }
            return Push::Dropped;
        }
        state.bytes += cost;
        state.items.push(item);
        if was_empty { Push::First } else { Push::Queued }
    }

    /// Queues a control item (the v2 sealer) regardless of the byte limit: losing it would
    /// leave the writer unable to seal. Returns false if the connection is closing.
    pub(crate) fn push_control(&self, item: Queued) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        if state.closed || state.close.is_some() {
            return false;
        }
        state.items.push(item);
        drop(state);
        self.wake();
        true
    }

    /// Asks the writer to send a close frame after what is already queued. The first request wins.
    pub(crate) fn close(&self, code: CloseCode) {
        if let Ok(mut state) = self.state.lock()
            && state.close.is_none()
            && !state.closed
        {
            state.close = Some(code);
        }
        self.wake();
    }

    /// The peer sent a close frame: drop what is queued and let the writer answer it (the
    /// WebSocket layer echoes the peer's code when the writer flushes).
    pub(crate) fn close_by_peer(&self) {
        if let Ok(mut state) = self.state.lock()
            && !state.closed
        {
            state.clear();
            state.close = Some(CloseCode::Normal);
        }
        self.wake();
    }

    /// Marks the connection gone: nothing more is queued or sent.
    pub(crate) fn shut(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.closed = true;
            state.clear();
        }
        self.wake();
    }

    /// Moves everything queued into `batch`, which the writer left empty: the two lists are
    /// swapped, so their allocations alternate and steady traffic allocates nothing. Returns
    /// the close request, if any, once the queue is empty. Waits when there is nothing to do.
    pub(crate) async fn next_batch(&self, batch: &mut Vec<Queued>) -> Next {
        loop {
            {
                let Ok(mut state) = self.state.lock() else {
                    return Next::Stop;
                };
                if state.closed {
                    return Next::Stop;
                }
                if !state.items.is_empty() {
                    std::mem::swap(&mut state.items, batch);
                    state.bytes = 0;
                    return Next::Frames;
                }
                if let Some(code) = state.close {
                    state.closed = true;
                    return Next::Close(code);
                }
            }
            self.wake.notified().await;
        }
    }

    /// Called by the writer after a batch is written with nothing left queued.
    pub(crate) fn drained(&self) {
        let empty = self
            .state
            .lock()
            .map(|s| s.items.is_empty())
            .unwrap_or(true);
        if empty {
            self.backpressured.store(false, Ordering::Relaxed);
        }
    }

    /// The spec's `backpressured` flag: set when a frame was dropped for the byte limit,
    /// cleared when the writer drains the queue.
    pub(crate) fn is_backpressured(&self) -> bool {
        self.backpressured.load(Ordering::Relaxed)
    }

    /// Frames dropped for the byte limit since the connection opened.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Bytes queued and not yet taken by the writer.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.state.lock().map(|s| s.bytes).unwrap_or(0)
    }
}

/// What the writer does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Frames were moved into the batch.
    Frames,
    /// Send this close frame, then stop.
    Close(CloseCode),
    /// The connection is gone; stop.
    Stop,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Queued {
        Queued::Own(vec![b'x'; n].into_boxed_slice())
    }

    #[tokio::test]
    async fn bounded_in_bytes_with_backpressure_flag() {
        let outbox = Outbox::new(100, false);
        assert_eq!(outbox.push(frame(60)), Push::First);
        assert_eq!(outbox.push(frame(40)), Push::Queued);
        assert_eq!(outbox.queued_bytes(), 100);
        assert_eq!(outbox.push(frame(1)), Push::Dropped);
        assert!(outbox.is_backpressured());
        assert_eq!(outbox.dropped(), 1);
        let mut batch = Vec::new();
        assert_eq!(outbox.next_batch(&mut batch).await, Next::Frames);
        assert_eq!(batch.len(), 2);
        outbox.drained();
        assert!(!outbox.is_backpressured());
        assert_eq!(outbox.push(frame(1)), Push::First);
    }

    #[tokio::test]
    async fn one_oversized_frame_goes_out_alone() {
        let outbox = Outbox::new(10, false);
        assert_eq!(outbox.push(frame(50)), Push::First);
        assert_eq!(outbox.push(frame(1)), Push::Dropped);
    }

    #[tokio::test]
    async fn close_on_limit_closes_with_policy_violation() {
        let outbox = Outbox::new(10, true);
        assert_eq!(outbox.push(frame(10)), Push::First);
        assert_eq!(outbox.push(frame(10)), Push::Dropped);
        assert_eq!(outbox.push(frame(1)), Push::Closed);
        let mut batch = Vec::new();
        assert_eq!(
            outbox.next_batch(&mut batch).await,
            Next::Close(CloseCode::PolicyViolation)
        );
        assert!(batch.is_empty());
    }

    #[tokio::test]
    async fn close_is_sent_after_queued_frames() {
        let outbox = Outbox::new(1000, false);
        outbox.push(frame(3));
        outbox.close(CloseCode::GoingAway);
        outbox.close(CloseCode::HeartbeatTimeout);
        let mut batch = Vec::new();
        assert_eq!(outbox.next_batch(&mut batch).await, Next::Frames);
        batch.clear();
        assert_eq!(
            outbox.next_batch(&mut batch).await,
            Next::Close(CloseCode::GoingAway)
        );
        assert_eq!(outbox.next_batch(&mut batch).await, Next::Stop);
    }

    /// A quiet push owes exactly one wake per batch: the first push into an empty queue.
    #[tokio::test]
    async fn only_the_first_push_of_a_batch_owes_a_wake() {
        let outbox = Outbox::new(1000, false);
        assert_eq!(outbox.push_quiet(frame(1)), Push::First);
        assert_eq!(outbox.push_quiet(frame(1)), Push::Queued);
        let mut batch = Vec::new();
        assert_eq!(outbox.next_batch(&mut batch).await, Next::Frames);
        assert_eq!(outbox.push_quiet(frame(1)), Push::First);
    }
    /// A message whose frame is `n` bytes or a little more.
    fn message(n: usize) -> Arc<Outgoing> {
        let data = serde_json::value::RawValue::from_string(format!("\"{}\"", "x".repeat(n)));
        Outgoing::new("m", data.unwrap())
    }

    #[tokio::test]
    async fn a_run_that_fits_is_one_item() {
        let outbox = Outbox::new(10_000, false);
        let run = Run::new((0..3).map(|_| message(100)).collect());
        let pushed = outbox.push_run(&run, false);
        assert_eq!((pushed.queued, pushed.dropped, pushed.first), (3, 0, true));
        assert_eq!(outbox.queued_bytes(), run.bytes());
        let mut batch = Vec::new();
        assert_eq!(outbox.next_batch(&mut batch).await, Next::Frames);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].frames(), 3);
        let mut wire = Vec::new();
        assert!(batch[0].append_ready(&mut wire));
        assert_eq!(wire.len(), run.bytes());
    }

    #[tokio::test]
    async fn a_run_over_the_limit_goes_message_by_message() {
        let one = message(100).wire().len();
        let outbox = Outbox::new(2 * one + one / 2, false);
        assert_eq!(outbox.push(Queued::Frame(message(100))), Push::First);
        let run = Run::new((0..3).map(|_| message(100)).collect());
        let pushed = outbox.push_run(&run, false);
        // One more fits; the other two are dropped, as they would be one at a time.
        assert_eq!((pushed.queued, pushed.dropped, pushed.first), (1, 2, false));
        assert_eq!(outbox.dropped(), 2);
        assert!(outbox.is_backpressured());
        let mut batch = Vec::new();
        assert_eq!(outbox.next_batch(&mut batch).await, Next::Frames);
        assert_eq!(batch.iter().map(Queued::frames).sum::<u64>(), 2);
        // A closing queue takes nothing.
        outbox.close(CloseCode::GoingAway);
        assert_eq!(outbox.push_run(&run, false), Pushed::default());
    }
}
