//! A session over TLS through rmq-remoting's `TlsConfig` (ALPN `h2`) to a loopback gRPC server:
//! a trusted certificate connects, an untrusted one fails the call as a connect failure.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rmq_grpc::pb::messaging_service_server::{MessagingService, MessagingServiceServer};
use rmq_grpc::{pb, CallError, ClientMeta, Session, SessionConfig};
use rmq_remoting::TlsConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tonic::{Request, Response, Status};

struct Fake;

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in this test"))
}

#[tonic::async_trait]
impl MessagingService for Fake {
    async fn query_route(
        &self,
        req: Request<pb::QueryRouteRequest>,
    ) -> Result<Response<pb::QueryRouteResponse>, Status> {
        let client = req
            .metadata()
            .get("x-mq-client-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Response::new(pb::QueryRouteResponse {
            status: Some(pb::Status {
                code: pb::Code::Ok as i32,
                message: client,
            }),
            message_queues: vec![],
        }))
    }
    async fn heartbeat(
        &self,
        _: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        unimplemented()
    }
    async fn send_message(
        &self,
        _: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        unimplemented()
    }
    async fn end_transaction(
        &self,
        _: Request<pb::EndTransactionRequest>,
    ) -> Result<Response<pb::EndTransactionResponse>, Status> {
        unimplemented()
    }
    type TelemetryStream = tokio_stream::Empty<Result<pb::TelemetryCommand, Status>>;
    async fn telemetry(
        &self,
        _: Request<tonic::Streaming<pb::TelemetryCommand>>,
    ) -> Result<Response<Self::TelemetryStream>, Status> {
        unimplemented()
    }
    async fn notify_client_termination(
        &self,
        _: Request<pb::NotifyClientTerminationRequest>,
    ) -> Result<Response<pb::NotifyClientTerminationResponse>, Status> {
        unimplemented()
    }
    async fn recall_message(
        &self,
        _: Request<pb::RecallMessageRequest>,
    ) -> Result<Response<pb::RecallMessageResponse>, Status> {
        unimplemented()
    }
}

/// A server-side TLS stream tonic can serve.
struct Io(TlsStream<TcpStream>);

impl tonic::transport::server::Connected for Io {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A TLS gRPC server on 127.0.0.1 with a self-signed certificate for `localhost`; its address
/// and the certificate (PEM).
async fn serve_tls() -> (std::net::SocketAddr, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let pem = cert.pem();
    // ring, as rmq-remoting (aws-lc-rs would need cmake).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key der"),
        )
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Io, std::io::Error>>(4);
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = tx.send(Ok(Io(tls))).await;
                }
            });
        }
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MessagingServiceServer::new(Fake))
            .serve_with_incoming(tokio_stream::wrappers::ReceiverStream::new(rx)),
    );
    (addr, pem)
}

fn session(addr: std::net::SocketAddr, tls: TlsConfig) -> Session {
    Session::new(SessionConfig {
        endpoint: addr.to_string().parse().expect("endpoint"),
        meta: ClientMeta::new("tls-client", "0", "", None).expect("meta"),
        connect_timeout: Duration::from_secs(3),
        keep_alive: None,
        tls: Some(tls),
    })
    .expect("session")
}

fn query() -> pb::QueryRouteRequest {
    pb::QueryRouteRequest {
        topic: Some(pb::Resource {
            resource_namespace: String::new(),
            name: "T".into(),
        }),
        endpoints: None,
    }
}

#[tokio::test]
async fn a_trusted_certificate_connects_and_an_untrusted_one_does_not() {
    let (addr, pem) = serve_tls().await;
    let trusted = TlsConfig::new()
        .with_ca_pem(pem.as_bytes())
        .expect("ca")
        .with_server_name("localhost");
    let resp = session(addr, trusted)
        .query_route(query(), Duration::from_secs(5))
        .await
        .expect("a call over TLS");
    assert_eq!(resp.status.expect("status").message, "tls-client");
    // Mozilla's roots do not know this certificate: nothing was sent.
    let err = session(addr, TlsConfig::new().with_server_name("localhost"))
        .query_route(query(), Duration::from_secs(5))
        .await
        .expect_err("untrusted");
    match &err {
        CallError::Rpc(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{err:?}"),
        CallError::Timeout(_) => panic!("{err:?}"),
    }
    // The insecure mode accepts it.
    assert!(session(addr, TlsConfig::dangerous_insecure_no_verify())
        .query_route(query(), Duration::from_secs(5))
        .await
        .is_ok());
}
