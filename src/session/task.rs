//! The connection task, one per connection: reads frames, drives the [`Session`] state machine,
//! runs the hooks in order for this client, and writes what the [`Outbox`] holds.

use std::{
    collections::{HashSet, VecDeque},
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    time::{Duration, SystemTime},
};

use futures_util::FutureExt as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::{
    Outbox,
    channel::{Channel, Inbound},
    outbox::{Next, Queued, SCRATCH},
    socket::{LINGER, ReadError, Socket},
    state::{Action, Admit, AuthResult, ClientState, Session},
    wire,
};
use crate::{
    crypto::v2,
    hub::{Client, Hub, Identity, Outgoing, Sealer},
    protocol::{
        CloseCode, ErrorMessage, FrameError, InboundFrame, RoomName, SystemEvent,
        encode_system_into,
        websocket::{DecodeError, Incoming},
    },
    server::{
        Shared, TransportOptions,
        encryption::{Established, HandshakeResult, OutboundRequest, Transformer},
        hooks::{
            AuthRequest, ClientEvent, HookResult, MessageEvent, RoomRequest, Unpinned, call,
            call_unpin,
        },
        metrics::Counters,
    },
};

/// How long a closing connection may take to flush its close frame.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// A writer keeps its batch buffer between batches up to this capacity (so steady traffic
/// allocates nothing); a larger one, left by a burst, is freed.
const RETAINED_BUFFER: usize = 16 * 1024;

type AuthFuture = Pin<Box<dyn Future<Output = Box<AuthOutcome>> + Send>>;

/// What an action started that the task's loop carries on.
enum Started {
    Nothing,
    /// An authentication that waits: its hook, or the v1 handshake after it.
    Auth(AuthFuture),
    /// An authentication accepted at once, with what follows it (the connected hook, the
    /// frames that arrived meanwhile).
    AfterAuth(AfterAuth),
}

/// What a frame's action waits for.
enum Wait {
    /// The room validator, for a join.
    Join(PendingJoin),
    /// The message handler.
    Dispatch(InboundFrame),
}

/// A join whose room validator has not answered yet.
struct PendingJoin {
    rooms: Vec<RoomName>,
    allowed: Unpinned<Vec<String>>,
}

/// What follows an accepted authentication and may wait.
struct AfterAuth {
    /// The connected hook's event, when there is a hook.
    event: Option<ClientEvent>,
    /// The frames that arrived during authentication, in order.
    pending: VecDeque<Result<Option<InboundFrame>, FrameError>>,
}

/// How the authenticate step ended.
enum AuthOutcome {
    Accepted(Identity, Option<Established>),
    Rejected,
    HookFailed,
    /// Encryption was required and is unavailable or failed; `notify` says whether the client
    /// gets an `error` event before the 4004 close.
    EncryptionFailed {
        notify: bool,
    },
}

/// Serves one upgraded WebSocket until it closes.
///
/// The connection's state lives in one heap allocation (`Box<Connection>`, the socket
/// included), so the task's future holds only what waits: the outbox, the read, the timer.
pub(crate) async fn run(shared: Arc<Shared>, socket: Box<Socket>) {
    let mut conn = Connection::open(shared, *socket);
    let ended_by_us = conn.serve().await;
    conn.close(ended_by_us);
    if let Some(hook) = conn.shared.disconnect_hook(&conn.client) {
        crate::server::disconnected(&conn.client, hook.await);
    }
    if ended_by_us {
        // The session is over (graceful shutdown no longer waits for it); the socket waits
        // for the client's side of the closing handshake.
        let mut socket = conn.into_socket();
        Box::pin(socket.linger(LINGER)).await;
    }
}

struct Connection {
    socket: Socket,
    session: Session,
    shared: Arc<Shared>,
    client: Arc<Client>,
    /// Encryption v2: plaintext, awaiting the client's fin, or open (the opener lives here, so
    /// records are opened in arrival order; the sealer lives in the writer).
    channel: Channel,
    /// A v2 handshake awaiting the client's fin holds an authentication permit, so pending
    /// handshakes count against `Limits::max_pending_auth` like authentications.
    handshake_permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Set when an action queued a close: reading stops and the queue is written out.
    closing: bool,
    /// The authentication under way, polled by the task beside the socket.
    auth: Option<AuthFuture>,
    /// The idle and ping deadlines (the task's one timer serves them and the auth deadline).
    timers: Timers,
    /// The outbound half: drains the outbox into the socket.
    writer: Writer,
    /// Counts the connection among the live sessions.
    _live: Live,
}

/// Counts a connection among the server's live sessions, which graceful shutdown waits for,
/// from its start until it is dropped, however the connection ends (after the disconnect
/// hook).
struct Live(Arc<Shared>);

impl Live {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.sessions.fetch_add(1, Ordering::AcqRel);
        Self(shared.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.0.sessions.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.sessions_done.notify_waiters();
        }
    }
}

/// What woke the connection task.
enum Wake {
    /// The outbox has frames or a close for the socket.
    Outbox(Next),
    /// Authentication finished (boxed: the outcome is large and rare).
    Auth(Box<AuthOutcome>),
    /// Something arrived from the peer (or the stream ended).
    Read(Option<Result<Incoming, ReadError>>),
    /// The connection's one timer fired: auth deadline, transport ping or idle check.
    Timer,
}

/// Work of the connection task that waits.
enum Slow {
    /// Write what the socket did not take of a plaintext batch of this many frames.
    Spill(u64),
    /// What the outbox handed over needs sealing, or is a close.
    Apply(Next),
    /// Send a transport ping.
    Ping,
    /// Run what follows an accepted authentication: the connected hook, the frames that
    /// arrived meanwhile.
    AfterAuth(Box<AfterAuth>),
    /// Wait for a hook a frame's action called: the room validator, the message handler
    /// (boxed: `Slow` is kept while it waits).
    Wait(Box<Wait>),
    /// Write out the queue and the close frame that was queued.
    Finish,
}

/// How the connection goes on after [`Connection::slow`].
enum Flow {
    Continue,
    /// The connection ended; true when the server ended it.
    Ended(bool),
}

/// A message's payload as read.
enum Payload {
    Text(String),
    Binary(Vec<u8>),
}

/// What a read asks the connection to do next.
enum Read {
    /// Nothing more (a control frame, a refused or ignored frame).
    Continue,
    /// Carry out the protocol's action.
    Perform(Action),
    /// Write out the queue and the close frame that was queued.
    Finish,
    /// The stream ended or failed: nothing more can be written.
    Ended,
}

/// The connection's deadlines besides authentication's, served by one timer: a ping every
/// `ping_every`, and the idle check, armed for the last read plus the idle timeout. Reads only
/// move the idle deadline later, so the timer is not touched per read: when it fires early, it
/// is re-armed for what is due next.
struct Timers {
    idle_timeout: Option<Duration>,
    last_read: Instant,
    ping_every: Option<Duration>,
    next_ping: Option<Instant>,
}

