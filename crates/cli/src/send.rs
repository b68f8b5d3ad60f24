//! `rmq send`: builds the message(s), sends them in the chosen mode and prints one JSON line per
//! result, in send order.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IsTerminal, Read};
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use rmq_common::message_id::UniqIdGenerator;
use rmq_common::{property, Message, MessageQueue};
use rmq_producer::{Producer, ProducerBuilder, SendOptions, SendResult};

use crate::cli::{SendArgs, SendMode};
use crate::fatal::Fatal;
use crate::output::{
    print_stdout, to_json, ErrorLine, OnewayLine, SendLine, Tally, ONEWAY_WRITTEN,
};

/// The body sent when neither `--body` nor `--body-file` is given.
pub(crate) const DEFAULT_BODY: &str = "Hello RocketMQ from rmq";

/// Async sends (or batches) in flight at once before the oldest is awaited and printed.
const WINDOW: usize = 1024;

/// What one send unit (a message or a batch) gave.
type Outcome = Result<Sent, ErrorLine>;

/// A successful send unit.
#[derive(Debug)]
enum Sent {
    Stored(SendResult),
    Oneway { msg_id: String, topic: String },
}

type Pending = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Runs `rmq send` against `namesrv`; returns the exit code.
pub(crate) async fn run(args: &SendArgs, namesrv: &str) -> Result<u8, Fatal> {
    check_combinations(args)?;
    let template = template(args, read_body(args)?)?;
    let mut builder = args.extras.configure(
        ProducerBuilder::new(args.group.as_str())
            .name_server(namesrv)
            .send_timeout(Duration::from_millis(args.timeout_ms)),
    );
    if let Some(tls) = args.target.namesrv.tls.config()? {
        builder = builder.tls(tls);
    }
    builder = args.target.namespace.apply(builder);
    builder = args.trace.apply(builder);
    builder = args.target.namesrv.proxy.apply(builder);
    let queue = args
        .queue
        .as_ref()
        .map(|q| MessageQueue::new(args.topic.as_str(), q.broker.as_str(), q.queue_id));
    if let Some(decision) = args.transaction {
        return crate::send_tx::run(args, builder, &template, decision.into(), queue).await;
    }
    let producer = builder
        .start()
        .await
        .map_err(|e| crate::fatal::producer_start(&e))?;
    let mut tally = Tally::default();
    let units = units(args.count, args.batch.map(u64::from));
    match args.mode {
        SendMode::Sync => {
            for n in units {
                let outcome =
                    send_unit(&producer, &template, n, args.batch.is_some(), queue.clone()).await;
                emit(&outcome, &mut tally);
            }
        }
        SendMode::Async => {
            let mut pending: VecDeque<Pending> = VecDeque::new();
            for n in units {
                if pending.len() >= WINDOW {
                    if let Some(oldest) = pending.pop_front() {
                        emit(&oldest.await, &mut tally);
                    }
                }
                pending.push_back(
                    start_async(&producer, &template, n, args.batch.is_some(), queue.clone()).await,
                );
            }
            for p in pending {
                emit(&p.await, &mut tally);
            }
        }
        SendMode::Oneway => {
            let ids = UniqIdGenerator::new(local_ip(), std::process::id());
            for _ in units {
                let mut msg = template.clone();
                let msg_id = ids.next_id();
                msg.properties_mut()
                    .insert(property::UNIQ_KEY, msg_id.clone());
                let outcome = producer
                    .send_oneway(msg, SendOptions::new())
                    .await
                    .map(|()| Sent::Oneway {
                        msg_id,
                        topic: args.topic.clone(),
                    })
                    .map_err(|e| ErrorLine::from(&e));
                emit(&outcome, &mut tally);
            }
        }
    }
    producer.shutdown().await;
    crate::trace_args::report("send", &producer);
    Ok(tally.exit_code())
}

/// Refuses the combinations the producer has no call for.
pub(crate) fn check_combinations(args: &SendArgs) -> Result<(), Fatal> {
    if args.transaction.is_some() && args.mode != SendMode::Sync {
        return Err(Fatal::usage(
            "--transaction cannot be combined with --mode async|oneway: each transaction waits \
             for its half message's answer before its local transaction runs",
        ));
    }
    if args.transaction.is_some() && args.batch.is_some() {
        return Err(Fatal::usage(
            "--transaction cannot be combined with --batch: a batch cannot be transactional",
        ));
    }
    if args.mode == SendMode::Oneway && args.batch.is_some() {
        return Err(Fatal::usage(
            "--batch cannot be combined with --mode oneway",
        ));
    }
    if args.mode == SendMode::Oneway && args.queue.is_some() {
        return Err(Fatal::usage(
            "--queue cannot be combined with --mode oneway",
        ));
    }
    Ok(())
}

