//! A scripted [`Transport`] for unit tests of the send loop: each broker answers with the steps
//! the test gives it, on tokio's (paused) clock, and every attempt is recorded.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmq_common::header::transaction::EndTransactionRequestHeader;
use rmq_common::{MessageQueue, OffsetMessageId, ResponseCode};
use rmq_nameserver_client::{PublishRoute, TopicPublishInfo};
use rmq_remoting::RemotingError;
use tokio::time::Instant;

use super::{Attempt, EndTarget, Transport};
use crate::error::ErrorKind;
use crate::send_result::{SendResult, SendStatus};

/// What a broker does with one attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// Answers SEND_OK after this long.
    Ok(Duration),
    /// Refuses with this code at once (certainly not stored).
    Refuse(ResponseCode),
    /// The connection fails before the request is written.
    Unwritten,
    /// The request is written and the connection then drops after this long (maybe stored).
    WrittenThenClosed(Duration),
    /// Never answers: the attempt times out at its budget, written (a black hole).
    BlackHole,
    /// Refused at once by the transport's reconnect backoff for this long (never written).
    BackedOff(Duration),
    /// Stored at once with this status (FLUSH_DISK_TIMEOUT, ...).
    Stored(SendStatus),
}

/// One recorded attempt.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) broker: String,
    pub(crate) budget: Duration,
    pub(crate) at: Instant,
    /// The queue id asked for.
    pub(crate) queue_id: i32,
    /// The message ids sent (a batch's, in order).
    pub(crate) ids: Vec<String>,
    /// The `bornTimestamp` the attempt carried (`None`: the transport reads the clock).
    pub(crate) born_ms: Option<i64>,
}

/// Brokers `broker-a`, `broker-b`, ... with scripted steps (`Ok(0)` once a script runs out).
#[derive(Debug)]
pub(crate) struct FakeTransport {
    route: Arc<PublishRoute>,
    scripts: Mutex<HashMap<String, VecDeque<Step>>>,
    /// Steps for the next attempts whatever their broker, used before the brokers' own.
    next: Mutex<VecDeque<Step>>,
    calls: Mutex<Vec<Call>>,
    /// `END_TRANSACTION`s: where to (`broker:NAME` or the address), header, remark.
    ends: Mutex<Vec<(String, EndTransactionRequestHeader, Option<String>)>>,
}

type Answer = Pin<Box<dyn Future<Output = Result<SendResult, ErrorKind>> + Send>>;

impl FakeTransport {
    /// A topic `T` over `brokers` brokers of `queues` queues each.
    pub(crate) fn new(brokers: usize, queues: i32) -> Self {
        let names: Vec<String> = (0..brokers)
            .map(|i| format!("broker-{}", char::from(b'a' + u8::try_from(i).unwrap_or(0))))
            .collect();
        let route = TopicPublishInfo {
            queues: names
                .iter()
                .flat_map(|b| (0..queues).map(move |q| MessageQueue::new("T", b.as_str(), q)))
                .collect(),
            order_topic: false,
            broker_addrs: names
                .iter()
                .enumerate()
                .map(|(i, b)| (b.clone(), format!("127.0.0.1:{}", 10_000 + i)))
                .collect(),
            static_endpoints: BTreeMap::new(),
        };
        Self {
            route: Arc::new(PublishRoute::new(Arc::new(route))),
            scripts: Mutex::default(),
            next: Mutex::default(),
            calls: Mutex::default(),
            ends: Mutex::default(),
        }
    }

    /// Every `END_TRANSACTION` so far.
    pub(crate) fn ends(&self) -> Vec<(String, EndTransactionRequestHeader, Option<String>)> {
        self.ends.lock().expect("ends").clone()
    }

    /// Appends `steps` to `broker`'s script.
    pub(crate) fn script(&self, broker: &str, steps: &[Step]) {
        let mut scripts = self.scripts.lock().expect("scripts");
        scripts
            .entry(broker.to_owned())
            .or_default()
            .extend(steps.iter().copied());
    }

    /// Appends `steps` for the next attempts, whatever broker they go to.
    pub(crate) fn script_next(&self, steps: &[Step]) {
        self.next
            .lock()
            .expect("next")
            .extend(steps.iter().copied());
    }

