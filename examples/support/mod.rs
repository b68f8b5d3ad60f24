//! Shared by the examples: where to send (`PROXY_ADDR` for a RocketMQ 5 gRPC proxy, else
//! `NAMESRV_ADDR`, else an embedded dev broker), tracing
//! with `RUST_LOG`, a short form of a send result, and errors printed with their causes.
#![allow(dead_code)]

use std::error::Error;

use rmq::producer::SendResult;
use rmq_testkit::{MockCluster, TransactionCheck};

/// Where the example sends: a real name server, or the embedded in-memory dev broker.
pub(crate) struct Target {
    /// The name server address to give the producer.
    pub(crate) namesrv: String,
    /// The gRPC proxy endpoint, when the example goes through one.
    pub(crate) proxy: Option<String>,
    dev: Option<MockCluster>,
}

/// Uses `NAMESRV_ADDR` when set; otherwise starts the embedded dev broker (the testkit's
/// in-memory name server and broker, topics created on first send) and says so.
pub(crate) async fn connect() -> Result<Target, Box<dyn Error>> {
    init_tracing();
    if let Some(proxy) = std::env::var("PROXY_ADDR")
        .ok()
        .filter(|a| !a.trim().is_empty())
    {
        println!("sending through the gRPC proxy at {proxy} (PROXY_ADDR)");
        return Ok(Target {
            namesrv: String::new(),
            proxy: Some(proxy),
            dev: None,
        });
    }
    if let Some(addr) = std::env::var("NAMESRV_ADDR")
        .ok()
        .filter(|a| !a.trim().is_empty())
    {
        println!("using the name server at {addr} (NAMESRV_ADDR)");
        return Ok(Target {
            namesrv: addr,
            proxy: None,
            dev: None,
        });
    }
    let dev = MockCluster::start(1).await?;
    dev.set_auto_create(true);
    // Undecided transactions are checked back after a second (a real broker: 6 s, then every
    // 30-60 s).
    dev.set_transaction_check(Some(TransactionCheck {
        interval: std::time::Duration::from_secs(1),
        min_age: std::time::Duration::from_secs(1),
        ..TransactionCheck::default()
    }));
    let namesrv = dev.namesrv_addr();
    println!("NAMESRV_ADDR is not set: started the embedded dev broker (in memory) at {namesrv}");
    Ok(Target {
        namesrv,
        proxy: None,
        dev: Some(dev),
    })
}

impl Target {
    /// A producer builder for `group` aimed at this target: the proxy, or the name server.
    /// The rest of an example is the same program over either protocol.
    pub(crate) fn builder(&self, group: &str) -> rmq::producer::ProducerBuilder {
        let builder = rmq::producer::Producer::builder(group);
        match &self.proxy {
            Some(proxy) => builder.proxy(proxy.as_str()),
            None => builder.name_server(&self.namesrv),
        }
    }

    /// Stops the embedded dev broker, if one was started.
    pub(crate) async fn shutdown(self) {
        if let Some(dev) = self.dev {
            dev.shutdown().await;
        }
    }
}

/// Tracing on stderr, filtered by `RUST_LOG` (e.g. `RUST_LOG=rmq_producer=debug`).
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
}

/// `SEND_OK msgId=... broker-a/2@17` (status, id, broker/queue@offset).
pub(crate) fn short(r: &SendResult) -> String {
    format!(
        "{} msgId={} {}/{}@{}",
        r.status, r.msg_id, r.queue.broker_name, r.queue.queue_id, r.queue_offset
    )
}

/// An error and its causes in one line, `error: cause: cause...`. A send error's `Display`
/// prints one level only (e.g. "send to broker broker-a failed"); why is in its
/// [`Error::source`] chain, which this walks.
pub(crate) fn with_causes(e: &(dyn Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}

/// The example's exit: 0 on success; otherwise the error and its causes, readably, and 1.
pub(crate) fn exit(result: Result<(), Box<dyn Error>>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut cause = e.source();
            while let Some(c) = cause {
                eprintln!("  caused by: {c}");
                cause = c.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}