/// What the timer found due.
enum Due {
    Nothing,
    Idle,
    Ping,
}

impl Timers {
    fn new(now: Instant, transport: &TransportOptions) -> Self {
        let idle_timeout = transport.idle_timeout;
        let ping_every =
            (transport.send_pings && !idle_timeout.is_zero()).then(|| idle_timeout / 2);
        Self {
            idle_timeout: (!idle_timeout.is_zero()).then_some(idle_timeout),
            last_read: now,
            ping_every,
            next_ping: ping_every.map(|p| now + p),
        }
    }

    /// The earliest deadline, `auth` included. Far in the future when there is none.
    fn next(&self, auth: Option<Instant>) -> Instant {
        let idle = self.idle_timeout.map(|t| self.last_read + t);
        [auth, idle, self.next_ping]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| self.last_read + Duration::from_secs(365 * 24 * 3600))
    }

    fn check(&mut self, now: Instant) -> Due {
        if self.idle_timeout.is_some_and(|t| now >= self.last_read + t) {
            return Due::Idle;
        }
        if let (Some(at), Some(every)) = (self.next_ping, self.ping_every)
            && now >= at
        {
            self.next_ping = Some(now + every);
            return Due::Ping;
        }
        Due::Nothing
    }
}

impl Connection {
    /// Registers a new client for `socket` and builds its connection state.
    fn open(shared: Arc<Shared>, socket: Socket) -> Box<Self> {
        let live = Live::new(&shared);
        Counters::add(&shared.hub.counters.connections_opened, 1);
        let transport = &shared.options.transport;
        // One clock read for the connection's start: its activity stamp, its auth deadline
        // and its timers.
        let now = Instant::now();
        let client = loop {
            let client = Arc::new(Client::new(
                shared.hub.ids.assign(),
                Outbox::new(
                    transport.backpressure_limit,
                    transport.close_on_backpressure_limit,
                ),
                shared.hub.clock.ms_at(now.into_std()),
            ));
            if shared.hub.insert(client.clone()) {
                break client;
            }
        };
        if shared.shutting_down.load(Ordering::Acquire) {
            client.outbox.close(CloseCode::GoingAway);
        }
        if let Some(line) = socket.line() {
            client
                .outbox
                .attach_line(line.clone(), shared.hub.counters.clone());
        }
        let writer = Writer {
            batch: Vec::new(),
            out: Vec::new(),
            v2_sealer: None,
            cfg: WriterConfig {
                write_timeout: shared.options.limits.write_timeout,
                write_chunk: transport.write_buffer_size.max(1),
                transformer: shared.encryption.transformer.clone(),
                counters: shared.hub.counters.clone(),
            },
        };
        let session = Session::new(now, shared.options.auth_timeout, &shared.options.limits);
        let timers = Timers::new(now, transport);
        Box::new(Self {
            socket,
            session,
            shared,
            client,
            channel: Channel::Plain,
            handshake_permit: None,
            closing: false,
            auth: None,
            timers,
            writer,
            _live: live,
        })
    }

    /// The socket of a connection that has ended; the rest of its state is dropped (the
    /// connection no longer counts as a live session).
    fn into_socket(self: Box<Self>) -> Socket {
        let Self { socket, .. } = *self;
        socket
    }

    /// Takes the ended connection out of the hub; the queue is shut unless the server ended
    /// the connection (then its writer did).
    fn close(&mut self, ended_by_us: bool) {
        self.session.on_close();
        self.client.set_state(ClientState::Disconnected);
        self.shared.hub.remove(&self.client.id);
        if !ended_by_us {
            self.client.outbox.shut();
        }
    }

    /// Serves the socket until the connection ends: reads frames, runs the protocol, and writes
    /// what the outbox holds, all in this one task (one task per connection, no lock between a
    /// read half and a write half; the fan-out writes to the socket only while this task
    /// waits on the outbox with nothing in hand, see `Outbox::write_direct`). Returns true
    /// when the server ended the connection.
    ///
    /// What wakes the task is handled without waiting where it can be (a plaintext batch to a
    /// socket that takes it, a frame that asks for nothing); everything that waits goes
    /// through one call to [`Connection::slow`], whose own waits are boxed. So the task's
    /// future, which every idle connection keeps, holds little more than the timer and what
    /// the `select!` polls.
    async fn serve(&mut self) -> bool {
        let timer = tokio::time::sleep_until(self.timers.next(self.session.auth_deadline()));
        tokio::pin!(timer);
        loop {
            // The auth deadline moves when authentication starts or ends; only an earlier one
            // needs the timer re-armed (a later one is found when it fires).
            if let Some(at) = self.session.auth_deadline()
                && at < timer.deadline()
            {
                timer.as_mut().reset(at);
            }
            // A block: `wake` ends here, so it is not kept while `slow` waits.
            let step = {
                let wake = tokio::select! {
                    next = self.client.outbox.next_batch(&mut self.writer.batch) => Wake::Outbox(next),
                    outcome = async { self.auth.as_mut().map_or_else(|| unreachable!(), |f| f.as_mut()).await }, if self.auth.is_some() => Wake::Auth(outcome),
                    msg = self.socket.next() => Wake::Read(msg),
                    () = &mut timer => Wake::Timer,
                };
                match wake {
                    // The usual batch, frames ready to go to a socket that takes them.
                    Wake::Outbox(next) => {
                        match self
                            .writer
                            .write_plain(next, &mut self.socket, &self.client)
                        {
                            Plain::Wrote(Wrote::More) => continue,
                            // The socket failed.
                            Plain::Wrote(Wrote::Done) => return true,
                            Plain::Spilled(n) => Slow::Spill(n),
                            Plain::Not(next) => Slow::Apply(next),
                        }
                    }
                    Wake::Auth(outcome) => {
                        self.auth = None;
                        match self.finish_auth(*outcome) {
                            _ if self.closing => Slow::Finish,
                            Started::AfterAuth(after) => Slow::AfterAuth(Box::new(after)),
                            _ => continue,
                        }
                    }
                    Wake::Timer => {
                        let now = Instant::now();
                        if let Some(code) = self.session.on_tick(now) {
                            self.client.outbox.close(code);
                            Slow::Finish
                        } else {
                            let due = self.timers.check(now);
                            timer
                                .as_mut()
                                .reset(self.timers.next(self.session.auth_deadline()));
                            match due {
                                Due::Idle => {
                                    tracing::debug!(client = %self.client.id, "transport idle timeout");
                                    self.client.outbox.close(CloseCode::GoingAway);
                                    Slow::Finish
                                }
                                Due::Ping => Slow::Ping,
                                Due::Nothing => continue,
                            }
                        }
                    }
                    Wake::Read(msg) => match self.on_read(msg) {
                        Read::Continue => continue,
                        Read::Perform(action) => match self.perform_now(action) {
                            _ if self.closing => Slow::Finish,
                            Ok(Started::Nothing) => continue,
                            Ok(Started::Auth(auth)) => {
                                self.auth = Some(auth);
                                continue;
                            }
                            Ok(Started::AfterAuth(after)) => Slow::AfterAuth(Box::new(after)),
                            Err(wait) => Slow::Wait(Box::new(wait)),
                        },
                        Read::Finish => Slow::Finish,
                        Read::Ended => return false,
                    },
                }
            };
            match self.slow(step).await {
                Flow::Continue => {}
                Flow::Ended(by_us) => return by_us,
            }
        }
    }

