//! Accepting, bounding and closing connections. `axum::serve` has no header timeout and no cap
//! on open connections, so a few hundred clients that send a request head byte by byte, or
//! twenty thousand that connect and say nothing, held the server's file descriptors until
//! `accept` failed and even `/health` went unanswered. This loop serves HTTP/1 with hyper
//! directly (the only protocol the axum build here speaks) and adds:
//!
//! * a header timeout: a connection must deliver a complete request head within it of the
//!   server starting to wait for one, on a new connection or between keep-alive requests, so
//!   it is the idle timeout too (hyper runs one timer for both). It never runs while a request
//!   is being answered, however long the generation takes;
//! * a cap on open connections: past it the loop stops accepting, and new connections wait in
//!   the kernel's listen backlog (costing no descriptor here) until one closes;
//! * graceful shutdown: on `stop` the listener closes, idle connections close, and those with a
//!   request in flight close once it is answered. The [`Deadline`] cuts what is left.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::Event as SseEvent;
use axum::Router;
use futures::stream::{self, Stream, StreamExt};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::ApiError;

pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: u32,
    /// Longest wait for a complete request head (and so for the next request on an idle
    /// keep-alive connection).
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `stop` resolves, then until every connection has closed.
pub async fn serve(listener: TcpListener, app: Router, limits: ConnectionLimits, stop: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (closing_tx, closing) = watch::channel(false);
    let mut stop = pin!(stop);
    loop {
        // A slot first: at the cap, new connections stay unaccepted in the backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        tokio::spawn(serve_connection(stream, app.clone(), limits.header_timeout, closing.clone(), slot));
    }
    drop(listener);
    let _ = closing_tx.send(true);
    // Each connection holds its slot until it closes: all slots back means all closed.
    let _ = slots.acquire_many(limits.max_connections).await;
}

async fn serve_connection(
    stream: TcpStream,
    app: Router,
    header_timeout: Duration,
    mut closing: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    // `half_close` stays off. On, a client that half-closes after its request gets its answer,
    // but a half-close looks the same as a client that went away (a FIN either way): tried,
    // the abandoned request of tests/integration/isolation.rs ran all its 800 tokens instead of being
    // cancelled.
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app)));
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = async { let _ = closing.wait_for(|closing| *closing).await; } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("connection ended: {e}");
    }
}

/// Errors about one connection (reset before it was accepted) are the client's; others (out of
/// file descriptors) would repeat at once, so the loop pauses before the next try.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::*;
    if !matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        tracing::error!("accept failed: {error}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Passes when the shutdown deadline does (`--shutdown-timeout` after the signal). Streams
/// still open then end with an error event rather than a bare close, so a client can tell a
/// cut answer from a finished one.
#[derive(Clone)]
pub struct Deadline(Arc<watch::Sender<bool>>);

impl Default for Deadline {
    fn default() -> Self {
        Deadline(Arc::new(watch::channel(false).0))
    }
}

impl Deadline {
    pub fn pass(&self) {
        self.0.send_replace(true);
    }

    fn has_passed(&self) -> bool {
        *self.0.borrow()
    }

    async fn passed(&self) {
        let _ = self.0.subscribe().wait_for(|passed| *passed).await;
    }

    /// `events` (a whole SSE answer, `[DONE]` included) until the deadline, where it ends with
    /// an error event instead.
    pub fn cut(
        &self,
        events: impl Stream<Item = SseEvent> + Send + 'static,
    ) -> impl Stream<Item = SseEvent> + Send + 'static {
        let (deadline, after) = (self.clone(), self.clone());
        let error = || SseEvent::default().data(ApiError::shut_down().body().to_string());
        events
            .take_until(async move { deadline.passed().await })
            .chain(stream::once(async move { after.has_passed().then(error) }).filter_map(futures::future::ready))
    }
}