    /// Every attempt so far.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    fn answer(&self, attempt: &Attempt<'_>) -> Answer {
        let broker = attempt.mq.broker_name.clone();
        self.calls.lock().expect("calls").push(Call {
            broker: broker.clone(),
            budget: attempt.budget,
            at: Instant::now(),
            queue_id: attempt.mq.queue_id,
            ids: attempt.out.msg_id.split(',').map(str::to_owned).collect(),
            born_ms: attempt.born_at_prepare.then_some(attempt.out.born_ms),
        });
        let next = self.next.lock().expect("next").pop_front();
        let step = next
            .or_else(|| {
                let mut scripts = self.scripts.lock().expect("scripts");
                scripts.get_mut(&broker).and_then(VecDeque::pop_front)
            })
            .unwrap_or(Step::Ok(Duration::ZERO));
        let budget = attempt.budget;
        let queue = attempt.mq.clone();
        let msg_id = attempt.out.msg_id.clone();
        let addr = || "127.0.0.1:1".to_owned();
        Box::pin(async move {
            let transport = |source| ErrorKind::Transport {
                broker: queue.broker_name.clone(),
                source,
            };
            let timeout = || RemotingError::Timeout {
                addr: addr(),
                opaque: 1,
                after: budget,
                written: true,
            };
            // As a broker answers: the offset id of the store host (offset 4096, then one per
            // message of a batch, 100 bytes apart) and the message's id as the transaction id.
            let offset_ids = (0..msg_id.split(',').count())
                .map(|i| {
                    let offset = 4096 + 100 * i64::try_from(i).unwrap_or(0);
                    OffsetMessageId::new(([127, 0, 0, 1], 10_911).into(), offset).encode()
                })
                .collect::<Vec<_>>()
                .join(",");
            let stored = |status| SendResult {
                status,
                offset_msg_id: offset_ids.clone(),
                transaction_id: Some(msg_id.clone()),
                msg_id: msg_id.clone(),
                queue: queue.clone(),
                queue_offset: 7,
                region_id: "DefaultRegion".into(),
                trace_on: true,
                recall_handle: None,
            };
            match step {
                Step::Ok(after) if after < budget => {
                    tokio::time::sleep(after).await;
                    Ok(stored(SendStatus::SendOk))
                }
                Step::Stored(status) => Ok(stored(status)),
                Step::Ok(_) | Step::BlackHole => {
                    tokio::time::sleep(budget).await;
                    Err(transport(timeout()))
                }
                Step::Refuse(code) => Err(ErrorKind::Broker {
                    code,
                    remark: None,
                    broker: queue.broker_name.clone(),
                    addr: addr(),
                }),
                Step::BackedOff(retry_in) => Err(transport(RemotingError::Backoff {
                    addr: addr(),
                    retry_in,
                    last: Arc::new(RemotingError::Connect {
                        addr: addr(),
                        source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                    }),
                })),
                Step::Unwritten => Err(transport(RemotingError::ConnectionClosed {
                    addr: addr(),
                    written: false,
                })),
                Step::WrittenThenClosed(after) => {
                    tokio::time::sleep(after.min(budget)).await;
                    Err(transport(RemotingError::ConnectionClosed {
                        addr: addr(),
                        written: true,
                    }))
                }
            }
        })
    }
}

impl Transport for FakeTransport {
    type Pending = Answer;

    fn cached_route(&self, _topic: &str, _now: Instant) -> Option<Arc<PublishRoute>> {
        Some(Arc::clone(&self.route))
    }

    async fn load_route(
        &self,
        _topic: &str,
        _timeout: Duration,
    ) -> Result<Arc<PublishRoute>, ErrorKind> {
        Ok(Arc::clone(&self.route))
    }

    async fn launch(&self, attempt: Attempt<'_>) -> Result<Answer, ErrorKind> {
        Ok(self.answer(&attempt))
    }

    async fn call<'a>(&'a self, attempt: Attempt<'a>) -> Result<SendResult, ErrorKind> {
        self.answer(&attempt).await
    }

    async fn oneway(&self, attempt: Attempt<'_>) -> Result<(), ErrorKind> {
        self.answer(&attempt).await.map(|_| ())
    }

    async fn end_transaction(
        &self,
        to: EndTarget<'_>,
        header: EndTransactionRequestHeader,
        remark: Option<String>,
        _timeout: Duration,
    ) -> Result<(), ErrorKind> {
        let to = match to {
            EndTarget::Broker(name) => format!("broker:{name}"),
            EndTarget::Addr(addr) => addr.to_owned(),
        };
        self.ends.lock().expect("ends").push((to, header, remark));
        Ok(())
    }
}