/// The body: `--body`, `--body-file` (`-` = stdin), or [`DEFAULT_BODY`].
fn read_body(args: &SendArgs) -> Result<Bytes, Fatal> {
    match (&args.body, &args.body_file) {
        (Some(text), _) => Ok(Bytes::from(text.clone())),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut stdin = io::stdin();
            if stdin.is_terminal() {
                // Reading a terminal waits for the user: say so instead of seeming to hang.
                eprintln!("rmq send: reading the body from the terminal; end it with Ctrl-D");
            }
            let mut buf = Vec::new();
            stdin
                .read_to_end(&mut buf)
                .map_err(|e| Fatal::failed(format!("cannot read the body from stdin: {e}")))?;
            Ok(buf.into())
        }
        (None, Some(path)) => std::fs::read(path)
            .map(Bytes::from)
            .map_err(|e| Fatal::failed(format!("cannot read {}: {e}", path.display()))),
        (None, None) => Ok(Bytes::from_static(DEFAULT_BODY.as_bytes())),
    }
}

/// The message every send copies: topic, body, tag, keys, user properties.
fn template(args: &SendArgs, body: Bytes) -> Result<Message, Fatal> {
    let mut msg = Message::new(args.topic.as_str(), body);
    if let Some(tag) = &args.tag {
        msg = msg.with_tags(tag.as_str());
    }
    if let Some(keys) = &args.keys {
        msg = msg.with_keys(keys.0.iter().map(String::as_str));
    }
    for (k, v) in &args.properties {
        msg = msg
            .with_user_property(k.as_str(), v.as_str())
            .map_err(|e| Fatal::usage(format!("--property {k}={v}: {e}")))?;
    }
    Ok(args.extras.apply(msg))
}

/// The sizes of the send units: `count` messages one by one, or in batches of `batch`.
pub(crate) fn units(count: u64, batch: Option<u64>) -> impl Iterator<Item = u64> {
    let size = batch.unwrap_or(1).max(1);
    let full = count / size;
    let rest = count % size;
    std::iter::repeat_n(size, usize::try_from(full).unwrap_or(usize::MAX))
        .chain((rest > 0).then_some(rest))
}

/// The options of a send: to `queue` when one is given, else to any queue.
pub(crate) fn options(queue: Option<MessageQueue>) -> SendOptions {
    match queue {
        Some(q) => SendOptions::new().queue(q),
        None => SendOptions::new(),
    }
}

/// Sends one unit and waits for its outcome.
async fn send_unit(
    producer: &Producer,
    template: &Message,
    n: u64,
    batch: bool,
    queue: Option<MessageQueue>,
) -> Outcome {
    let options = options(queue);
    let result = if batch {
        let msgs = (0..n).map(|_| template.clone()).collect();
        producer.send_batch(msgs, options).await
    } else {
        producer.send_with(template.clone(), options).await
    };
    result.map(Sent::Stored).map_err(|e| ErrorLine::from(&e))
}

/// Starts one unit asynchronously (waiting for back-pressure room).
async fn start_async(
    producer: &Producer,
    template: &Message,
    n: u64,
    batch: bool,
    queue: Option<MessageQueue>,
) -> Pending {
    let options = options(queue);
    let admitted = if batch {
        let msgs = (0..n).map(|_| template.clone()).collect();
        producer.send_batch_async(msgs, options).await
    } else {
        producer.send_async(template.clone(), options).await
    };
    match admitted {
        Ok(fut) => {
            Box::pin(async move { fut.await.map(Sent::Stored).map_err(|e| ErrorLine::from(&e)) })
        }
        Err(e) => {
            let line = ErrorLine::from(&e);
            Box::pin(async move { Err(line) })
        }
    }
}

/// Prints one outcome on stdout and counts it.
fn emit(outcome: &Outcome, tally: &mut Tally) {
    let line = match outcome {
        Ok(Sent::Stored(r)) => {
            tally.ok();
            to_json(&SendLine::from(r))
        }
        Ok(Sent::Oneway { msg_id, topic }) => {
            tally.ok();
            to_json(&OnewayLine {
                status: ONEWAY_WRITTEN,
                msg_id,
                topic,
            })
        }
        Err(e) => {
            tally.failed(e.error.maybe_stored);
            to_json(e)
        }
    };
    print_stdout(&line);
}

