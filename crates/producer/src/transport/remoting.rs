//! The remoting transport: RocketMQ's own protocol to name servers and brokers, through the
//! client instance's connections and route cache (Java's `MQClientAPIImpl.sendMessage`).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{Either, FutureExt};
use rmq_common::header::transaction::EndTransactionRequestHeader;
use rmq_common::MessageQueue;
use rmq_nameserver_client::{NameServerError, PublishRoute, TopicPublishInfo};
use rmq_remoting::{RemotingCommand, RemotingError, ResponseFuture};

use crate::error::ErrorKind;
use crate::instance::ClientInstance;
use crate::kernel::{build_request, process_response, WireConsts};
use crate::send_result::SendResult;

use super::{Attempt, EndTarget, Transport};

/// Sends through a [`ClientInstance`] with the header values of one producer.
#[derive(Debug)]
pub(crate) struct RemotingTransport {
    pub(crate) instance: Arc<ClientInstance>,
    wire: WireConsts,
}

impl RemotingTransport {
    pub(crate) fn new(instance: Arc<ClientInstance>, wire: WireConsts) -> Self {
        Self { instance, wire }
    }

    /// The master address of `broker`: from the send's route, else from the cache.
    fn broker_addr<'a>(&self, info: &'a TopicPublishInfo, broker: &str) -> Option<Cow<'a, str>> {
        info.master_addr(broker)
            .map(Cow::Borrowed)
            .or_else(|| self.instance.routes.master_addr(broker).map(Cow::Owned))
    }

    /// The deadline of `attempt`: its budget from its start (no clock read).
    fn deadline(attempt: &Attempt<'_>) -> tokio::time::Instant {
        attempt
            .started
            .checked_add(attempt.budget)
            .unwrap_or_else(|| rmq_remoting::deadline_after(attempt.budget))
    }

    /// The broker address and the request of `attempt`.
    fn request<'a>(
        &self,
        attempt: &Attempt<'a>,
    ) -> Result<(Cow<'a, str>, RemotingCommand), ErrorKind> {
        let (addr, born_ms) = self.target(attempt)?;
        let req = build_request(attempt.out, &self.wire, attempt.mq, born_ms);
        Ok((addr, req))
    }

    /// The broker address of `attempt` and the `bornTimestamp` of its request.
    fn target<'a>(&self, attempt: &Attempt<'a>) -> Result<(Cow<'a, str>, i64), ErrorKind> {
        let mq = attempt.mq;
        let found = match attempt.addr {
            Some(addr) => Some(Cow::Borrowed(&**addr)),
            None => self.broker_addr(attempt.info, &mq.broker_name),
        };
        let Some(addr) = found else {
            self.instance.routes.refresh_now(attempt.out.topic());
            return Err(ErrorKind::BrokerNotFound {
                broker: mq.broker_name.clone(),
            });
        };
        self.instance.note_broker(&addr);
        let born_ms = if attempt.born_at_prepare {
            attempt.out.born_ms
        } else {
            crate::kernel::wall_ms()
        };
        Ok((addr, born_ms))
    }
}

/// An attempt's request, built at once and owning all it needs, so that the send's state is
/// free to move (to wait for the answer) before the request is handed to the connection
/// ([`RemotingTransport::launch_prepared`]).
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The route's address shared (no copy per send), or one of its own.
    addr: Arc<str>,
    req: RemotingCommand,
    reading: Reading,
    deadline: tokio::time::Instant,
    budget: Duration,
}

impl RemotingTransport {
    /// The request of `attempt`, or the error that keeps it from being made (no broker
    /// address).
    pub(crate) fn prepare(&self, attempt: &Attempt<'_>) -> Result<Prepared, ErrorKind> {
        let (addr, born_ms) = self.target(attempt)?;
        let reading = Reading::of(attempt, matches!(addr, Cow::Owned(_)).then_some(&*addr));
        let addr = match attempt.addr {
            Some(shared) => Arc::clone(shared),
            None => Arc::from(&*addr),
        };
        // The request built last, in its field: not moved through the locals (each move of a
        // request is a copy of 152 bytes).
        Ok(Prepared {
            addr,
            reading,
            deadline: Self::deadline(attempt),
            budget: attempt.budget,
            req: build_request(attempt.out, &self.wire, attempt.mq, born_ms),
        })
    }

    /// Hands a prepared request to the connection: queued at once when nothing needs a wait
    /// (`None`), else the boxed future that waits and queues it. The answer is read
    /// (`process_response`) and handed to `on_answer`, exactly once, on the connection's task
    /// that has it: the reader (reply), the timer (timeout) or the writer (failure); an error
    /// that kept the request from being queued calls it here (or in the future). Dropped
    /// before it resolves (polled or not), the future calls `on_answer` with the transport's
    /// shutdown error.
    pub(crate) fn try_launch_prepared(
        &self,
        prepared: Prepared,
        on_answer: impl FnOnce(Result<SendResult, ErrorKind>) + Send + 'static,
    ) -> Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> {
        let Prepared {
            addr,
            req,
            mut reading,
            deadline,
            budget,
        } = prepared;
        self.instance.remoting.try_invoke_async_with_until(
            addr,
            req,
            deadline,
            budget,
            move |answer| {
                on_answer(reading.read(answer));
            },
        )
    }
}

