//! The `Telemetry` stream (the 5.x clients' `ClientSessionImpl`): a bidirectional stream per
//! client and endpoint, opened on start and reopened when it ends.
//!
//! - The client's first command is its [`pb::Settings`] (client type, access point, request
//!   timeout, the publishing topics, the user agent); they are sent again whenever
//!   [`Telemetry::sync_settings`] is called (a new topic).
//! - The server answers with its settings: the retry policy (max attempts, backoff) and the
//!   maximum body size are kept in [`ServerSettings`] for the sender to apply.
//! - The server's commands are answered on the same stream: `VerifyMessageCommand`
//!   (`NOT_IMPLEMENTED`: a producer consumes nothing), `PrintThreadStackTraceCommand` (a short
//!   description: Rust has no thread dump), and `RecoverOrphanedTransactionCommand`, handed to
//!   the [`TelemetryHandler`] (the transactional producer's check-back).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tokio_stream::wrappers::ReceiverStream;

use crate::pb;
use crate::pb::telemetry_command::Command;
use crate::session::Session;

/// What the server's settings told the client. `None`: the server did not say.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ServerSettings {
    /// Attempts per send (`backoff_policy.max_attempts`), the first included.
    pub max_attempts: Option<u32>,
    /// The pause before the first retry after throttling (`exponential_backoff.initial`).
    pub backoff_initial: Option<Duration>,
    /// The longest pause (`exponential_backoff.max`).
    pub backoff_max: Option<Duration>,
    /// The growth of the pause per retry (`exponential_backoff.multiplier`).
    pub backoff_multiplier: Option<f32>,
    /// The largest body the server accepts (`publishing.max_body_size`).
    pub max_body_size: Option<usize>,
    /// Whether the server's settings arrived at least once.
    pub received: bool,
}

impl ServerSettings {
    /// Applies the server's `settings`.
    pub fn apply(&mut self, settings: &pb::Settings) {
        self.received = true;
        if let Some(policy) = &settings.backoff_policy {
            if let Ok(n) = u32::try_from(policy.max_attempts) {
                if n > 0 {
                    self.max_attempts = Some(n);
                }
            }
            match &policy.strategy {
                Some(pb::retry_policy::Strategy::ExponentialBackoff(exp)) => {
                    self.backoff_initial = exp.initial.as_ref().and_then(duration);
                    self.backoff_max = exp.max.as_ref().and_then(duration);
                    self.backoff_multiplier = (exp.multiplier.is_finite() && exp.multiplier > 0.0)
                        .then_some(exp.multiplier);
                }
                Some(pb::retry_policy::Strategy::CustomizedBackoff(custom)) => {
                    self.backoff_initial = custom.next.first().and_then(duration);
                    self.backoff_max = custom.next.iter().filter_map(duration).max();
                    self.backoff_multiplier = None;
                }
                None => {}
            }
        }
        if let Some(pb::settings::PubSub::Publishing(publishing)) = &settings.pub_sub {
            if let Ok(max) = usize::try_from(publishing.max_body_size) {
                if max > 0 {
                    self.max_body_size = Some(max);
                }
            }
        }
    }
}

fn duration(d: &prost_types::Duration) -> Option<Duration> {
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok()?;
    (nanos < 1_000_000_000).then(|| Duration::new(secs, nanos))
}

/// What the client does with the server's commands that need more than an answer.
pub trait TelemetryHandler: Send + Sync + 'static {
    /// The server asks the producer to resolve an orphaned transactional message (a half message
    /// nobody committed or rolled back in time). Answer later with `EndTransaction`
    /// (source `SOURCE_SERVER_CHECK`).
    fn recover_orphaned_transaction(&self, cmd: pb::RecoverOrphanedTransactionCommand) {
        tracing::warn!(transaction_id = %cmd.transaction_id, "orphaned transaction check-back, but this producer has no transaction listener");
    }
}

/// A handler that only logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHandler;

impl TelemetryHandler for NoHandler {}

/// How long the client waits for the server's headers when opening the stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);
/// The pause before reopening a stream that ended, doubled up to [`REOPEN_MAX`].
const REOPEN_MIN: Duration = Duration::from_millis(200);
const REOPEN_MAX: Duration = Duration::from_secs(10);

/// The client's side of the stream: the settings it sends, the server's it keeps.
#[derive(Debug)]
pub struct Telemetry {
    shared: Arc<Shared>,
    /// Dropped (or set) to stop the task.
    stop: watch::Sender<bool>,
}

