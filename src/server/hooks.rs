//! The application's hooks: authenticate (required), validate rooms, connected, disconnected,
//! message handler. Each is an async closure; errors and panics are caught and logged, never
//! fatal to the server.

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use futures_util::{FutureExt, future::CatchUnwind};
use serde::de::DeserializeOwned;
use serde_json::{Value, value::RawValue};

use crate::{broker::BoxFuture, hub::Identity};

/// The error type hooks return.
pub type HookError = Box<dyn std::error::Error + Send + Sync + 'static>;
/// The result type hooks return.
pub type HookResult<T> = Result<T, HookError>;

/// The `authenticate` event's payload.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The connecting client's id.
    pub client_id: String,
    /// The `data` of the `authenticate` event, as sent (`null` when absent).
    pub data: Box<RawValue>,
}

impl AuthRequest {
    /// Deserializes the payload into your credentials type.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data.get())
    }

    /// The payload's `token` string, if it has one.
    pub fn token(&self) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
        }
        self.data::<Token>().ok().and_then(|t| t.token)
    }
}

/// A client's request to join rooms, already filtered by the room-name rules.
#[derive(Debug, Clone)]
pub struct RoomRequest {
    /// The client.
    pub client_id: String,
    /// Its user.
    pub user_id: Option<String>,
    /// The requested rooms that passed the name rules and that it is not in yet.
    pub rooms: Vec<String>,
}

/// A client that connected (authenticated) or disconnected.
#[derive(Debug, Clone)]
pub struct ClientEvent {
    /// The client.
    pub client_id: String,
    /// Its user.
    pub user_id: Option<String>,
    /// Metadata from the authenticate hook.
    pub metadata: Option<Value>,
}

/// An application event from an authenticated client.
#[derive(Debug, Clone)]
pub struct MessageEvent {
    /// The server that received it, for replying and fanning out from the handler.
    pub server: crate::Server,
    /// The client.
    pub client_id: String,
    /// Its user.
    pub user_id: Option<String>,
    /// The event name (never a system event).
    pub event: String,
    /// The payload, raw JSON.
    pub data: Option<Box<RawValue>>,
    /// The optional message id.
    pub id: Option<String>,
}

impl MessageEvent {
    /// Deserializes the payload.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data.as_deref().map_or("null", RawValue::get))
    }
}

pub(crate) type Hook<A, R> = Arc<dyn Fn(A) -> BoxFuture<'static, HookResult<R>> + Send + Sync>;

pub(crate) fn hook<A, R, F, Fut>(f: F) -> Hook<A, R>
where
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HookResult<R>> + Send + 'static,
{
    Arc::new(move |a| Box::pin(f(a)))
}

/// Runs a hook, turning a panic into an error so one bad callback cannot take a session's
/// cleanup down with it.
pub(crate) async fn call<A, R>(name: &'static str, hook: &Hook<A, R>, arg: A) -> HookResult<R> {
    call_unpin(name, hook, arg).await
}

/// [`call`] as a future that is `Unpin` (the hook's own boxed future is all it holds), so a
/// caller can poll it once in place and, if it is not ready, keep it and await it later
/// without boxing a future of its own.
pub(crate) fn call_unpin<A, R>(name: &'static str, hook: &Hook<A, R>, arg: A) -> Unpinned<R> {
    Unpinned {
        name,
        inner: AssertUnwindSafe(hook(arg)).catch_unwind(),
    }
}

/// A hook's result under way: see [`call_unpin`].
pub(crate) struct Unpinned<R> {
    name: &'static str,
    inner: CatchUnwind<AssertUnwindSafe<BoxFuture<'static, HookResult<R>>>>,
}

impl<R> Future for Unpinned<R> {
    type Output = HookResult<R>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let name = self.name;
        Poll::Ready(match ready!(self.inner.poll_unpin(cx)) {
            Ok(result) => result,
            Err(_) => Err(format!("{name} hook panicked").into()),
        })
    }
}

/// The hooks a server was built with.
#[derive(Clone)]
pub(crate) struct Hooks {
    pub(crate) authenticate: Hook<AuthRequest, Option<Identity>>,
    pub(crate) validate_rooms: Option<Hook<RoomRequest, Vec<String>>>,
    pub(crate) connected: Option<Hook<ClientEvent, ()>>,
    pub(crate) disconnected: Option<Hook<ClientEvent, ()>>,
    pub(crate) message: Option<Hook<MessageEvent, ()>>,
}
