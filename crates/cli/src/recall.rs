//! `rmq recall --topic T HANDLE`: withdraw a timer message before its time and print one JSON
//! line: `{"status":"RECALLED","msgId":..,"topic":..}`, or
//! `{"error":{"kind":..,"maybeRecalled":bool,"responseCode":..,"message":..}}`.

use std::time::Duration;

use clap::Args;
use rmq_producer::{ProducerBuilder, RecallError};
use serde::Serialize;

use crate::cli::NameServerArgs;
use crate::fatal::Fatal;
use crate::output::{exit, one_line, print_stdout, to_json};

/// `rmq recall`.
#[derive(Debug, Clone, Args)]
pub(crate) struct RecallArgs {
    #[command(flatten)]
    pub(crate) namesrv: NameServerArgs,

    /// The topic the message was sent to.
    #[arg(long, short = 't')]
    pub(crate) topic: String,

    /// The recall handle, as `rmq send` printed it (`recallHandle`).
    pub(crate) handle: String,

    /// Deadline (route lookup and the recall).
    #[arg(long, default_value_t = 3000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub(crate) timeout_ms: u64,

    /// Producer group.
    #[arg(long, default_value = "rmq_cli")]
    pub(crate) group: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RecalledLine<'a> {
    status: &'static str,
    msg_id: &'a str,
    topic: &'a str,
}

#[derive(Debug, Serialize)]
struct RecallErrorLine {
    error: RecallErrorBody,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RecallErrorBody {
    kind: &'static str,
    maybe_recalled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_code: Option<i32>,
    message: String,
}

fn kind(e: &RecallError) -> &'static str {
    match e {
        RecallError::NotRunning => "NotRunning",
        RecallError::InvalidTopic(_) => "InvalidTopic",
        RecallError::UnsupportedTopic(_) => "UnsupportedTopic",
        RecallError::InvalidHandle(_) => "InvalidHandle",
        RecallError::TopicMismatch { .. } => "TopicMismatch",
        RecallError::NameServer(_) => "NameServer",
        RecallError::BrokerNotFound { .. } => "BrokerNotFound",
        RecallError::Transport { .. } => "Transport",
        RecallError::Broker { .. } => "Broker",
        RecallError::InvalidResponse { .. } => "InvalidResponse",
        _ => "Other",
    }
}

/// Runs `rmq recall` against `namesrv`; returns the exit code (0 recalled, 1 not, 3 maybe).
pub(crate) async fn run(args: &RecallArgs, namesrv: &str) -> Result<u8, Fatal> {
    let mut builder = ProducerBuilder::new(args.group.as_str())
        .name_server(namesrv)
        .send_timeout(Duration::from_millis(args.timeout_ms));
    if let Some(tls) = args.namesrv.tls.config()? {
        builder = builder.tls(tls);
    }
    builder = args.namesrv.proxy.apply(builder);
    let producer = builder
        .start()
        .await
        .map_err(|e| crate::fatal::producer_start(&e))?;
    let outcome = producer.recall(&args.topic, &args.handle).await;
    producer.shutdown().await;
    Ok(match outcome {
        Ok(msg_id) => {
            print_stdout(&to_json(&RecalledLine {
                status: "RECALLED",
                msg_id: &msg_id,
                topic: &args.topic,
            }));
            exit::OK
        }
        Err(e) => {
            let maybe = e.maybe_recalled();
            print_stdout(&to_json(&RecallErrorLine {
                error: RecallErrorBody {
                    kind: kind(&e),
                    maybe_recalled: maybe,
                    response_code: e.response_code().map(|c| c.0),
                    message: one_line(&e),
                },
            }));
            if maybe {
                exit::MAYBE_STORED
            } else {
                exit::FAILED
            }
        }
    })
}