struct Shared {
    server: RwLock<ServerSettings>,
    /// Wakes the task to send the settings again.
    resync: Notify,
    /// Wakes the waiters of the server's first settings.
    received: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("server", &self.server)
            .finish()
    }
}

/// Builds the client's current settings (called each time they are sent).
pub type SettingsFn = Arc<dyn Fn() -> pb::Settings + Send + Sync>;

impl Telemetry {
    /// Starts the stream on `session` in a background task (on the current tokio runtime).
    pub fn start(
        session: Session,
        settings: SettingsFn,
        handler: Arc<dyn TelemetryHandler>,
    ) -> Self {
        let shared = Arc::new(Shared {
            server: RwLock::new(ServerSettings::default()),
            resync: Notify::new(),
            received: Notify::new(),
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(run(
            session,
            settings,
            handler,
            Arc::clone(&shared),
            stopped,
        ));
        Self { shared, stop }
    }

    /// The server's settings so far.
    #[must_use]
    pub fn server_settings(&self) -> ServerSettings {
        self.shared
            .server
            .read()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Sends the client's settings again (their topics changed).
    pub fn sync_settings(&self) {
        self.shared.resync.notify_one();
    }

    /// Waits up to `timeout` for the server's first settings; true once they arrived.
    pub async fn wait_settings(&self, timeout: Duration) -> bool {
        let notified = self.shared.received.notified();
        if self.server_settings().received {
            return true;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
        self.server_settings().received
    }

    /// Closes the stream.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn command(cmd: Command, status: Option<pb::Status>) -> pb::TelemetryCommand {
    pb::TelemetryCommand {
        status,
        command: Some(cmd),
    }
}

fn status(code: pb::Code, message: &str) -> Option<pb::Status> {
    Some(pb::Status {
        code: code as i32,
        message: message.to_owned(),
    })
}

/// The answer to a server command, if it needs one.
pub(crate) fn answer(
    cmd: Command,
    shared_settings: &RwLock<ServerSettings>,
    handler: &dyn TelemetryHandler,
) -> Option<pb::TelemetryCommand> {
    match cmd {
        Command::Settings(settings) => {
            if let Ok(mut s) = shared_settings.write() {
                s.apply(&settings);
                tracing::debug!(settings = ?*s, "server settings applied");
            }
            None
        }
        Command::VerifyMessageCommand(verify) => Some(command(
            Command::VerifyMessageResult(pb::VerifyMessageResult {
                nonce: verify.nonce,
            }),
            status(
                pb::Code::NotImplemented,
                "a producer consumes no message to verify",
            ),
        )),
        Command::PrintThreadStackTraceCommand(print) => Some(command(
            Command::ThreadStackTrace(pb::ThreadStackTrace {
                nonce: print.nonce,
                thread_stack_trace: Some(format!(
                    "rmq {} (Rust, tokio): no thread dump available",
                    env!("CARGO_PKG_VERSION")
                )),
            }),
            status(pb::Code::Ok, "OK"),
        )),
        Command::RecoverOrphanedTransactionCommand(recover) => {
            handler.recover_orphaned_transaction(recover);
            None
        }
        Command::ThreadStackTrace(_) | Command::VerifyMessageResult(_) => None,
    }
}

async fn run(
    session: Session,
    settings: SettingsFn,
    handler: Arc<dyn TelemetryHandler>,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut pause = REOPEN_MIN;
    loop {
        if *stopped.borrow() {
            return;
        }
        let (tx, rx) = mpsc::channel(16);
        let first = command(Command::Settings(settings()), None);
        if tx.send(first).await.is_err() {
            return;
        }
        let opened = tokio::select! {
            opened = session.telemetry(ReceiverStream::new(rx), OPEN_TIMEOUT) => opened,
            _ = stopped.changed() => return,
        };
        match opened {
            Err(e) => {
                tracing::warn!(endpoint = %session.endpoint(), error = %e, "telemetry stream could not be opened")
            }
            Ok(mut inbound) => {
                tracing::debug!(endpoint = %session.endpoint(), "telemetry stream open");
                loop {
                    tokio::select! {
                        _ = stopped.changed() => return,
                        () = shared.resync.notified() => {
                            if tx.send(command(Command::Settings(settings()), None)).await.is_err() {
                                break;
                            }
                        }
                        item = inbound.message() => match item {
                            Ok(Some(msg)) => {
                                pause = REOPEN_MIN;
                                if let Some(st) = msg.status.as_ref().filter(|s| !crate::code::is_ok(s.code)) {
                                    tracing::warn!(code = %crate::code::name(st.code), message = %st.message, "telemetry: server status");
                                }
                                let was_settings = matches!(msg.command, Some(Command::Settings(_)));
                                if let Some(reply) = msg.command.and_then(|c| answer(c, &shared.server, handler.as_ref())) {
                                    if tx.send(reply).await.is_err() {
                                        break;
                                    }
                                }
                                if was_settings {
                                    shared.received.notify_waiters();
                                }
                            }
                            Ok(None) => {
                                tracing::debug!(endpoint = %session.endpoint(), "telemetry stream closed by the server");
                                break;
                            }
                            Err(status) => {
                                tracing::warn!(endpoint = %session.endpoint(), %status, "telemetry stream failed");
                                break;
                            }
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = stopped.changed() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(REOPEN_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb_duration(ms: i64) -> prost_types::Duration {
        prost_types::Duration {
            seconds: ms / 1000,
            nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap(),
        }
    }

    #[test]
    fn server_settings_apply_retry_policy_and_body_size() {
        let mut s = ServerSettings::default();
        s.apply(&pb::Settings {
            backoff_policy: Some(pb::RetryPolicy {
                max_attempts: 3,
                strategy: Some(pb::retry_policy::Strategy::ExponentialBackoff(
                    pb::ExponentialBackoff {
                        initial: Some(pb_duration(10)),
                        max: Some(pb_duration(1000)),
                        multiplier: 2.0,
                    },
                )),
            }),
            pub_sub: Some(pb::settings::PubSub::Publishing(pb::Publishing {
                topics: vec![],
                max_body_size: 4 * 1024 * 1024,
                validate_message_type: true,
            })),
            ..Default::default()
        });
        assert_eq!(s.max_attempts, Some(3));
        assert_eq!(s.backoff_initial, Some(Duration::from_millis(10)));
        assert_eq!(s.backoff_max, Some(Duration::from_secs(1)));
        assert_eq!(s.backoff_multiplier, Some(2.0));
        assert_eq!(s.max_body_size, Some(4 * 1024 * 1024));
        assert!(s.received);
        // Zero or negative values say nothing.
        s.apply(&pb::Settings {
            backoff_policy: Some(pb::RetryPolicy {
                max_attempts: 0,
                strategy: None,
            }),
            pub_sub: Some(pb::settings::PubSub::Publishing(pb::Publishing {
                max_body_size: -1,
                ..Default::default()
            })),
            ..Default::default()
        });
        assert_eq!(s.max_attempts, Some(3));
        assert_eq!(s.max_body_size, Some(4 * 1024 * 1024));
    }

    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<String>>);
    impl TelemetryHandler for Recorder {
        fn recover_orphaned_transaction(&self, cmd: pb::RecoverOrphanedTransactionCommand) {
            self.0.lock().unwrap().push(cmd.transaction_id);
        }
    }

    #[test]
    fn commands_are_answered_with_their_nonce() {
        let settings = RwLock::new(ServerSettings::default());
        let rec = Recorder::default();
        let verify = answer(
            Command::VerifyMessageCommand(pb::VerifyMessageCommand {
                nonce: "n1".into(),
                message: None,
            }),
            &settings,
            &rec,
        )
        .unwrap();
        assert_eq!(
            verify.command,
            Some(Command::VerifyMessageResult(pb::VerifyMessageResult {
                nonce: "n1".into()
            }))
        );
        assert_eq!(verify.status.unwrap().code, pb::Code::NotImplemented as i32);
        let stack = answer(
            Command::PrintThreadStackTraceCommand(pb::PrintThreadStackTraceCommand {
                nonce: "n2".into(),
            }),
            &settings,
            &rec,
        )
        .unwrap();
        match stack.command {
            Some(Command::ThreadStackTrace(t)) => {
                assert_eq!(t.nonce, "n2");
                assert!(t.thread_stack_trace.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert!(answer(
            Command::RecoverOrphanedTransactionCommand(pb::RecoverOrphanedTransactionCommand {
                message: None,
                transaction_id: "tx1".into(),
            }),
            &settings,
            &rec,
        )
        .is_none());
        assert_eq!(*rec.0.lock().unwrap(), vec!["tx1".to_owned()]);
        assert!(answer(Command::Settings(pb::Settings::default()), &settings, &rec).is_none());
        assert!(settings.read().unwrap().received);
    }
}
