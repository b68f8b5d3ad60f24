//! `rmq request`: sends one request (Java's `DefaultMQProducer.request`) and prints its reply as
//! one JSON line; with `--echo` (implied by `--embedded`) a replier in this process answers it
//! with its own body ([`crate::request_echo`]).
//!
//! - reply: `{"correlationId":..,"requestMsgId":..,"requestQueue":"broker-a:0","topic":..,"body":..,
//!   "bodyBytes":..,"properties":{..},"bornHost":..,"storeHost":..,"latencyMs":..}`
//! - failed: the `rmq send` error line; `ReplyTimeout` (stored, no reply in time) exits 3.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Args;
use rmq_common::stored::MessageExt;
use rmq_common::{Message, MessageQueue};
use rmq_producer::{PendingReply, Producer, ProducerBuilder, SendOptions};
use serde::Serialize;

use crate::args::{parse_keys, parse_property, parse_queue, Keys, QueueArg};
use crate::cli::TargetArgs;
use crate::fatal::Fatal;
use crate::output::{print_stdout, to_json, ErrorLine, Tally};
use crate::request_echo;

/// The body sent when `--body` is not given.
const DEFAULT_BODY: &str = "ping from rmq";

/// `rmq request`.
#[derive(Debug, Clone, Args)]
pub(crate) struct RequestArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,

    /// The topic.
    #[arg(long, short = 't')]
    pub(crate) topic: String,

    /// The request body.
    #[arg(long)]
    pub(crate) body: Option<String>,

    /// The message tag.
    #[arg(long)]
    pub(crate) tag: Option<String>,

    /// Message keys, comma-separated (`K1,K2`).
    #[arg(long, value_parser = parse_keys, value_name = "K1,K2")]
    pub(crate) keys: Option<Keys>,

    /// A user property `k=v` (repeatable).
    #[arg(long = "property", short = 'p', value_parser = parse_property, value_name = "K=V")]
    pub(crate) properties: Vec<(String, String)>,

    /// Send the request to this queue only: `BROKER:ID` (e.g. `broker-a:0`).
    #[arg(long, value_parser = parse_queue, value_name = "BROKER:ID")]
    pub(crate) queue: Option<QueueArg>,

    /// Deadline of the request: sending it and waiting for the reply (also its TTL).
    #[arg(long, default_value_t = 3000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub(crate) timeout_ms: u64,

    /// Also answer the request from this process: a replier reads it back from its broker
    /// (VIEW_MESSAGE_BY_ID) and replies with its body. Implied by --embedded.
    #[arg(long)]
    pub(crate) echo: bool,

    /// Producer group of the requester.
    #[arg(long, default_value = "rmq_cli_requester")]
    pub(crate) group: String,
}

/// The reply, as printed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReplyLine<'a> {
    correlation_id: &'a str,
    request_msg_id: &'a str,
    request_queue: String,
    topic: &'a str,
    body: String,
    body_bytes: usize,
    properties: BTreeMap<&'a str, &'a str>,
    born_host: String,
    store_host: String,
    latency_ms: u64,
}

