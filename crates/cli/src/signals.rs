//! Stop signals: Ctrl-C (SIGINT) and, on Unix, SIGTERM.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

/// Listens for Ctrl-C (SIGINT) or, on Unix, SIGTERM from the moment it is called (the handlers
/// are installed before it returns, so a signal right after is not missed); the future completes
/// with which came.
pub(crate) fn listen() -> Pin<Box<dyn Future<Output = &'static str> + Send>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            return Box::pin(async move {
                tokio::select! {
                    _ = int.recv() => "interrupted",
                    _ = term.recv() => "terminated",
                }
            });
        }
    }
    Box::pin(stop_signal())
}

/// Waits for Ctrl-C (SIGINT) or, on Unix, SIGTERM; returns which.
pub(crate) async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "interrupted",
                _ = term.recv() => "terminated",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                ctrl_c().await
            }
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c().await
    }
}

async fn ctrl_c() -> &'static str {
    match tokio::signal::ctrl_c().await {
        Ok(()) => "interrupted",
        // Without a signal handler the process can only be killed; wait for that.
        Err(_) => std::future::pending().await,
    }
}

/// Counts stop signals on a background task: the receiver sees 1 after the first signal, 2
/// after the second, and so on. The task ends when the receiver is dropped.
pub(crate) fn count_stop_signals() -> watch::Receiver<u32> {
    let (tx, rx) = watch::channel(0);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tx.closed() => return,
                _ = stop_signal() => {}
            }
            tx.send_modify(|n| *n += 1);
        }
    });
    rx
}
