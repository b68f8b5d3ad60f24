//! Client metrics scraped by Prometheus:
//! `cargo run --example metrics_prometheus --features metrics [-- SECS]`.
//!
//! Installs OpenTelemetry's Prometheus exporter (`opentelemetry-prometheus` over a `prometheus`
//! registry), hands its meter to the producer (`ProducerBuilder::meter`), sends a message every
//! 100 ms to `NAMESRV_ADDR` (or the embedded dev broker), and serves the registry in
//! Prometheus's text format on `http://127.0.0.1:9464/metrics` (`METRICS_ADDR` to change; port
//! 0 picks a free one) for
//! SECS seconds (default 30), then prints the last scrape's `rocketmq_` lines and exits.
//!
//! ```text
//! curl -s http://127.0.0.1:9464/metrics | grep rocketmq_send_cost_time
//! ```

mod support;

use std::error::Error;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, Registry, TextEncoder};
use rmq::common::Message;
use rmq::producer::Producer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TOPIC: &str = "MetricsExampleTopic";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let secs: u64 = match std::env::args().nth(1) {
        Some(s) => s.parse()?,
        None => 30,
    };
    let addr = std::env::var("METRICS_ADDR").unwrap_or_else(|_| "127.0.0.1:9464".to_owned());

    // The application's part: a registry, the exporter reading into it, a meter provider.
    let registry = Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()?;
    let provider = SdkMeterProvider::builder().with_reader(exporter).build();

    let target = support::connect().await?;
    let producer = Producer::builder("metrics_example_group")
        .name_server(&target.namesrv)
        .meter(provider.meter("rmq"))
        .start()
        .await?;

    let listener = TcpListener::bind(&addr).await?;
    println!(
        "serving http://{}/metrics for {secs} s",
        listener.local_addr()?
    );
    let server = tokio::spawn(serve(listener, registry.clone()));

    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut i = 0u64;
    while tokio::time::Instant::now() < end {
        if let Err(e) = producer
            .send(Message::new(TOPIC, format!("metrics example #{i}")))
            .await
        {
            eprintln!("send #{i} failed: {}", support::with_causes(&e));
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.abort();
    producer.shutdown().await;
    target.shutdown().await;

    // The last scrape, as Prometheus would see it.
    for line in render(&registry)?.lines() {
        if line.starts_with("rocketmq_") {
            println!("{line}");
        }
    }
    provider.shutdown()?;
    Ok(())
}

/// The registry in Prometheus's text format.
fn render(registry: &Registry) -> Result<String, Box<dyn Error>> {
    let mut body = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut body)?;
    Ok(String::from_utf8(body)?)
}

/// A minimal HTTP/1.1 server on 127.0.0.1: `GET /metrics` answers the registry, anything else
/// 404. One request per connection; a client that sends nothing for 5 s is dropped.
async fn serve(listener: TcpListener, registry: Registry) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await
            else {
                return;
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if request.starts_with("GET /metrics ") {
                match render(&registry) {
                    Ok(body) => ("200 OK", body),
                    Err(e) => ("500 Internal Server Error", e.to_string()),
                }
            } else {
                ("404 Not Found", "try /metrics\n".to_owned())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        });
    }
}