impl<'a> ReplyLine<'a> {
    fn new(pending: &'a PendingReplyInfo, reply: &'a MessageExt, latency: Duration) -> Self {
        Self {
            correlation_id: &pending.correlation_id,
            request_msg_id: &pending.msg_id,
            request_queue: format!("{}:{}", pending.queue.broker_name, pending.queue.queue_id),
            topic: reply.message.topic(),
            body: String::from_utf8_lossy(reply.message.body()).into_owned(),
            body_bytes: reply.message.body().len(),
            properties: reply.message.properties().iter().collect(),
            born_host: reply.born_host.to_string(),
            store_host: reply.store_host.to_string(),
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// What is printed of the request once it is stored.
#[derive(Debug)]
struct PendingReplyInfo {
    correlation_id: String,
    msg_id: String,
    queue: MessageQueue,
}

impl From<&PendingReply> for PendingReplyInfo {
    fn from(p: &PendingReply) -> Self {
        Self {
            correlation_id: p.correlation_id().to_owned(),
            msg_id: p.send_result().msg_id.clone(),
            queue: p.send_result().queue.clone(),
        }
    }
}

/// Runs `rmq request` against `namesrv`; returns the exit code.
pub(crate) async fn run(args: &RequestArgs, namesrv: &str) -> Result<u8, Fatal> {
    let msg = message(args)?;
    let tls = args.target.namesrv.tls.config()?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let start = |group: &str, instance: &str| {
        let mut builder = ProducerBuilder::new(group)
            .name_server(namesrv)
            .instance_name(instance)
            .send_timeout(timeout);
        if let Some(tls) = tls.clone() {
            builder = builder.tls(tls);
        }
        builder.start()
    };
    let requester = start(&args.group, "rmq_cli_requester")
        .await
        .map_err(|e| crate::fatal::producer_start(&e))?;
    let replier = if args.echo || args.target.embedded {
        let replier = start("rmq_cli_echo", "rmq_cli_echo")
            .await
            .map_err(|e| crate::fatal::producer_start(&e))?;
        Some(replier)
    } else {
        None
    };
    let mut options = SendOptions::new().timeout(timeout);
    if let Some(q) = &args.queue {
        options = options.queue(MessageQueue::new(
            args.topic.as_str(),
            q.broker.as_str(),
            q.queue_id,
        ));
    }
    let started = Instant::now();
    let mut tally = Tally::default();
    match requester.send_request(msg, options).await {
        Err(e) => {
            print_stdout(&to_json(&ErrorLine::from(&e)));
            tally.failed(e.maybe_stored());
        }
        Ok(pending) => {
            let info = PendingReplyInfo::from(&pending);
            if let Some(replier) = &replier {
                spawn_echo(replier.clone(), tls.clone(), &pending);
            }
            match pending.reply().await {
                Ok(reply) => {
                    print_stdout(&to_json(&ReplyLine::new(&info, &reply, started.elapsed())));
                    tally.ok();
                }
                Err(e) => {
                    print_stdout(&to_json(&ErrorLine::from(&e)));
                    tally.failed(e.maybe_stored());
                }
            }
        }
    }
    requester.shutdown().await;
    if let Some(replier) = replier {
        replier.shutdown().await;
    }
    Ok(tally.exit_code())
}

/// Starts the echo replier on the stored request; a failure is reported on stderr (the request
/// then ends with its reply timeout).
fn spawn_echo(replier: Producer, tls: Option<rmq_remoting::TlsConfig>, pending: &PendingReply) {
    let request = pending.send_result().clone();
    let left = pending.time_left();
    tokio::spawn(async move {
        match request_echo::echo(&replier, tls, &request, left).await {
            Ok(r) => tracing::debug!(queue = %r.queue, "echo reply sent"),
            Err(e) => eprintln!("rmq request: echo replier: {e}"),
        }
    });
}

/// The request: topic, body, tag, keys, user properties.
fn message(args: &RequestArgs) -> Result<Message, Fatal> {
    let body = args.body.clone().unwrap_or_else(|| DEFAULT_BODY.to_owned());
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
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    #[test]
    fn parses_the_request_options() {
        let cli = Cli::try_parse_from([
            "rmq",
            "request",
            "--embedded",
            "--topic",
            "T",
            "--body",
            "hi",
            "--queue",
            "broker-a:1",
            "--timeout-ms",
            "500",
            "-p",
            "k=v",
        ])
        .expect("parses");
        let Command::Request(args) = cli.command else {
            panic!("not a request");
        };
        assert!(args.target.embedded && !args.echo);
        assert_eq!(
            (args.topic.as_str(), args.body.as_deref()),
            ("T", Some("hi"))
        );
        assert_eq!(args.timeout_ms, 500);
        assert_eq!(args.properties, [("k".to_owned(), "v".to_owned())]);
        let msg = super::message(&args).expect("message");
        assert_eq!(msg.user_property("k"), Some("v"));
        assert!(
            Cli::try_parse_from(["rmq", "request", "--topic", "T", "--timeout-ms", "0"]).is_err()
        );
    }
}