/// What reading an attempt's answer needs (moved into the result, so nothing is copied twice).
#[derive(Debug)]
struct Reading {
    info: Arc<TopicPublishInfo>,
    /// The address, when it did not come from the route (which cannot change).
    addr: Option<String>,
    queue: MessageQueue,
    /// A batch's ids (a batch's result reports the broker's id or these). Empty for one
    /// message: its result's id is left to the send's state, which moves its own copy in
    /// ([`SendState::settle`](crate::retry::SendState::settle)), not copied per attempt here
    /// (the synchronous attempts' [`read_reply`] too).
    msg_id: String,
    is_batch: bool,
}

impl Reading {
    /// `owned_addr`: the address when it did not come from the route (rare: the broker is not
    /// in the send's route).
    fn of(attempt: &Attempt<'_>, owned_addr: Option<&str>) -> Self {
        let mq = attempt.mq;
        Self {
            info: Arc::clone(attempt.info),
            addr: owned_addr.map(str::to_owned),
            queue: MessageQueue::new(attempt.out.topic(), mq.broker_name.as_str(), mq.queue_id),
            msg_id: if attempt.out.is_batch() {
                attempt.out.msg_id.clone()
            } else {
                String::new()
            },
            is_batch: attempt.out.is_batch(),
        }
    }

    /// The attempt's outcome from the transport's answer (once: the queue and id move out).
    fn read(
        &mut self,
        answer: Result<RemotingCommand, RemotingError>,
    ) -> Result<SendResult, ErrorKind> {
        let broker = self.queue.broker_name.as_str();
        // The reply is read where it is (not moved out of the answer: 152 bytes, issue 13).
        match answer {
            Ok(ref resp) => {
                let queue = std::mem::take(&mut self.queue);
                let msg_id = std::mem::take(&mut self.msg_id);
                // Looked up only for a refusal (the route's, unless the attempt had its own).
                let (own, info) = (&self.addr, &self.info);
                let addr = |broker: &str| {
                    own.as_deref()
                        .or_else(|| info.master_addr(broker))
                        .unwrap_or_default()
                        .to_owned()
                };
                process_response(resp, msg_id, self.is_batch, queue, addr)
            }
            Err(source) => Err(transport_error(broker, source)),
        }
    }
}

/// An attempt written to a broker: the transport's answer future and what reading the answer
/// needs.
#[derive(Debug)]
pub(crate) struct RemotingPending {
    fut: ResponseFuture,
    reading: Reading,
}

impl Future for RemotingPending {
    type Output = Result<SendResult, ErrorKind>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = match Pin::new(&mut self.fut).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(answer) => answer,
        };
        Poll::Ready(self.reading.read(answer))
    }
}

impl Transport for RemotingTransport {
    type Pending = RemotingPending;