    /// Carries out what waits (see [`Connection::serve`]). Each wait is boxed: it exists only
    /// while it runs.
    async fn slow(&mut self, step: Slow) -> Flow {
        let socket = &mut self.socket;
        let client = &self.client;
        let wrote = match step {
            Slow::Spill(n) => Box::pin(self.writer.write_spill(n, socket, client)).await,
            Slow::Apply(next) => Box::pin(self.writer.apply(next, socket, client)).await,
            Slow::Ping => {
                if !Box::pin(self.writer.ping(socket)).await {
                    return Flow::Ended(false);
                }
                Wrote::More
            }
            Slow::AfterAuth(after) => {
                Box::pin(self.after_auth(*after)).await;
                if self.closing {
                    return Flow::Ended(Box::pin(self.finish()).await);
                }
                Wrote::More
            }
            Slow::Wait(wait) => {
                Box::pin(self.complete(*wait)).await;
                if self.closing {
                    return Flow::Ended(Box::pin(self.finish()).await);
                }
                Wrote::More
            }
            Slow::Finish => return Flow::Ended(Box::pin(self.finish()).await),
        };
        match wrote {
            Wrote::More => Flow::Continue,
            // A close was sent (sweep, shutdown, backpressure, kick) or the socket failed.
            Wrote::Done => Flow::Ended(true),
        }
    }

    /// Takes one read from the socket as far as the action it asks for, without waiting.
    fn on_read(&mut self, msg: Option<Result<Incoming, ReadError>>) -> Read {
        let payload = match msg {
            Some(Ok(Incoming::Text(text))) => Payload::Text(text),
            Some(Ok(Incoming::Binary(bin))) => Payload::Binary(bin),
            Some(Ok(Incoming::Ping(_) | Incoming::Pong)) => {
                self.timers.last_read = Instant::now();
                return Read::Continue;
            }
            Some(Ok(Incoming::Close(_))) => {
                // Complete the closing handshake (the close frame echoes the client's code).
                self.client.outbox.close_by_peer();
                return Read::Finish;
            }
            None => return Read::Ended,
            Some(Err(ReadError::Decode(e))) => {
                tracing::debug!(client = %self.client.id, error = %e, "unreadable frame");
                let code = match e {
                    DecodeError::TooBig => CloseCode::MessageTooBig,
                    DecodeError::Protocol(_) => CloseCode::ProtocolError,
                    DecodeError::InvalidUtf8 => CloseCode::InvalidPayload,
                };
                self.client.outbox.close(code);
                return Read::Finish;
            }
            Some(Err(ReadError::Io(e))) => {
                tracing::debug!(client = %self.client.id, error = %e, "read error");
                return Read::Ended;
            }
        };
        let bytes = match &payload {
            Payload::Text(text) => text.as_bytes(),
            Payload::Binary(bin) => bin,
        };
        // One clock read for the frame: its arrival, its rate budget and its activity stamp.
        let now = Instant::now();
        self.timers.last_read = now;
        Counters::add(&self.shared.hub.counters.frames_in, 1);
        // SECURITY: v2 records are opened before the frame budget is charged, even those the
        // budget then refuses: skipping one unopened would desynchronize the record counter
        // and kill the channel. Opening is bounded by the frame size limit; a plaintext
        // channel passes frames through untouched.
        let opened;
        let (frame, passed_through): (&[u8], bool) = match self.channel.inbound(bytes) {
            Inbound::Plain(frame) => (frame, true),
            Inbound::Opened(plaintext) => {
                opened = plaintext;
                (&opened, false)
            }
            Inbound::Established(sealer) => {
                self.establish_v2(sealer);
                return Read::Continue;
            }
            Inbound::HandshakeFailed => {
                self.fail_v2(true);
                return Read::Finish;
            }
            Inbound::RecordFailed => {
                self.fail_v2(false);
                return Read::Finish;
            }
            Inbound::Ignore => return Read::Continue,
        };
        match self.session.admit(now) {
            Admit::Accept => {}
            Admit::Refuse { notify } => {
                Counters::add(&self.shared.hub.counters.rate_limited, 1);
                if notify {
                    self.send_error(ErrorMessage::RateLimited);
                }
                return Read::Continue;
            }
            Admit::Close => {
                Counters::add(&self.shared.hub.counters.rate_limited, 1);
                self.client.outbox.close(CloseCode::PolicyViolation);
                return Read::Finish;
            }
        }
        self.client
            .touch(self.shared.hub.clock.ms_at(now.into_std()));
        let limits = &self.shared.options.limits;
        let parsed = match &payload {
            // The frame is the text message itself: no second UTF-8 check.
            Payload::Text(text) if passed_through => InboundFrame::parse_str(text, limits),
            _ => InboundFrame::parse(frame, limits),
        };
        Read::Perform(self.session.on_frame(parsed, now))
    }

