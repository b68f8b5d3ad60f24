//! Runs a listener callback so that whatever it does ends in a [`TransactionState`]: an error,
//! a panic or an overrun budget count as [`TransactionState::Unknown`], with a note saying why
//! (logged, and sent to the broker as the request's remark, as Java sends the exception text).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;

use super::{ListenerError, TransactionState};

/// A listener's outcome: the state to report and, when it is not the listener's own answer,
/// why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) state: TransactionState,
    pub(crate) note: Option<String>,
}

impl Verdict {
    pub(crate) fn decided(state: TransactionState) -> Self {
        Self { state, note: None }
    }

    fn unknown(note: String) -> Self {
        Self {
            state: TransactionState::Unknown,
            note: Some(note),
        }
    }
}

/// Awaits `fut` for at most `budget`, catching a panic.
pub(crate) async fn guarded<F>(what: &'static str, budget: Duration, fut: F) -> Verdict
where
    F: Future<Output = Result<TransactionState, ListenerError>>,
{
    let run = AssertUnwindSafe(fut).catch_unwind();
    let verdict = match tokio::time::timeout(budget, run).await {
        Ok(Ok(Ok(state))) => return Verdict::decided(state),
        Ok(Ok(Err(e))) => Verdict::unknown(format!("{what} failed: {}", chain(&*e))),
        Ok(Err(panic)) => Verdict::unknown(format!("{what} panicked: {}", panic_text(&*panic))),
        Err(_) => Verdict::unknown(format!("{what} did not finish within {budget:?}")),
    };
    if let Some(note) = &verdict.note {
        tracing::warn!(note = %note, "transaction listener: counted as UNKNOW");
    }
    verdict
}

/// An error and its causes, `: `-joined.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(cause) = cur {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        cur = cause.source();
    }
    text
}

/// The message of a panic payload (`&str` or `String`), as the panic hook prints it.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-text payload)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn every_failure_counts_as_unknown_with_a_note() {
        let budget = Duration::from_secs(1);
        let ok = guarded("execute", budget, async { Ok(TransactionState::Rollback) }).await;
        assert_eq!(ok, Verdict::decided(TransactionState::Rollback));

        let io = std::io::Error::other("db down");
        let failed = guarded("execute", budget, async move {
            Err::<TransactionState, ListenerError>(Box::new(io))
        })
        .await;
        assert_eq!(failed.state, TransactionState::Unknown);
        assert_eq!(failed.note.as_deref(), Some("execute failed: db down"));

        let panicked = guarded("check", budget, async {
            if budget > Duration::ZERO {
                panic!("listener bug {}", 7);
            }
            Ok(TransactionState::Commit)
        })
        .await;
        assert_eq!(panicked.state, TransactionState::Unknown);
        assert_eq!(
            panicked.note.as_deref(),
            Some("check panicked: listener bug 7")
        );

        let slow = guarded("check", budget, async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(TransactionState::Commit)
        })
        .await;
        assert_eq!(slow.state, TransactionState::Unknown);
        assert_eq!(slow.note.as_deref(), Some("check did not finish within 1s"));
    }
}