    fn store_addr<'a>(&self, info: &'a TopicPublishInfo, broker: &str) -> Option<Cow<'a, str>> {
        self.broker_addr(info, broker)
    }

    fn cached_route(&self, topic: &str, now: tokio::time::Instant) -> Option<Arc<PublishRoute>> {
        self.instance.routes.cached_route(topic, now)
    }

    async fn load_route(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<Arc<PublishRoute>, ErrorKind> {
        let info = match self
            .instance
            .routes
            .publish_route(topic, true, timeout)
            .await
        {
            Err(
                source @ (NameServerError::TopicNotExist { .. }
                | NameServerError::NoWritableMaster { .. }),
            ) => {
                return Err(ErrorKind::NoRoute {
                    topic: topic.to_owned(),
                    source: Some(source),
                })
            }
            Err(source) => return Err(ErrorKind::NameServer(source)),
            Ok(info) => info,
        };
        if info.info().is_ok() {
            Ok(info)
        } else {
            Err(ErrorKind::NoRoute {
                topic: topic.to_owned(),
                source: None,
            })
        }
    }

    async fn launch(&self, attempt: Attempt<'_>) -> Result<RemotingPending, ErrorKind> {
        let (addr, req) = self.request(&attempt)?;
        let mq = attempt.mq;
        let fut = self
            .instance
            .remoting
            .invoke_async(&addr, req, attempt.budget)
            .await
            .map_err(|e| transport_error(&mq.broker_name, e))?;
        Ok(RemotingPending {
            fut,
            reading: Reading::of(&attempt, matches!(addr, Cow::Owned(_)).then_some(&*addr)),
        })
    }

    // Not an `async fn`: the request is built here, at once, and the future is the
    // connection's call with the reply's reading mapped on, holding what it reads by reference
    // (no state of its own around the call: every await copies a future whole, issue 13). The
    // caller polls it at once.
    fn call<'a>(
        &'a self,
        attempt: Attempt<'a>,
    ) -> impl Future<Output = Result<SendResult, ErrorKind>> + Send + 'a {
        let Attempt {
            mq, out, budget, ..
        } = attempt;
        let deadline = Self::deadline(&attempt);
        match self.request(&attempt) {
            Ok((Cow::Borrowed(addr), req)) => Either::Left(
                self.instance
                    .remoting
                    .invoke_sync_until(addr, req, deadline, budget)
                    .map(move |answer| read_reply(answer, mq, out, addr)),
            ),
            // Rare: the broker is not in the send's route (boxed, off the common path).
            Ok((Cow::Owned(addr), req)) => Either::Right(Box::pin(async move {
                let answer = self
                    .instance
                    .remoting
                    .invoke_sync_until(&addr, req, deadline, budget)
                    .await;
                read_reply(answer, mq, out, &addr)
            }) as BoxedCall<'a>),
            Err(e) => Either::Right(Box::pin(std::future::ready(Err(e))) as BoxedCall<'a>),
        }
    }

    async fn oneway(&self, attempt: Attempt<'_>) -> Result<(), ErrorKind> {
        let (addr, req) = self.request(&attempt)?;
        self.instance
            .remoting
            .invoke_oneway(&addr, req, attempt.budget)
            .await
            .map_err(|e| transport_error(&attempt.mq.broker_name, e))
    }

    async fn end_transaction(
        &self,
        to: EndTarget<'_>,
        header: EndTransactionRequestHeader,
        remark: Option<String>,
        timeout: Duration,
    ) -> Result<(), ErrorKind> {
        let (broker, addr) = match to {
            EndTarget::Broker(name) => match self.instance.routes.master_addr(name) {
                Some(addr) => (name.to_owned(), addr),
                None => {
                    return Err(ErrorKind::BrokerNotFound {
                        broker: name.to_owned(),
                    })
                }
            },
            EndTarget::Addr(addr) => (
                header.broker_name.clone().unwrap_or_default(),
                addr.to_owned(),
            ),
        };
        let req = crate::transaction::end_request(
            &header,
            remark,
            self.wire.serialize_type(),
            self.wire.language(),
        );
        self.instance
            .remoting
            .invoke_oneway(&addr, req, timeout)
            .await
            .map_err(|e| transport_error(&broker, e))
    }
}

/// The rare forms of [`RemotingTransport::call`](Transport::call).
type BoxedCall<'a> = Pin<Box<dyn Future<Output = Result<SendResult, ErrorKind>> + Send + 'a>>;

/// A synchronous attempt's outcome from the connection's answer. One message's id is left to
/// the send's state, as for [`Reading`].
fn read_reply(
    answer: Result<RemotingCommand, RemotingError>,
    mq: &MessageQueue,
    out: &crate::kernel::Outgoing,
    addr: &str,
) -> Result<SendResult, ErrorKind> {
    let resp = answer.map_err(|e| transport_error(&mq.broker_name, e))?;
    let queue = MessageQueue::new(out.topic(), mq.broker_name.as_str(), mq.queue_id);
    let msg_id = if out.is_batch() {
        out.msg_id.clone()
    } else {
        String::new()
    };
    process_response(&resp, msg_id, out.is_batch(), queue, |_| addr.to_owned())
}

fn transport_error(broker: &str, source: RemotingError) -> ErrorKind {
    ErrorKind::Transport {
        broker: broker.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use rmq_common::ResponseCode;

    use super::*;

    fn reading(addr: Option<&str>) -> Reading {
        let mut info = TopicPublishInfo::default();
        info.broker_addrs
            .insert("broker-a".to_owned(), "10.0.0.1:10911".to_owned());
        Reading {
            info: Arc::new(info),
            addr: addr.map(str::to_owned),
            queue: MessageQueue::new("T", "broker-a", 2),
            msg_id: "ID".to_owned(),
            is_batch: false,
        }
    }

    fn refused_addr(mut r: Reading) -> String {
        let resp = RemotingCommand::response(ResponseCode(17), Some("no".into()));
        match r.read(Ok(resp)) {
            Err(ErrorKind::Broker { addr, broker, .. }) => {
                assert_eq!(broker, "broker-a");
                addr
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refusal_names_the_route_address_or_the_attempt_own() {
        // The address is looked up only for a refusal: the route's for the queue's broker,
        // unless the attempt resolved one of its own.
        assert_eq!(refused_addr(reading(None)), "10.0.0.1:10911");
        assert_eq!(
            refused_addr(reading(Some("10.0.0.9:10911"))),
            "10.0.0.9:10911"
        );
        let mut gone = reading(None);
        gone.queue.broker_name = "broker-x".to_owned();
        let resp = RemotingCommand::response(ResponseCode(17), None);
        assert!(matches!(
            gone.read(Ok(resp)),
            Err(ErrorKind::Broker { addr, .. }) if addr.is_empty()
        ));
    }
}