    /// The server is closing: writes out what is queued and the close frame, within
    /// `CLOSE_FLUSH_TIMEOUT`. Returns true (the server ended the connection).
    async fn finish(&mut self) -> bool {
        let drain = async {
            loop {
                let next = self.client.outbox.next_batch(&mut self.writer.batch).await;
                if self
                    .writer
                    .apply(next, &mut self.socket, &self.client)
                    .await
                    == Wrote::Done
                {
                    break;
                }
            }
        };
        if tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, drain)
            .await
            .is_err()
        {
            self.client.outbox.shut();
        }
        true
    }

    /// Carries out one action of a frame replayed after authentication (a replayed
    /// `authenticate` can only yield an error: nothing is started here).
    async fn perform(&mut self, action: Action) {
        if let Err(wait) = self.perform_now(action) {
            self.complete(wait).await;
        }
    }

    /// Waits for the hook an action called and finishes the action.
    async fn complete(&mut self, wait: Wait) {
        match wait {
            Wait::Join(mut join) => {
                let allowed = (&mut join.allowed).await;
                self.finish_join(&join.rooms, allowed);
            }
            Wait::Dispatch(frame) => self.dispatch(frame).await,
        }
    }

    /// Carries out an action as far as it goes without waiting (returning what an
    /// authentication started); hands back what waits for a hook: a join whose validator has
    /// not answered yet, a message for the application.
    fn perform_now(&mut self, action: Action) -> Result<Started, Wait> {
        match action {
            Action::Nothing => {}
            Action::Error(message) => self.send_error(message),
            Action::Handshake(data) => self.start_v2(data),
            Action::Authenticate(data) => {
                if self
                    .shared
                    .encryption
                    .v2
                    .as_ref()
                    .is_some_and(|c| c.required)
                    && !self.channel.is_open()
                {
                    // SECURITY: a v2-required server refuses v1 and plaintext clients (and a
                    // client whose v2 offer was stripped) before their credentials reach a hook.
                    return Ok(self.refuse_auth(
                        Some(ErrorMessage::EncryptionHandshakeFailed),
                        CloseCode::EncryptionRequired,
                    ));
                }
                // SECURITY: bound the authentications (and handshakes) running at once, so a
                // flood of connections cannot pile up work in the hooks.
                let Ok(permit) = self.shared.pending_auth.clone().try_acquire_owned() else {
                    tracing::warn!(client = %self.client.id, "too many pending authentications");
                    self.session
                        .on_auth(AuthResult::Refused(CloseCode::TryAgainLater));
                    self.client.outbox.close(CloseCode::TryAgainLater);
                    return Ok(Started::Nothing);
                };
                self.client.set_state(ClientState::Authenticating);
                let client_id = String::from(&*self.client.id);
                let shared = &self.shared;
                // Settled: encrypted since the v2 handshake (a `publicKey` in the payload is
                // ignored), or plaintext on a server without encryption. Nothing follows the
                // hook, so it may have the request itself, and an answer that comes at once is
                // applied here.
                let settled = self.channel.is_open()
                    || (!shared.options.require_encryption && !shared.encryption.is_available());
                if !settled {
                    let shared = shared.clone();
                    return Ok(Started::Auth(Box::pin(async move {
                        let outcome = authenticate_v1(shared, client_id, data).await;
                        drop(permit);
                        Box::new(outcome)
                    })));
                }
                let request = AuthRequest { client_id, data };
                let mut answer = call_unpin("authenticate", &shared.hooks.authenticate, request);
                let Some(answer) = (&mut answer).now_or_never() else {
                    return Ok(Started::Auth(Box::pin(async move {
                        let answer = answer.await;
                        drop(permit);
                        Box::new(hook_outcome(answer))
                    })));
                };
                drop(permit);
                return Ok(self.finish_auth(hook_outcome(answer)));
            }
            Action::Leave(data) => self.leave(data),
            Action::Join(data) => {
                if let Some(join) = self.start_join(data) {
                    return Err(Wait::Join(join));
                }
            }
            Action::Dispatch(frame) => return Err(Wait::Dispatch(frame)),
        }
        Ok(Started::Nothing)
    }

    /// Answers a v2 client hello: the server hello goes out in plaintext and the channel waits
    /// for the client's sealed fin.
    fn start_v2(&mut self, data: Option<Box<RawValue>>) {
        let Some(config) = self.shared.encryption.v2.as_ref() else {
            tracing::debug!(client = %self.client.id, "v2 handshake offered but v2 is not enabled");
            return self.fail_v2(true);
        };
        let Ok(permit) = self.shared.pending_auth.clone().try_acquire_owned() else {
            tracing::warn!(client = %self.client.id, "too many pending authentications");
            self.session.on_close();
            self.client.outbox.close(CloseCode::TryAgainLater);
            self.closing = true;
            return;
        };
        let signing = config.signing_key.as_deref();
        match self.channel.start(data.as_deref(), signing) {
            Ok(hello) => {
                self.handshake_permit = Some(permit);
                self.client
                    .outbox
                    .push(Queued::Own(wire::text_frame(&hello)));
            }
            Err(()) => self.fail_v2(true),
        }
    }

    /// The client's fin verified: the writer gets the sealer, then the client is encrypted.
    fn establish_v2(&mut self, sealer: Box<v2::Sealer>) {
        self.handshake_permit = None;
        // SECURITY: the sealer is queued before the client is marked encrypted, so no message to
        // seal can reach the writer ahead of it.
        if !self.client.outbox.push_control(Queued::Install(sealer)) {
            return; // closing anyway
        }
        let _ = self.client.sealer.set(Sealer::V2);
        self.client.enable_encryption();
        tracing::debug!(client = %self.client.id, "v2 channel established");
    }

    /// A v2 failure: the handshake (`Encryption handshake failed`, then 4004) or a record
    /// (4004 without an error event: nothing the peer sends can be trusted any more).
    fn fail_v2(&mut self, handshake: bool) {
        let counters = &self.shared.hub.counters;
        self.channel.kill();
        self.handshake_permit = None;
        self.session.on_close();
        if handshake {
            Counters::add(&counters.handshake_failures, 1);
            // Sealed if the channel was already open (a second hello), else in plaintext.
            self.send_error(ErrorMessage::EncryptionHandshakeFailed);
        } else {
            Counters::add(&counters.record_failures, 1);
            tracing::debug!(client = %self.client.id, "v2 record failed to open; closing");
        }
        self.client.outbox.close(CloseCode::EncryptionRequired);
        self.closing = true;
    }

    /// Applies the authentication outcome without waiting: what waits is returned (the
    /// connected hook's event, the frames that arrived meanwhile), when there is any. A refusal
    /// sets `closing`.
    fn finish_auth(&mut self, outcome: AuthOutcome) -> Started {
        let (identity, established) = match outcome {
            AuthOutcome::Accepted(identity, established) => (identity, established),
            AuthOutcome::Rejected => {
                return self.refuse_auth(
                    Some(ErrorMessage::AuthenticationFailed),
                    CloseCode::AuthFailed,
                );
            }
            AuthOutcome::HookFailed => {
                return self.refuse_auth(
                    Some(ErrorMessage::AuthenticationError),
                    CloseCode::AuthFailed,
                );
            }
            AuthOutcome::EncryptionFailed { notify } => {
                let message = notify.then_some(ErrorMessage::EncryptionHandshakeFailed);
                return self.refuse_auth(message, CloseCode::EncryptionRequired);
            }
        };
        let user_id = identity.user_id.clone();
        let event = self.shared.hooks.connected.as_ref().map(|_| ClientEvent {
            client_id: String::from(&*self.client.id),
            user_id: user_id.clone(),
            metadata: identity.metadata.clone(),
        });
        let (server_public_key, salt) = match established {
            Some(e) => {
                let _ = self.client.sealer.set(e.sealer);
                self.client.enable_encryption();
                (Some(e.server_public_key), Some(e.salt))
            }
            None => (None, None),
        };
        let connected = ConnectedData {
            id: &self.client.id,
            user_id: user_id.as_deref(),
            time: humantime::format_rfc3339_millis(SystemTime::now()),
            server_public_key: server_public_key.as_deref(),
            salt: salt.as_deref(),
        };
        if self.channel.is_open() {
            // v2: the client has its keys since the handshake, so `connected` is sealed too.
            match serde_json::value::to_raw_value(&connected) {
                Ok(raw) => {
                    let msg = Outgoing::new(SystemEvent::Connected.as_str(), raw);
                    self.client.outbox.push(Queued::Seal(msg));
                }
                Err(e) => tracing::error!(error = %e, "encoding connected"),
            }
        } else {
            // v1 and plaintext: `connected` goes out in plaintext (it carries what the client
            // needs to derive its key), before the client joins any room, so nothing sealed
            // precedes it.
            let frame = wire::text_frame_with(|out| {
                encode_system_into(SystemEvent::Connected, &connected, out);
            });
            self.client.outbox.push(Queued::Own(frame));
        }
        if !self
            .shared
            .hub
            .authenticate(&self.client, identity, &self.shared.default_rooms)
        {
            self.closing = true;
            return Started::Nothing;
        }
        tracing::debug!(client = %self.client.id, user = ?user_id, encrypted = self.client.is_encrypted(), "authenticated");
        // The frames that arrived meanwhile are replayed after the hook; nothing is read
        // until then.
        let pending = self.session.on_auth(AuthResult::Accepted);
        if event.is_none() && pending.is_empty() {
            return Started::Nothing;
        }
        Started::AfterAuth(AfterAuth { event, pending })
    }

    /// Runs the connected hook, then the frames that arrived during authentication.
    async fn after_auth(&mut self, after: AfterAuth) {
        if let (Some(hook), Some(event)) = (&self.shared.hooks.connected, after.event)
            && let Err(e) = call("connected", hook, event).await
        {
            tracing::warn!(client = %self.client.id, error = %e, "connected hook failed");
        }
        for frame in after.pending {
            let action = self.session.on_frame(frame, Instant::now());
            self.perform(action).await;
        }
    }

    /// Refuses an authentication: counts it, sends `message` when there is one, and closes the
    /// connection with `code`.
    fn refuse_auth(&mut self, message: Option<ErrorMessage>, code: CloseCode) -> Started {
        let counters = &self.shared.hub.counters;
        match code {
            CloseCode::AuthFailed => Counters::add(&counters.auth_failures, 1),
            CloseCode::EncryptionRequired => Counters::add(&counters.handshake_failures, 1),
            _ => {}
        }
        self.session.on_auth(AuthResult::Refused(code));
        if let Some(message) = message {
            self.send_error(message);
        }
        self.client.outbox.close(code);
        self.closing = true;
        Started::Nothing
    }

    fn send_error(&self, message: ErrorMessage) {
        let data = ErrorData {
            message: message.as_str(),
        };
        match serde_json::value::to_raw_value(&data) {
            Ok(raw) => {
                let msg = Outgoing::new(SystemEvent::Error.as_str(), raw);
                Hub::push_direct(&self.client, msg);
            }
            Err(e) => tracing::error!(error = %e, "encoding an error event"),
        }
    }

    /// Parses `{rooms: [...]}`: `None` (→ `Invalid message format`) when the shape is wrong or
    /// the request names more rooms than allowed. Non-string and invalid names are dropped.
    fn parse_rooms(&self, data: Option<&RawValue>) -> Option<Vec<RoomName>> {
        #[derive(Deserialize)]
        struct Rooms<'a> {
            /// Each entry as sent: only strings are names, and no tree is built for the rest.
            #[serde(borrow)]
            rooms: Vec<&'a RawValue>,
        }
        let rooms: Rooms<'_> = serde_json::from_str(data?.get()).ok()?;
        if rooms.rooms.len() > self.shared.options.limits.max_rooms_per_request {
            return None;
        }
        let mut names: Vec<RoomName> = Vec::with_capacity(rooms.rooms.len());
        for raw in rooms.rooms {
            // A string without escapes is read in place; anything but a string is dropped.
            let name = match serde_json::from_str::<&str>(raw.get()) {
                Ok(name) => RoomName::new(name),
                Err(_) => match serde_json::from_str::<String>(raw.get()) {
                    Ok(name) => RoomName::new(&name),
                    Err(_) => continue,
                },
            };
            // At most `max_rooms_per_request` names: a linear check is cheaper than a set.
            if let Ok(name) = name
                && !names.contains(&name)
            {
                names.push(name);
            }
        }
        Some(names)
    }

    /// Starts a join: the requested rooms the client is not in go to the room validator, and
    /// if it answers at once (the usual validator looks at the request and returns) the rooms
    /// are joined here. Otherwise the join waits for it.
    fn start_join(&mut self, data: Option<Box<RawValue>>) -> Option<PendingJoin> {
        let Some(rooms) = self.parse_rooms(data.as_deref()) else {
            self.send_error(ErrorMessage::InvalidMessageFormat);
            return None;
        };
        let id = &self.client.id;
        let rooms: Vec<RoomName> = rooms
            .into_iter()
            // SECURITY: UUID-shaped names are own-id rooms: joining another client's would let
            // a client read its direct messages relayed from other instances.
            .filter(|r| uuid::Uuid::try_parse(r.as_str()).is_err())
            .filter(|r| !self.shared.hub.is_member(id, r.as_str()))
            .collect();
        if rooms.is_empty() {
            return None;
        }
        let Some(validate) = &self.shared.hooks.validate_rooms else {
            tracing::debug!(client = %id, "join refused: no room validator");
            return None;
        };
        let request = RoomRequest {
            client_id: String::from(&**id),
            user_id: self.client.user_id().map(str::to_owned),
            rooms: rooms.iter().map(|r| r.as_str().to_owned()).collect(),
        };
        let mut allowed = call_unpin("validate_rooms", validate, request);
        match (&mut allowed).now_or_never() {
            Some(answer) => {
                self.finish_join(&rooms, answer);
                None
            }
            None => Some(PendingJoin { rooms, allowed }),
        }
    }

    /// Joins the rooms of `rooms` that the validator's answer allows.
    fn finish_join(&self, rooms: &[RoomName], allowed: HookResult<Vec<String>>) {
        let id = &self.client.id;
        let allowed = match allowed {
            Ok(allowed) => allowed,
            Err(e) => {
                tracing::warn!(client = %id, error = %e, "room validator failed");
                return;
            }
        };
        // The validator answers with a few of the requested names, usually: a linear search,
        // unless it returned many.
        let many: Option<HashSet<&str>> =
            (allowed.len() > LINEAR_LOOKUP).then(|| allowed.iter().map(String::as_str).collect());
        let is_allowed = |room: &str| match &many {
            Some(set) => set.contains(room),
            None => allowed.iter().any(|a| a == room),
        };
        for room in rooms.iter().filter(|r| is_allowed(r.as_str())) {
            if let Err(e) = self.shared.hub.join(id, room.clone()) {
                tracing::debug!(client = %id, error = %e, "join refused");
                break;
            }
        }
    }

    fn leave(&mut self, data: Option<Box<RawValue>>) {
        let Some(rooms) = self.parse_rooms(data.as_deref()) else {
            return self.send_error(ErrorMessage::InvalidMessageFormat);
        };
        for room in rooms {
            // Leaving a room one is not in, or one's own-id room, does nothing.
            let _ = self.shared.hub.leave(&self.client.id, room.as_str());
        }
    }

    async fn dispatch(&mut self, frame: InboundFrame) {
        let Some(hook) = &self.shared.hooks.message else {
            return;
        };
        let event = MessageEvent {
            server: crate::Server {
                shared: self.shared.clone(),
            },
            client_id: String::from(&*self.client.id),
            user_id: self.client.user_id().map(str::to_owned),
            event: frame.event,
            data: frame.data,
            id: frame.id,
        };
        if let Err(e) = call("message", hook, event).await {
            tracing::warn!(client = %self.client.id, error = %e, "message handler failed");
        }
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ConnectedData<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    /// Written straight into the frame (no string of its own).
    #[serde(serialize_with = "serialize_display")]
    time: humantime::Rfc3339Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_public_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    salt: Option<&'a str>,
}

