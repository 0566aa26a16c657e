//! One actor per SSE stream, a temporary child of the `connections`
//! supervisor like every other connection (`sse:<peer>` in the tree).
//!
//! The actor owns the task that reads the event hub and feeds the HTTP
//! response: when the client goes away the feed fails and the actor stops;
//! when the actor is stopped or killed (shutdown, `roost admin kill`), the
//! task is aborted (with the actor's state) and the stream ends.

use axum::response::sse::Event;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use roost_actors::events::EventHub;
use roost_actors::task::TaskGuard;
use std::convert::Infallible;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// Events buffered for one slow client before it is told it lagged.
pub const SSE_BUFFER: usize = 256;

pub type Feed = mpsc::Sender<Result<Event, Infallible>>;

pub struct SseSession;

pub struct SseArgs {
    pub account: String,
    pub hub: EventHub,
    pub feed: Feed,
}

pub struct SseState {
    _pump: TaskGuard,
}

impl Actor for SseSession {
    type Msg = ();
    type State = SseState;
    type Arguments = SseArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: SseArgs,
    ) -> Result<SseState, ActorProcessingErr> {
        let mut rx = args.hub.subscribe();
        let pump = TaskGuard::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(ev) if ev.account == args.account => {
                        match Event::default().event("change").json_data(&*ev) {
                            Ok(e) => e,
                            Err(_) => continue,
                        }
                    }
                    Ok(_) => continue,
                    // The client fell behind: tell it to reload its view.
                    Err(RecvError::Lagged(_)) => Event::default().event("lagged").data("reload"),
                    Err(RecvError::Closed) => break,
                };
                if args.feed.send(Ok(event)).await.is_err() {
                    break; // the client went away
                }
            }
            myself.stop(None);
        });
        Ok(SseState { _pump: pump })
    }
}
