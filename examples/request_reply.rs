//! Request/reply: `cargo run --example request_reply` (uses `NAMESRV_ADDR`, or the embedded dev
//! broker).
//!
//! A *requester* sends a request and waits for its reply (Java's `DefaultMQProducer.request`);
//! a *replier* answers it with `send_reply`, and the broker pushes the reply to the requester.
//! In a real service the replier is a consumer of the request topic that calls
//! `send_reply(&received, answer)` (Java: `MessageUtil.createReplyMessage` + `send`). rmq has no
//! consumer, so here the replier reads each request back from the broker that stored it, by its
//! offset message id (`VIEW_MESSAGE_BY_ID`), which `send_request` reports.
//!
//! Exits 0 once every request got its reply.

mod support;

use std::error::Error;
use std::time::{Duration, Instant};

use rmq::common::message_id::OffsetMessageId;
use rmq::common::stored::{decode_stored_message, MessageExt};
use rmq::common::{RequestCode, ResponseCode, ViewMessageRequestHeader};
use rmq::remoting::{RemotingClient, RemotingCommand, RemotingConfig};
use rmq::{Message, Producer, SendOptions};

const TOPIC: &str = "PriceRequests";
const REQUESTS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> std::process::ExitCode {
    support::exit(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let target = support::connect().await?;
    // Two client instances, as two processes would have.
    let requester = Producer::builder("price_client")
        .name_server(&target.namesrv)
        .instance_name("price_client")
        .start()
        .await?;
    let replier = Producer::builder("price_service")
        .name_server(&target.namesrv)
        .instance_name("price_service")
        .start()
        .await?;
    let viewer = RemotingClient::new(RemotingConfig::default());

    for i in 1..=REQUESTS {
        let started = Instant::now();
        let sku = format!("SKU-{i}");
        let options = SendOptions::new().timeout(TIMEOUT);
        // The request is stored once this returns; its reply is awaited below.
        let pending = requester
            .send_request(Message::new(TOPIC, sku.clone()), options)
            .await?;

        // The replier's side: the request as the broker stored it, and the answer.
        let request = view(&viewer, &pending.send_result().offset_msg_id).await?;
        let price = format!("{sku}: {}.00", 10 * i);
        replier
            .send_reply(&request.message, price, SendOptions::new())
            .await?;

        let reply = pending.reply().await?;
        println!(
            "request {sku:<6} -> reply {:?} from {} in {} ms",
            String::from_utf8_lossy(reply.message.body()),
            reply.message.topic(),
            started.elapsed().as_millis()
        );
    }
    println!("done: every request got its reply");
    viewer.shutdown().await;
    requester.shutdown().await;
    replier.shutdown().await;
    target.shutdown().await;
    Ok(())
}

/// The message stored under `offset_msg_id` (its broker's address and commit-log offset).
async fn view(client: &RemotingClient, offset_msg_id: &str) -> Result<MessageExt, Box<dyn Error>> {
    let id = OffsetMessageId::decode(offset_msg_id)?;
    let header = ViewMessageRequestHeader {
        topic: Some(TOPIC.to_owned()),
        offset: id.commit_log_offset,
    };
    let req = RemotingCommand::request_with_header(RequestCode::VIEW_MESSAGE_BY_ID, &header);
    let resp = client
        .invoke_sync(&id.addr.to_string(), req, TIMEOUT)
        .await?;
    if resp.response_code() != ResponseCode::SUCCESS {
        return Err(format!("view {offset_msg_id}: {}", resp.response_code()).into());
    }
    Ok(decode_stored_message(&mut resp.body.clone())?)
}