/// Serializes a value as the JSON string of its `Display` form.
fn serialize_display<S: serde::Serializer>(
    value: &impl std::fmt::Display,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Lists up to this long are searched linearly rather than hashed.
const LINEAR_LOOKUP: usize = 16;

#[derive(serde::Serialize)]
struct ErrorData<'a> {
    message: &'a str,
}

/// The authenticate step on a server with v1 or custom encryption, for a client without the
/// v2 channel: the hook, then the handshake (or the refusal when encryption is required and
/// none can be made). The hook gets a copy of the request, since the handshake reads it too.
async fn authenticate_v1(
    shared: Arc<Shared>,
    client_id: String,
    data: Box<RawValue>,
) -> AuthOutcome {
    let request = AuthRequest {
        client_id: client_id.clone(),
        data: data.clone(),
    };
    let answer = call("authenticate", &shared.hooks.authenticate, request).await;
    let identity = match hook_outcome(answer) {
        AuthOutcome::Accepted(identity, _) => identity,
        refused => return refused,
    };
    let required = shared.options.require_encryption;
    let user_id = identity.user_id.as_deref();
    match shared
        .encryption
        .handshake(required, &client_id, user_id, &data)
        .await
    {
        HandshakeResult::Established(e) => AuthOutcome::Accepted(identity, Some(e)),
        HandshakeResult::Plaintext => AuthOutcome::Accepted(identity, None),
        HandshakeResult::Failed { notify } => AuthOutcome::EncryptionFailed { notify },
    }
}

