//! Run-time fault knobs shared by the mock name server and broker.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rmq_common::ResponseCode;
use rmq_remoting::RequestContext;

/// A frame no RocketMQ peer can decode: the header-length word announces 255 header bytes but
/// only 4 follow (Java: "bad header length"; [`rmq_remoting::DecodeError::HeaderTooLong`]).
pub const MALFORMED_FRAME: &[u8] = &[0, 0, 0, 8, 0, 0, 0, 0xFF, b'{', b'}', b'{', b'}'];

/// One scripted answer, consumed by one request (a send for a broker, a route request for a
/// name server).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// Answer with this code and remark. For a broker, the stored codes (`FLUSH_DISK_TIMEOUT`,
    /// `FLUSH_SLAVE_TIMEOUT`, `SLAVE_NOT_AVAILABLE`) store the message and answer with the full
    /// send response header; the others store nothing.
    Code(ResponseCode, Option<String>),
    /// Write [`MALFORMED_FRAME`] instead of the answer.
    Malformed,
    /// Swallow the request: no answer.
    NoReply,
    /// Close the connection instead of answering.
    Close,
}

impl From<ResponseCode> for Reply {
    fn from(code: ResponseCode) -> Self {
        Self::Code(code, Some(format!("scripted {code}")))
    }
}

/// Which requests a server "shutting down" refuses with `GO_AWAY` (1500, "please go away"),
/// unprocessed, as a Java 5.2+ broker or proxy does once its shutdown began (Java sends it only
/// to clients advertising a version above 441 / 475; this knob ignores the version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GoAway {
    /// Requests are processed (the default).
    #[default]
    Off,
    /// Requests arriving on the connections already seen when the knob was set are refused;
    /// requests on connections opened after are processed (a proxy restarting behind a load
    /// balancer: a new connection reaches a live instance).
    SeenConnections,
    /// Every request is refused.
    All,
}

#[derive(Debug, Default)]
struct State {
    delay: Duration,
    black_hole: bool,
    script: VecDeque<Reply>,
    go_away: GoAway,
    /// Peers (client connections) seen so far, bounded.
    seen: HashSet<SocketAddr>,
    /// The peers `GoAway::SeenConnections` refuses.
    refused: HashSet<SocketAddr>,
}

/// How many client connections a mock remembers for [`GoAway::SeenConnections`].
const MAX_SEEN: usize = 65_536;

/// Fault settings of one mock server, changeable at run time from any clone.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<State>>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delays every answer by `delay` (zero: no delay).
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// When on, requests are read and never answered.
    pub fn set_black_hole(&self, on: bool) {
        self.lock().black_hole = on;
    }

    /// Queues scripted answers, consumed one per request in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().script.extend(replies);
    }

    /// Queues scripted response codes (see [`Reply::Code`]).
    pub fn script_codes(&self, codes: impl IntoIterator<Item = ResponseCode>) {
        self.script(codes.into_iter().map(Reply::from));
    }

    /// Drops every scripted answer not yet consumed.
    pub fn clear_script(&self) {
        self.lock().script.clear();
    }

    /// Scripted answers not yet consumed.
    #[must_use]
    pub fn scripted_left(&self) -> usize {
        self.lock().script.len()
    }

    /// Starts (or stops, with [`GoAway::Off`]) refusing requests with `GO_AWAY`. A request that
    /// arrived before the call is not affected (it completes as it would have).
    pub fn set_go_away(&self, mode: GoAway) {
        let mut state = self.lock();
        state.refused = match mode {
            GoAway::SeenConnections => state.seen.clone(),
            GoAway::Off | GoAway::All => HashSet::new(),
        };
        state.go_away = mode;
    }

    /// Resets delay, black hole, script and `GO_AWAY`.
    pub fn reset(&self) {
        *self.lock() = State::default();
    }

    pub(crate) fn next_scripted(&self) -> Option<Reply> {
        self.lock().script.pop_front()
    }
}

pub(crate) fn malformed_frame() -> Bytes {
    Bytes::from_static(MALFORMED_FRAME)
}

/// What a request should get after the fault knobs had their say.
pub(crate) enum Gate {
    /// Handle it; `Some` is a scripted code to answer instead of the normal answer.
    Proceed(Option<(ResponseCode, Option<String>)>),
    /// Answer this code without handling the request (`GO_AWAY`).
    Refuse(ResponseCode, Option<String>),
    /// Already dealt with (black hole, malformed frame, close): send nothing.
    Done,
}

/// The delay and black-hole settings in force when a request arrived.
///
/// Taken before the request is counted, so a test that waits for the count and then changes a
/// knob never changes what that request gets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    delay: Duration,
    black_hole: bool,
    go_away: bool,
}

impl Faults {
    /// The settings that apply to a request arriving now on the connection of `ctx`.
    pub(crate) fn arrival(&self, ctx: &RequestContext) -> Arrival {
        let mut state = self.lock();
        let peer = ctx.peer_addr();
        if state.seen.len() < MAX_SEEN {
            state.seen.insert(peer);
        }
        let go_away = match state.go_away {
            GoAway::Off => false,
            GoAway::All => true,
            GoAway::SeenConnections => state.refused.contains(&peer),
        };
        Arrival {
            delay: state.delay,
            black_hole: state.black_hole,
            go_away,
        }
    }

    /// Applies the delay and black hole of `arrival`, then (when `scripted`) the next scripted
    /// reply.
    pub(crate) async fn gate(
        &self,
        arrival: Arrival,
        ctx: &RequestContext,
        scripted: bool,
    ) -> Gate {
        if arrival.go_away {
            // Answered at once, before anything else (Java: first thing in
            // `processRequestCommand`).
            return Gate::Refuse(ResponseCode::GO_AWAY, Some("please go away".to_owned()));
        }
        if arrival.black_hole {
            return Gate::Done;
        }
        if !arrival.delay.is_zero() {
            tokio::time::sleep(arrival.delay).await;
        }
        if !scripted {
            return Gate::Proceed(None);
        }
        match self.next_scripted() {
            None => Gate::Proceed(None),
            Some(Reply::Code(code, remark)) => Gate::Proceed(Some((code, remark))),
            Some(Reply::Malformed) => {
                if let Err(e) = ctx.connection().send_raw(malformed_frame()) {
                    tracing::debug!(error = %e, "malformed frame not sent");
                }
                Gate::Done
            }
            Some(Reply::NoReply) => Gate::Done,
            Some(Reply::Close) => {
                ctx.connection().close();
                Gate::Done
            }
        }
    }
}