/// This host's first non-loopback address for the message ids (127.0.0.1 without a route). No
/// packet is sent: connecting a UDP socket only asks the kernel for a route.
fn local_ip() -> IpAddr {
    let probe = || -> Option<IpAddr> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
        socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    };
    probe().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn send_args(args: &[&str]) -> SendArgs {
        let all = ["rmq", "send", "--topic", "T"]
            .into_iter()
            .chain(args.iter().copied());
        match Cli::try_parse_from(all).unwrap().command {
            Command::Send(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn units_split_the_count() {
        assert_eq!(units(3, None).collect::<Vec<_>>(), vec![1, 1, 1]);
        assert_eq!(units(10, Some(4)).collect::<Vec<_>>(), vec![4, 4, 2]);
        assert_eq!(units(8, Some(4)).collect::<Vec<_>>(), vec![4, 4]);
        assert_eq!(units(2, Some(5)).collect::<Vec<_>>(), vec![2]);
        assert_eq!(units(0, Some(5)).count(), 0);
    }

    #[test]
    fn the_template_carries_tag_keys_and_properties() {
        let args = send_args(&["--tag", "TagA", "--keys", "K1,K2", "-p", "a=1", "-p", "b=2"]);
        let msg = template(&args, read_body(&args).unwrap()).unwrap();
        assert_eq!(msg.topic(), "T");
        assert_eq!(msg.body().as_ref(), DEFAULT_BODY.as_bytes());
        assert_eq!(msg.tags(), Some("TagA"));
        assert_eq!(msg.keys(), vec!["K1", "K2"]);
        assert_eq!(msg.user_property("a"), Some("1"));
        assert_eq!(msg.user_property("b"), Some("2"));
        assert!(msg.wait_store_msg_ok());
    }

    #[test]
    fn a_reserved_property_is_a_usage_error() {
        let args = send_args(&["-p", "TAGS=x"]);
        let err = template(&args, Bytes::new()).unwrap_err();
        assert_eq!(err.code, crate::output::exit::USAGE);
        assert!(err.message.contains("TAGS"), "{}", err.message);
    }

    #[test]
    fn body_from_text_or_file() {
        let args = send_args(&["--body", "hello"]);
        assert_eq!(read_body(&args).unwrap().as_ref(), b"hello");
        let path = std::env::temp_dir().join(format!("rmq-cli-body-{}", std::process::id()));
        std::fs::write(&path, b"\x00\x01binary").unwrap();
        let args = send_args(&["--body-file", path.to_str().unwrap()]);
        assert_eq!(read_body(&args).unwrap().as_ref(), b"\x00\x01binary");
        std::fs::remove_file(&path).unwrap();
        let err = read_body(&args).unwrap_err();
        assert_eq!(err.code, crate::output::exit::FAILED);
        assert!(err.message.contains("cannot read"), "{}", err.message);
    }

    #[test]
    fn oneway_refuses_batch_and_queue() {
        assert!(check_combinations(&send_args(&["--mode", "oneway", "--batch", "2"])).is_err());
        assert!(check_combinations(&send_args(&["--mode", "oneway", "--queue", "b:0"])).is_err());
        assert!(check_combinations(&send_args(&["--mode", "async", "--batch", "2"])).is_ok());
        assert!(check_combinations(&send_args(&["--mode", "async", "--queue", "b:0"])).is_ok());
    }

    #[test]
    fn transaction_refuses_async_oneway_and_batch() {
        for bad in [
            &["--transaction", "commit", "--mode", "async"][..],
            &["--transaction", "unknown", "--mode", "oneway"],
            &["--transaction", "rollback", "--batch", "2"],
        ] {
            let err = check_combinations(&send_args(bad)).unwrap_err();
            assert_eq!(err.code, crate::output::exit::USAGE, "{bad:?}");
            assert!(err.message.starts_with("--transaction cannot"), "{err}");
        }
        for good in [
            &["--transaction", "commit"][..],
            &[
                "--transaction",
                "unknown",
                "--mode",
                "sync",
                "--queue",
                "b:0",
            ],
        ] {
            assert!(check_combinations(&send_args(good)).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn local_ip_is_usable_in_ids() {
        let ids = UniqIdGenerator::new(local_ip(), 1);
        assert_ne!(ids.next_id(), ids.next_id());
    }
}