/// The authentication as the hook answered it: accepted (before any handshake), refused, or
/// failed (a panic included).
fn hook_outcome(answer: HookResult<Option<Identity>>) -> AuthOutcome {
    match answer {
        Ok(Some(identity)) => AuthOutcome::Accepted(identity, None),
        Ok(None) => AuthOutcome::Rejected,
        Err(e) => {
            tracing::warn!(error = %e, "authenticate hook failed");
            AuthOutcome::HookFailed
        }
    }
}

/// What the writer needs besides the socket and the client.
struct WriterConfig {
    // SECURITY: a peer that stops reading cannot hold a writer (and its queue) forever.
    write_timeout: Duration,
    /// Bytes assembled before a write (`TransportOptions::write_buffer_size`).
    write_chunk: usize,
    transformer: Option<Transformer>,
    counters: Arc<Counters>,
}

/// Whether the connection goes on after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrote {
    More,
    Done,
}

/// The outbound half of a connection: the batch being written and the v2 sealer.
struct Writer {
    batch: Vec<Queued>,
    /// Where sealed frames are assembled before they are written.
    out: Vec<u8>,
    /// The v2 sealer, once the session hands it over through the outbox: owned here alone, so
    /// its record counter follows the order frames are written in.
    v2_sealer: Option<Box<v2::Sealer>>,
    cfg: WriterConfig,
}

/// What [`Writer::write_plain`] did with what the outbox handed over.
enum Plain {
    /// The batch is written (or the socket failed): the connection goes on or ends.
    Wrote(Wrote),
    /// These frames are handed over, but the socket did not take all their bytes: the rest
    /// waits in the writer's buffer for [`Writer::write_spill`].
    Spilled(u64),
    /// Not a batch of ready frames (a close, frames to seal): for [`Writer::apply`].
    Not(Next),
}

impl Writer {
    /// Writes a batch of ready frames (no sealing) without waiting: assembled in the thread's
    /// scratch buffer and handed to the socket at once. What the socket does not take is
    /// left in `out` ([`Plain::Spilled`]).
    fn write_plain(&mut self, next: Next, socket: &mut Socket, client: &Client) -> Plain {
        if next != Next::Frames || !self.batch.iter().all(Queued::is_ready) {
            return Plain::Not(next);
        }
        let n = self.batch.iter().map(Queued::frames).sum();
        let ok = write_plain_now(socket, &self.batch, self.cfg.write_chunk, &mut self.out);
        // Keep the (emptied) list's allocation: the outbox swaps it in next time.
        self.batch.clear();
        if !ok {
            return Plain::Wrote(self.failed(client));
        }
        if !self.out.is_empty() {
            return Plain::Spilled(n);
        }
        Plain::Wrote(self.written(n, client))
    }

    /// Waits (at most the write timeout) until the socket takes what `write_plain` left in
    /// `out`, the rest of a batch of `n` frames.
    async fn write_spill(&mut self, n: u64, socket: &mut Socket, client: &Client) -> Wrote {
        let mut deadline = None;
        let ok = write_wire(socket, &self.out, &mut deadline, self.cfg.write_timeout).await;
        self.release_out();
        if !ok {
            return self.failed(client);
        }
        self.written(n, client)
    }

    /// Counts `n` frames written; the queue has drained.
    fn written(&self, n: u64, client: &Client) -> Wrote {
        Counters::add(&self.cfg.counters.frames_out, n);
        client.outbox.drained();
        Wrote::More
    }

    /// The socket failed or timed out: the queue is shut and the connection ends.
    fn failed(&self, client: &Client) -> Wrote {
        tracing::debug!(client = %client.id, "write failed or timed out");
        client.outbox.shut();
        Wrote::Done
    }

    /// Empties `out` and offers it to the thread ([`Writer::return_scratch`]); what stays is
    /// freed if a burst left it larger than [`RETAINED_BUFFER`].
    fn release_out(&mut self) {
        self.out.clear();
        self.return_scratch();
        if self.out.capacity() > RETAINED_BUFFER {
            self.out = Vec::new();
        }
    }

    /// Moves the thread's scratch buffer into `out` (empty) when it is the larger: sealed
    /// frames are then assembled in memory this core touched moments ago for another
    /// connection, not in a buffer of this one's own, last touched a whole fan-out earlier.
    fn take_scratch(&mut self) {
        if self.out.is_empty() {
            SCRATCH.with_borrow_mut(|scratch| {
                if scratch.capacity() > self.out.capacity() {
                    std::mem::swap(scratch, &mut self.out);
                }
            });
        }
    }

    /// Gives an empty `out` back to the thread when it is the larger buffer. Called before the
    /// task may be suspended; a non-empty `out` stays the connection's (the thread's next
    /// writer starts a buffer of its own).
    fn return_scratch(&mut self) {
        if self.out.is_empty() {
            SCRATCH.with_borrow_mut(|scratch| {
                if self.out.capacity() > scratch.capacity() {
                    std::mem::swap(scratch, &mut self.out);
                }
            });
        }
    }

