//! The per-connection outbound queue, bounded in bytes.
//!
//! Fan-out pushes into it without awaiting (a slow client never slows the publisher or its
//! neighbours); the connection's writer task drains everything queued in one go and flushes
//! once per batch. When the task has nothing in hand (it waits on the queue), the fan-out
//! writes what it queued to the client's socket itself ([`Outbox::write_direct`]) and the
//! task is not woken at all.

use std::{
    cell::RefCell,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use tokio::sync::Notify;

use super::transport::{Line, Wrote};
use crate::{
    crypto::v2,
    hub::{Outgoing, Run},
    protocol::CloseCode,
    server::metrics::Counters,
};

thread_local! {
    /// Where a worker thread assembles plaintext bytes for a socket: one buffer per thread,
    /// hot in cache, that every connection's writer on the thread fills and hands to its
    /// socket in turn, and that the fan-out fills with the queues it writes itself
    /// ([`Outbox::write_direct`]).
    pub(super) static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A direct write leaves [`SCRATCH`] no larger than this.
const RETAINED_DIRECT: usize = 64 * 1024;

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
            Queued::Run(run) => out.extend_from_slice(run.wire()),
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
            Push::Queued | Push::Written => self.queued += messages,
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
    /// Written to the socket by the fan-out itself ([`Outbox::write_or_push`]): the writer
    /// is owed nothing.
    Written,
    /// Queued into an empty queue, or written by [`Outbox::write_or_push`] with a tail the
    /// socket did not take: the writer must be woken ([`Outbox::wake`]), now or when the
    /// fan-out batch ends.
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
    /// The writer waits on this queue with nothing in hand: everything it took is written
    /// (or stranded in the line, which writes it first). Set by [`Outbox::next_batch`] as it
    /// waits, cleared when it hands the writer anything. Only while it is set may the fan-out
    /// write to the socket itself.
    parked: bool,
    /// The socket the fan-out may write to itself, and where it counts the frames it writes;
    /// `None` for hyper's upgraded connections, and once the queue is shut (the socket then
    /// closes with the connection's task).
    line: Option<(Arc<Line>, Arc<Counters>)>,
}

impl State {
    /// The line the fan-out may write to now, and where it counts what it writes: the
    /// writer parked, no close asked for, no tail waiting in the line.
    fn open_line(&self) -> Option<(&Line, &Counters)> {
        if !self.parked || self.close.is_some() || self.closed {
            return None;
        }
        match &self.line {
            Some((line, counters)) if !line.has_stranded() => Some((line, counters)),
            _ => None,
        }
    }

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
                parked: false,
                line: None,
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

    /// Lets the fan-out write to `line` itself while the writer is parked, counting the
    /// frames it writes in `counters`.
    pub(crate) fn attach_line(&self, line: Arc<Line>, counters: Arc<Counters>) {
        if let Ok(mut state) = self.state.lock()
            && !state.closed
        {
            state.line = Some((line, counters));
        }
    }

    /// The fan-out's write, in place of a wake owed after [`Push::First`]: when the writer is
    /// parked and everything queued is sent as it is, the queue is written to the socket here
    /// and now, under the queue's lock (so nothing queued later can overtake it). Returns
    /// false when the writer must be woken instead: no line, the writer busy, frames to seal,
    /// a close requested, an earlier tail still waiting, the socket failed, or a tail of this
    /// write stranded (the writer then flushes it, under its write timeout).
    pub(crate) fn write_direct(&self) -> bool {
        let Ok(mut guard) = self.state.lock() else {
            return false;
        };
        let state = &mut *guard;
        let Some((line, counters)) = state.open_line() else {
            return false;
        };
        if state.items.is_empty() || !state.items.iter().all(Queued::is_ready) {
            return false;
        }
        let wrote = match state.items.as_slice() {
            // The usual single message or run: its shared frames as they are, no copy.
            [Queued::Frame(m)] => line.try_write(m.wire()),
            [Queued::Run(run)] => line.try_write(run.wire()),
            items => SCRATCH.with(|scratch| {
                // The thread's writer holds it (never while it fans out): leave it the queue.
                let Ok(mut buf) = scratch.try_borrow_mut() else {
                    return Ok(Wrote::Blocked);
                };
                buf.clear();
                for item in items {
                    item.append_ready(&mut buf);
                }
                let wrote = line.try_write(&buf);
                buf.clear();
                if buf.capacity() > RETAINED_DIRECT {
                    *buf = Vec::new();
                }
                wrote
            }),
        };
        // Nothing written (blocked, or the socket failed): the writer takes the queue as before.
        let Ok(wrote @ (Wrote::All | Wrote::Stranded)) = wrote else {
            return false;
        };
        self.wrote_direct(counters, state.items.iter().map(Queued::frames).sum());
        state.items.clear();
        state.bytes = 0;
        // A stranded tail is the writer's to flush.
        wrote == Wrote::All
    }

    /// Counts `frames` the fan-out wrote itself; the queue is drained.
    fn wrote_direct(&self, counters: &Counters, frames: u64) {
        Counters::add(&counters.frames_out, frames);
        self.backpressured.store(false, Ordering::Relaxed);
    }

    /// The fan-out's push of one message under a direct cork (a burst of a few messages):
    /// written to the socket here and now when the writer is parked with nothing queued
    /// ([`Push::Written`]; one lock and one `send`, nothing queued or woken), else queued as
    /// [`Outbox::push_quiet`] queues it.
    pub(crate) fn write_or_push(&self, msg: &Arc<Outgoing>, seal: bool) -> Push {
        let Ok(mut guard) = self.state.lock() else {
            return Push::Closed;
        };
        if !seal && let Some(push) = self.write_now(&mut guard, msg.wire(), 1) {
            return push;
        }
        self.admit(&mut guard, Queued::message(msg, seal))
    }

    /// [`Outbox::write_or_push`] for a run: its joined frames in one `send` when the writer
    /// is parked with nothing queued, else queued as [`Outbox::push_run`] queues it.
    pub(crate) fn write_or_push_run(&self, run: &Arc<Run>, seal: bool) -> Pushed {
        let Ok(mut guard) = self.state.lock() else {
            return Pushed::default();
        };
        let n = run.msgs().len();
        if !seal && let Some(push) = self.write_now(&mut guard, run.wire(), n as u64) {
            let mut pushed = Pushed::default();
            pushed.add(push, n);
            return pushed;
        }
        self.admit_run(&mut guard, run, seal)
    }

    /// Writes `bytes` (`frames` whole frames) to the line when the queue is empty and the
    /// line open: [`Push::Written`], or [`Push::First`] when the socket left a tail for the
    /// writer to flush. `None` when nothing was written (blocked, or the socket failed): the
    /// caller queues instead, for the writer.
    fn write_now(&self, state: &mut State, bytes: &[u8], frames: u64) -> Option<Push> {
        if !state.items.is_empty() {
            return None;
        }
        let (line, counters) = state.open_line()?;
        let wrote @ (Wrote::All | Wrote::Stranded) = line.try_write(bytes).ok()? else {
            return None;
        };
        self.wrote_direct(counters, frames);
        // A stranded tail is the writer's to flush.
        Some(if wrote == Wrote::All {
            Push::Written
        } else {
            Push::First
        })
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
        let Ok(mut state) = self.state.lock() else {
            return Pushed::default();
        };
        self.admit_run(&mut state, run, seal)
    }

    /// [`Outbox::push_run`] under the queue's lock.
    fn admit_run(&self, state: &mut State, run: &Arc<Run>, seal: bool) -> Pushed {
        let mut pushed = Pushed::default();
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
            pushed.add(self.admit(state, item), n);
        } else {
            for m in run.msgs() {
                pushed.add(self.admit(state, Queued::message(m, seal)), 1);
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
            state.line = None;
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
                state.parked = false;
                if state.closed {
                    return Next::Stop;
                }
                // A tail a direct write stranded goes out before anything the task writes
                // would have to wait behind it anyway; flushing it first keeps the wait (and
                // the write timeout) the task's.
                if state
                    .line
                    .as_ref()
                    .is_some_and(|(line, _)| line.has_stranded())
                {
                    return Next::Flush;
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
                state.parked = true;
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

    /// Holds the queue's lock until the returned guard is dropped: whoever pushes to this
    /// outbox meanwhile waits.
    #[cfg(test)]
    pub(crate) fn hold(&self) -> impl Sized + '_ {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
    /// Bytes a direct write left in the line wait for the socket: write them first.
    Flush,
    /// Send this close frame, then stop.
    Close(CloseCode),
    /// The connection is gone; stop.
    Stop,
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

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

    /// An outbox with a line to a connected socket (the peer's end returned), as a
    /// connection's task attaches it.
    async fn with_line(limit: usize) -> (Outbox, Arc<Line>, Arc<Counters>, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (peer, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let line = Line::new(accepted.expect("accept").0);
        let counters = Arc::new(Counters::default());
        let outbox = Outbox::new(limit, false);
        outbox.attach_line(line.clone(), counters.clone());
        (outbox, line, counters, peer.expect("connect"))
    }

    /// Polls the writer's wait once, as the connection's task does when it has nothing to do.
    fn park(outbox: &Outbox) {
        let mut batch = Vec::new();
        assert!(outbox.next_batch(&mut batch).now_or_never().is_none());
    }

    #[tokio::test]
    async fn a_parked_writers_queue_is_written_by_the_fan_out() {
        use tokio::io::AsyncReadExt as _;
        let (outbox, _line, counters, mut peer) = with_line(1 << 20).await;
        let (one, two) = (message(10), message(20));
        // The writer is busy (it has not come back to wait): the fan-out wakes it instead.
        assert_eq!(outbox.push_quiet(Queued::Frame(one.clone())), Push::First);
        assert!(!outbox.write_direct());
        let mut batch = Vec::new();
        assert_eq!(outbox.next_batch(&mut batch).await, Next::Frames);
        assert_eq!(batch.len(), 1);
        // Parked: two messages queued under one cork go out in one write, in order.
        park(&outbox);
        assert_eq!(outbox.push_quiet(Queued::Frame(one.clone())), Push::First);
        assert_eq!(outbox.push_quiet(Queued::Frame(two.clone())), Push::Queued);
        assert!(outbox.write_direct());
        assert_eq!(outbox.queued_bytes(), 0);
        assert_eq!(counters.frames_out.load(Ordering::Relaxed), 2);
        let mut got = vec![0; one.wire().len() + two.wire().len()];
        peer.read_exact(&mut got).await.expect("read");
        assert_eq!(got, [one.wire(), two.wire()].concat());
        // Still parked: the next message goes the same way, with nothing left to write.
        assert_eq!(outbox.push_quiet(Queued::Frame(two.clone())), Push::First);
        assert!(outbox.write_direct());
        assert!(!outbox.write_direct());
        let mut got = vec![0; two.wire().len()];
        peer.read_exact(&mut got).await.expect("read");
        assert_eq!(got, two.wire());
    }

    #[tokio::test]
    async fn a_message_on_its_own_is_written_as_it_is_fanned_out() {
        use tokio::io::AsyncReadExt as _;
        let (outbox, _line, counters, mut peer) = with_line(1 << 20).await;
        let (one, two) = (message(10), message(20));
        // The writer has not come back to wait: queued, and the writer is owed a wake.
        assert_eq!(outbox.write_or_push(&one, false), Push::First);
        let mut batch = Vec::new();
        assert_eq!(outbox.next_batch(&mut batch).await, Next::Frames);
        // Parked: written at once, nothing queued, nothing owed.
        park(&outbox);
        assert_eq!(outbox.write_or_push(&two, false), Push::Written);
        assert_eq!(outbox.queued_bytes(), 0);
        assert_eq!(counters.frames_out.load(Ordering::Relaxed), 1);
        let mut got = vec![0; two.wire().len()];
        peer.read_exact(&mut got).await.expect("read");
        assert_eq!(got, two.wire());
        // A message to seal is the writer's, and what follows it queues behind it.
        assert_eq!(outbox.write_or_push(&one, true), Push::First);
        assert_eq!(outbox.write_or_push(&two, false), Push::Queued);
        assert_eq!(counters.frames_out.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_short_bursts_run_is_written_in_one_send_as_it_is_fanned_out() {
        use tokio::io::AsyncReadExt as _;
        let (outbox, _line, counters, mut peer) = with_line(1 << 20).await;
        let run = Run::new((0..3).map(|i| message(10 + i)).collect());
        // The writer busy: queued as push_run queues it, and the writer is owed a wake.
        let pushed = outbox.write_or_push_run(&run, false);
        assert_eq!((pushed.queued, pushed.first), (3, true));
        let mut batch = Vec::new();
        assert_eq!(outbox.next_batch(&mut batch).await, Next::Frames);
        // Parked: the run's joined frames go out at once, nothing queued, nothing owed.
        park(&outbox);
        let pushed = outbox.write_or_push_run(&run, false);
        assert_eq!((pushed.queued, pushed.dropped, pushed.first), (3, 0, false));
        assert_eq!(outbox.queued_bytes(), 0);
        assert_eq!(counters.frames_out.load(Ordering::Relaxed), 3);
        let mut got = vec![0; run.bytes()];
        peer.read_exact(&mut got).await.expect("read");
        let frames: Vec<u8> = run.msgs().iter().flat_map(|m| m.wire()).copied().collect();
        assert_eq!(got, frames);
        // An encrypted member's run is the writer's to seal, and a run behind it queues.
        assert!(outbox.write_or_push_run(&run, true).first);
        let pushed = outbox.write_or_push_run(&run, false);
        assert_eq!((pushed.queued, pushed.first), (3, false));
        assert_eq!(counters.frames_out.load(Ordering::Relaxed), 3);
        assert_eq!(outbox.queued_bytes(), run.sealed_bytes() + run.bytes());
    }

    #[tokio::test]
    async fn frames_to_seal_and_close_requests_are_left_to_the_writer() {
        let (outbox, line, counters, _peer) = with_line(1 << 20).await;
        park(&outbox);
        assert_eq!(outbox.push_quiet(Queued::Seal(message(10))), Push::First);
        assert!(!outbox.write_direct());
        let mut batch = Vec::new();
        assert_eq!(outbox.next_batch(&mut batch).await, Next::Frames);
        park(&outbox);
        assert_eq!(outbox.push_quiet(Queued::Frame(message(10))), Push::First);
        outbox.close(CloseCode::GoingAway);
        assert!(!outbox.write_direct());
        assert_eq!(counters.frames_out.load(Ordering::Relaxed), 0);
        // A shut queue lets go of the socket: it closes with the connection's task.
        assert_eq!(Arc::strong_count(&line), 2);
        outbox.shut();
        assert_eq!(Arc::strong_count(&line), 1);
        // Without a line (hyper's upgraded connections) the writer always writes.
        let plain = Outbox::new(1 << 20, false);
        park(&plain);
        assert_eq!(plain.push_quiet(Queued::Frame(message(10))), Push::First);
        assert!(!plain.write_direct());
    }

    #[tokio::test]
    async fn a_tail_the_socket_did_not_take_is_flushed_by_the_writer_first() {
        use tokio::io::AsyncReadExt as _;
        let (outbox, line, _counters, mut peer) = with_line(64 << 20).await;
        let big = message(256 * 1024);
        // Direct writes until the socket is full and one strands its tail.
        let mut sent = 0;
        loop {
            park(&outbox);
            assert_eq!(outbox.push_quiet(Queued::Frame(big.clone())), Push::First);
            sent += 1;
            if !outbox.write_direct() {
                break;
            }
        }
        assert!(line.has_stranded());
        // The fan-out keeps away from a line with a tail: the next message stays queued.
        assert_eq!(outbox.push_quiet(Queued::Frame(message(10))), Push::First);
        assert!(!outbox.write_direct());
        assert!(outbox.queued_bytes() > 0);
        // The writer is told to flush before it takes the queue.
        let mut batch = Vec::new();
        assert_eq!(outbox.next_batch(&mut batch).await, Next::Flush);
        let reader = tokio::spawn(async move {
            let mut got = vec![0; sent * big.wire().len()];
            peer.read_exact(&mut got).await.map(|_| (got, big))
        });
        let mut io = super::super::transport::LineIo(line.clone());
        tokio::io::AsyncWriteExt::flush(&mut io)
            .await
            .expect("flush");
        assert!(!line.has_stranded());
        let (got, big) = reader.await.expect("task").expect("read");
        for frame in got.chunks(big.wire().len()) {
            assert_eq!(frame, big.wire());
        }
        assert_eq!(outbox.next_batch(&mut batch).await, Next::Frames);
    }
}