    /// Writes whatever `out` holds; false if the socket failed.
    async fn flush_out(&mut self, socket: &mut Socket, deadline: &mut Option<Instant>) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let ok = write_wire(socket, &self.out, deadline, self.cfg.write_timeout).await;
        self.out.clear();
        ok
    }

    /// Carries out what the outbox handed over. Every batch is written under one deadline,
    /// armed only if the socket does not take it at once; a write blocked past the write
    /// timeout ends the connection.
    async fn apply(&mut self, next: Next, socket: &mut Socket, client: &Client) -> Wrote {
        let limit = self.cfg.write_timeout;
        let next = match self.write_plain(next, socket, client) {
            Plain::Wrote(wrote) => return wrote,
            Plain::Spilled(n) => return self.write_spill(n, socket, client).await,
            Plain::Not(next) => next,
        };
        match next {
            Next::Frames => match self.write_batch(socket, client).await {
                BatchEnd::Written(n) => self.written(n, client),
                BatchEnd::Fatal(n) => {
                    Counters::add(&self.cfg.counters.frames_out, n);
                    Box::pin(send_close(socket, CloseCode::EncryptionRequired, limit)).await;
                    client.outbox.shut();
                    Wrote::Done
                }
                BatchEnd::Failed => self.failed(client),
            },
            Next::Close(code) => {
                Box::pin(send_close(socket, code, limit)).await;
                client.outbox.shut();
                Wrote::Done
            }
            Next::Flush => {
                let flushed = Box::pin(tokio::time::timeout(limit, socket.flush())).await;
                if matches!(flushed, Ok(Ok(()))) {
                    Wrote::More
                } else {
                    self.failed(client)
                }
            }
            Next::Stop => Wrote::Done,
        }
    }

    /// Sends a transport ping; false if the socket failed.
    async fn ping(&mut self, socket: &mut Socket) -> bool {
        let sent = tokio::time::timeout(self.cfg.write_timeout, socket.ping()).await;
        matches!(sent, Ok(Ok(())))
    }

    /// Writes `out` once it holds at least `write_chunk` bytes; false if the socket failed.
    async fn write_full_chunk(
        &mut self,
        socket: &mut Socket,
        deadline: &mut Option<Instant>,
    ) -> bool {
        self.out.len() < self.cfg.write_chunk || self.flush_out(socket, deadline).await
    }

    /// Writes a batch with messages to seal, in order, assembled in `out` (the thread's buffer
    /// while it can be: [`Writer::take_scratch`]; sealing may wait) and written in chunks of
    /// `write_chunk`. For a v2 client that takes batched records, consecutive messages go into
    /// one record while they fit ([`v2::Batch`]): one seal for many messages.
    async fn write_batch(&mut self, socket: &mut Socket, client: &Client) -> BatchEnd {
        let mut deadline = None;
        let mut items = std::mem::take(&mut self.batch);
        let mut written = 0;
        let mut fatal = false;
        let mut ok = true;
        let mut since_yield = 0usize;
        // Frames gathered for a v2 client that takes batched records, sealed as one record
        // when the batch is full, before anything not sealed, and at the end. A message alone
        // (the usual case at a steady rate) is sealed where it lies, as without batches.
        let gather = self.v2_sealer.as_ref().is_some_and(|s| s.batches())
            && items
                .iter()
                .filter(|i| matches!(i, Queued::Seal(_) | Queued::SealRun(_)))
                .map(Queued::frames)
                .sum::<u64>()
                > 1;
        let mut gathered = v2::Batch::new();
        self.take_scratch();
        'items: for item in items.drain(..) {
            if !ok {
                break;
            }
            let to_seal: &[Arc<Outgoing>] = match &item {
                Queued::Install(_) => {
                    if let Queued::Install(sealer) = item {
                        self.v2_sealer = Some(sealer);
                    }
                    continue;
                }
                Queued::Seal(msg) => std::slice::from_ref(msg),
                Queued::SealRun(run) => run.msgs(),
                Queued::Frame(_) | Queued::Run(_) | Queued::Own(_) => {
                    if !self.seal_gathered(&mut gathered, client) {
                        fatal = true;
                        break 'items;
                    }
                    item.append_ready(&mut self.out);
                    written += item.frames();
                    &[]
                }
            };
            for msg in to_seal {
                if !ok {
                    break 'items;
                }
                if since_yield == SEALS_PER_YIELD {
                    since_yield = 0;
                    if !self.seal_gathered(&mut gathered, client) {
                        fatal = true;
                        break 'items;
                    }
                    // What is assembled goes out first, so the buffer can go back to the
                    // thread while other connections' tasks run.
                    if !self.flush_out(socket, &mut deadline).await {
                        ok = false;
                        break 'items;
                    }
                    self.return_scratch();
                    tokio::task::yield_now().await;
                    self.take_scratch();
                }
                since_yield += 1;
                match client.sealer.get() {
                    Some(Sealer::V2) if gather => {
                        let frame = msg.json();
                        if !gathered.fits(frame.len()) {
                            if !self.seal_gathered(&mut gathered, client) {
                                fatal = true;
                                break 'items;
                            }
                            ok = self.write_full_chunk(socket, &mut deadline).await;
                        }
                        gathered.push(frame);
                        written += 1;
                        continue;
                    }
                    Some(Sealer::V2) => {
                        let record = self
                            .v2_sealer
                            .as_mut()
                            .is_some_and(|sealer| seal_v2_wire(sealer, msg.json(), &mut self.out));
                        if !record {
                            // SECURITY: the hard record limit (or no sealer): the channel
                            // cannot go on, and skipping would be a gap.
                            tracing::warn!(client = %client.id, "v2 sealing failed; closing");
                            fatal = true;
                            break 'items;
                        }
                    }
                    Some(Sealer::Frame(sealer)) => {
                        if !sealer.seal_wire(msg.json_padded(), &mut self.out) {
                            tracing::warn!(client = %client.id, "sealing failed; message dropped");
                            continue;
                        }
                    }
                    Some(Sealer::Transform) => {
                        // Boxed: the transformer's state only exists while it runs, not in
                        // every connection's task.
                        let transformer = self.cfg.transformer.as_ref();
                        if !Box::pin(transform(client, msg, transformer, &mut self.out)).await {
                            continue;
                        }
                    }
                    None => continue,
                }
                written += 1;
                ok = self.write_full_chunk(socket, &mut deadline).await;
            }
            if ok {
                ok = self.write_full_chunk(socket, &mut deadline).await;
            }
        }
        if ok && !fatal && !self.seal_gathered(&mut gathered, client) {
            fatal = true;
        }
        // Keep the (emptied) list's allocation: the outbox swaps it in next time.
        items.clear();
        self.batch = items;
        if ok {
            ok = self.flush_out(socket, &mut deadline).await;
        }
        self.release_out();
        match (ok, fatal) {
            (false, _) => BatchEnd::Failed,
            (true, true) => BatchEnd::Fatal(written),
            (true, false) => BatchEnd::Written(written),
        }
    }

    /// Seals the frames gathered for a v2 client that takes batched records as its next record,
    /// in a WebSocket frame appended to `out`; false if sealing failed (the hard record limit):
    /// the channel cannot go on.
    fn seal_gathered(&mut self, gathered: &mut v2::Batch, client: &Client) -> bool {
        if gathered.is_empty() {
            return true;
        }
        let out = &mut self.out;
        let sealed = self.v2_sealer.as_deref_mut().is_some_and(|sealer| {
            gathered
                .seal_with(sealer, |sealer, text| {
                    if seal_v2_wire(sealer, text, out) {
                        Ok(())
                    } else {
                        Err(crate::crypto::CryptoError)
                    }
                })
                .is_ok()
        });
        if !sealed {
            // SECURITY: as for a single record: skipping would be a gap.
            tracing::warn!(client = %client.id, "v2 sealing failed; closing");
        }
        sealed
    }
}

/// Appends the complete WebSocket frame of `frame` sealed as the next v2 record to `out`; false,
/// with `out` as it was, if sealing failed.
fn seal_v2_wire(sealer: &mut v2::Sealer, frame: &[u8], out: &mut Vec<u8>) -> bool {
    v2::Sealer::sealed_len(frame.len())
        .is_some_and(|len| wire::push_text_frame_with(out, len, |out| sealer.seal_into(frame, out)))
}

/// Writes a plaintext batch through the thread's scratch buffer, in chunks of `chunk` bytes,
/// without waiting: whatever the socket does not take at once is appended to `spill` for the
/// caller to wait on. False if the socket failed.
fn write_plain_now(
    socket: &mut Socket,
    items: &[Queued],
    chunk: usize,
    spill: &mut Vec<u8>,
) -> bool {
    SCRATCH.with_borrow_mut(|buf| {
        buf.clear();
        let mut blocked = false;
        let mut ok = true;
        for item in items {
            if blocked {
                item.append_ready(spill);
                continue;
            }
            item.append_ready(buf);
            if buf.len() >= chunk {
                match hand_over(socket, buf, spill) {
                    Some(b) => blocked = b,
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
        }
        if ok && !blocked && !buf.is_empty() {
            ok = hand_over(socket, buf, spill).is_some();
        }
        buf.clear();
        if buf.capacity() > 2 * chunk {
            *buf = Vec::new();
        }
        ok
    })
}

/// Writes what `buf` holds without waiting and empties it; what the socket did not take goes
/// to `spill`. Returns whether the socket blocked, or `None` if it failed.
fn hand_over(socket: &mut Socket, buf: &mut Vec<u8>, spill: &mut Vec<u8>) -> Option<bool> {
    let n = try_write_now(socket, buf)?;
    let blocked = n < buf.len();
    spill.extend_from_slice(&buf[n..]);
    buf.clear();
    Some(blocked)
}

/// One write attempt that never waits: how many bytes the socket took (0 if a control frame
/// is still queued or the socket is full), or `None` if the socket failed.
fn try_write_now(socket: &mut Socket, bytes: &[u8]) -> Option<usize> {
    match std::future::poll_fn(|cx| socket.poll_write(cx, bytes)).now_or_never() {
        Some(Ok(0)) | Some(Err(_)) => None,
        Some(Ok(n)) => Some(n),
        None => Some(0),
    }
}

/// Writes complete frames to the socket, after any control frame still queued (a pong, say).
/// The usual case, a socket that takes everything at once, arms no timer; otherwise the
/// batch's deadline is armed (once per batch) and the write waits for it at most.
async fn write_wire(
    socket: &mut Socket,
    bytes: &[u8],
    deadline: &mut Option<Instant>,
    limit: Duration,
) -> bool {
    let rest = match try_write_now(socket, bytes) {
        Some(n) if n == bytes.len() => return true,
        Some(n) => &bytes[n..],
        None => return false,
    };
    let at = *deadline.get_or_insert_with(|| Instant::now() + limit);
    let slow = async { socket.write_all(rest).await.is_ok() };
    // Boxed: the timer and the wait exist only for a socket that blocked, not in every
    // connection's task.
    matches!(Box::pin(tokio::time::timeout_at(at, slow)).await, Ok(true))
}

/// How writing one batch ended.
enum BatchEnd {
    /// Every frame written.
    Written(u64),
    /// The v2 channel cannot go on (record limit, no sealer); these were written first.
    Fatal(u64),
    /// The socket failed or the write timed out.
    Failed,
}

/// Seals between yields: a writer sealing a long batch lets other connections' writers run
/// (256 short seals take ~50 µs). Each yield sends the task to the back of the run queue, its
/// buffers going cold, and writes what is assembled first (the buffer goes back to the thread):
/// yielding every 16 seals cost a fifth of the encrypted fan-out's CPU, and every 128 still
/// made a sealed delivery take ~10 % more than every 256.
const SEALS_PER_YIELD: usize = 256;

/// Sends a close frame (or, if the peer closed first, the echo of its close frame).
async fn send_close(socket: &mut Socket, code: CloseCode, limit: Duration) {
    let _ = tokio::time::timeout(limit, socket.close(code.code(), code.reason())).await;
}

/// Passes one message through the application's outbound transformer and appends the frame
/// to `out` (the message as it is when there is no transformer). Returns false when the
/// transformer dropped it.
async fn transform(
    client: &Client,
    msg: &Outgoing,
    transformer: Option<&Transformer>,
    out: &mut Vec<u8>,
) -> bool {
    let Some(transformer) = transformer else {
        out.extend_from_slice(msg.wire());
        return true;
    };
    let request = OutboundRequest {
        client_id: String::from(&*client.id),
        user_id: client.user_id().map(str::to_owned),
        event: String::from(&*msg.event),
        data: msg.data.clone(),
    };
    match transformer.apply(request, msg.text()).await {
        Some(text) => {
            wire::push_text_frame(out, text.as_bytes());
            true
        }
        None => false,
    }
}
/// The size of [`run`]'s future (what every connection's task keeps).
#[cfg(test)]
pub(crate) fn run_future_size() -> usize {
    tests::future_size(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn future_size<A, B, F: Future, G: Fn(A, B) -> F>(_: G) -> usize {
        size_of::<F>()
    }

    /// Every idle connection keeps its task's future: it must hold the waits, not the
    /// connection's state (that is one boxed `Connection`) nor the rare paths (boxed).
    #[test]
    fn the_connection_task_keeps_little_state() {
        let run = future_size(run);
        assert!(
            run <= 448,
            "the connection task's future grew to {run} bytes"
        );
        assert!(
            size_of::<Wake>() <= 64,
            "Wake grew to {} bytes",
            size_of::<Wake>()
        );
        assert!(
            size_of::<Slow>() <= 16,
            "Slow grew to {} bytes",
            size_of::<Slow>()
        );
    }
}
