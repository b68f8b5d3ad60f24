//! Unit tests of the send loop against a scripted transport, on tokio's paused clock: budgets,
//! retries, the fault table, deadlines. Nothing touches the network.

use std::sync::Arc;
use std::time::Duration;

use rmq_common::{Message, MessageQueue, ResponseCode};
use tokio::time::Instant;
use tracing::Span;

use super::*;
use crate::config::ProducerConfig;
use crate::kernel::prepare_single;
use crate::transport::fake::{FakeTransport, Step};

const S3: Duration = Duration::from_secs(3);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn core(
    transport: FakeTransport,
    edit: impl FnOnce(&mut ProducerConfig),
) -> Arc<Core<FakeTransport>> {
    let mut cfg = ProducerConfig::new("pg");
    edit(&mut cfg);
    Arc::new(Core::new(transport, cfg))
}

fn job(target: Target, retries: u32, timeout: Duration) -> Job {
    let mut msg = Message::new("T", "body");
    let mut n = 0;
    let out = prepare_single(&mut msg, &ProducerConfig::new("pg"), &mut || {
        n += 1;
        format!("ID{n}")
    });
    Job {
        out,
        target,
        mode: Mode::Reply,
        retries,
        started: Instant::now(),
        timeout,
    }
}

async fn run(core: &Arc<Core<FakeTransport>>, job: Job) -> Outcome {
    let info = publish_info(core, "T", job.started, job.timeout)
        .await
        .expect("route");
    SendState::new(Arc::clone(core), job, info, Span::none())
        .run()
        .await
}

fn brokers(core: &Core<FakeTransport>) -> Vec<String> {
    core.transport
        .calls()
        .into_iter()
        .map(|c| c.broker)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_hung_broker_gets_its_share_and_the_retry_goes_to_the_other() {
    let core = core(FakeTransport::new(2, 1), |_| {});
    // Whichever broker comes first hangs; the other answers.
    core.transport.script_next(&[Step::BlackHole]);
    let t0 = Instant::now();
    let outcome = run(&core, job(Target::Any, 2, S3)).await;
    let calls = core.transport.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    // 3 s over 2 untried brokers, then all that is left for the last untried broker.
    assert_eq!(calls[0].budget, ms(1500));
    assert_eq!(calls[1].budget, ms(1500));
    assert_ne!(
        calls[0].broker, calls[1].broker,
        "the retry avoids the broker that failed"
    );
    assert_eq!(calls[1].at - t0, ms(1500));
    let result = outcome
        .expect("the second attempt answers")
        .expect("a result");
    assert_eq!(result.msg_id, "ID1", "the id is kept across attempts");
    assert_eq!(result.queue.broker_name, calls[1].broker);
    assert_eq!(t0.elapsed(), ms(1500), "the second broker answers at once");
}

#[tokio::test(start_paused = true)]
async fn refusals_in_the_retry_set_move_to_another_broker() {
    let core = core(FakeTransport::new(2, 2), |_| {});
    core.transport
        .script("broker-a", &[Step::Refuse(ResponseCode::SYSTEM_ERROR)]);
    core.transport
        .script("broker-b", &[Step::Refuse(ResponseCode::SYSTEM_ERROR)]);
    let result = run(&core, job(Target::Any, 2, S3)).await.expect("sent");
    let tried = brokers(&core);
    assert_eq!(tried.len(), 3);
    assert_ne!(tried[0], tried[1]);
    assert_eq!(result.map(|r| r.queue.broker_name), Some(tried[2].clone()));
}

#[tokio::test(start_paused = true)]
async fn a_refusal_outside_the_retry_set_ends_the_send() {
    let core = core(FakeTransport::new(2, 1), |_| {});
    for b in ["broker-a", "broker-b"] {
        core.transport
            .script(b, &[Step::Refuse(ResponseCode::MESSAGE_ILLEGAL)]);
    }
    let err = run(&core, job(Target::Any, 2, S3))
        .await
        .expect_err("refused");
    assert_eq!(err.response_code(), Some(ResponseCode::MESSAGE_ILLEGAL));
    assert!(!err.maybe_stored());
    assert_eq!(brokers(&core).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn system_busy_pauses_before_the_retry() {
    let core = core(FakeTransport::new(1, 1), |c| c.busy_backoff = ms(50));
    core.transport
        .script("broker-a", &[Step::Refuse(ResponseCode::SYSTEM_BUSY)]);
    let t0 = Instant::now();
    run(&core, job(Target::Any, 2, S3)).await.expect("sent");
    let calls = core.transport.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].at - t0, ms(50));
}

#[tokio::test(start_paused = true)]
async fn a_pinned_send_is_not_retried_once_it_may_be_stored() {
    let queue = MessageQueue::new("T", "broker-b", 0);
    let core = core(FakeTransport::new(2, 1), |_| {});
    core.transport
        .script("broker-b", &[Step::WrittenThenClosed(ms(10))]);
    let err = run(&core, job(Target::Queue(Box::new(queue.clone())), 2, S3))
        .await
        .expect_err("lost");
    assert!(err.maybe_stored());
    assert_eq!(brokers(&core), ["broker-b"]);

    // Certainly not written: retried, on the same queue only.
    let core2 = self::core(FakeTransport::new(2, 1), |_| {});
    core2
        .transport
        .script("broker-b", &[Step::Unwritten, Step::Unwritten]);
    let result = run(&core2, job(Target::Queue(Box::new(queue)), 2, S3))
        .await
        .expect("third try");
    assert_eq!(brokers(&core2), ["broker-b", "broker-b", "broker-b"]);
    assert_eq!(
        result.map(|r| r.queue.broker_name),
        Some("broker-b".to_owned())
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_broker_is_isolated_for_its_window_then_chosen_again() {
    let core = core(FakeTransport::new(2, 2), |_| {});
    core.transport.script_next(&[Step::Unwritten]);
    run(&core, job(Target::Any, 2, S3)).await.expect("sent");
    let failed = brokers(&core)[0].clone();
    let before = core.transport.calls().len();
    for _ in 0..8 {
        run(&core, job(Target::Any, 2, S3)).await.expect("sent");
    }
    let during: Vec<String> = brokers(&core)[before..].to_vec();
    assert!(
        during.iter().all(|b| *b != failed),
        "isolated for 10 s: {during:?}"
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    let before = core.transport.calls().len();
    for _ in 0..8 {
        run(&core, job(Target::Any, 2, S3)).await.expect("sent");
    }
    assert!(
        brokers(&core)[before..].contains(&failed),
        "chosen again once the window passed"
    );
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_the_send_with_what_every_attempt_risked() {
    let core = core(FakeTransport::new(2, 1), |_| {});
    for b in ["broker-a", "broker-b"] {
        core.transport
            .script(b, &[Step::BlackHole, Step::BlackHole]);
    }
    let t0 = Instant::now();
    let err = run(&core, job(Target::Any, 5, S3))
        .await
        .expect_err("timed out");
    assert_eq!(t0.elapsed(), S3, "never later than the deadline");
    match &err {
        ErrorKind::Timeout {
            after,
            attempts,
            maybe_stored,
            last,
        } => {
            assert_eq!((*after, *attempts, *maybe_stored), (S3, 2, true));
            assert!(last.as_deref().is_some_and(ErrorKind::is_timeout));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn retries_exhausted_say_whether_any_attempt_may_have_stored() {
    let core = core(FakeTransport::new(2, 1), |_| {});
    core.transport.script(
        "broker-a",
        &[Step::Unwritten, Step::WrittenThenClosed(ms(1))],
    );
    core.transport.script(
        "broker-b",
        &[Step::Unwritten, Step::WrittenThenClosed(ms(1))],
    );
    let err = run(&core, job(Target::Any, 1, S3))
        .await
        .expect_err("failed");
    match &err {
        ErrorKind::RetriesExhausted {
            attempts,
            brokers,
            maybe_stored,
            ..
        } => {
            assert_eq!((*attempts, brokers.len(), *maybe_stored), (2, 2, false));
        }
        other => panic!("{other:?}"),
    }
    let err = run(&core, job(Target::Any, 1, S3))
        .await
        .expect_err("failed");
    assert!(
        err.maybe_stored(),
        "a written attempt without answer: {err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_abort_cancels_a_waiting_attempt() {
    let core = core(FakeTransport::new(1, 1), |_| {});
    core.transport.script("broker-a", &[Step::BlackHole]);
    let aborter = Arc::clone(&core);
    tokio::spawn(async move {
        tokio::time::sleep(ms(100)).await;
        aborter.abort();
    });
    let t0 = Instant::now();
    let err = run(&core, job(Target::Any, 2, S3))
        .await
        .expect_err("cancelled");
    assert!(
        matches!(err, ErrorKind::Cancelled { maybe_stored: true }),
        "{err:?}"
    );
    assert_eq!(t0.elapsed(), ms(100));
}

#[tokio::test(start_paused = true)]
async fn an_asynchronous_launch_and_finish_settle_like_a_call() {
    let core = core(FakeTransport::new(2, 1), |_| {});
    core.transport
        .script_next(&[Step::Refuse(ResponseCode::SYSTEM_ERROR)]);
    let j = job(Target::Any, 2, S3);
    let info = publish_info(&core, "T", j.started, j.timeout)
        .await
        .expect("route");
    let mut state = SendState::new(Arc::clone(&core), j, info, Span::none());
    let Next::Attempt(queue, budget) = state.next() else {
        panic!("an attempt")
    };
    let mut launched = state.launch(&queue, budget).await;
    let outcome = state.finish(&mut launched).await;
    let Settled::Again(pause) = state.settle(&queue, Instant::now(), outcome) else {
        panic!("retried")
    };
    let result = state.resume(pause).await.expect("sent").expect("result");
    let tried = brokers(&core);
    assert_eq!(tried.len(), 2);
    assert_eq!(result.queue.broker_name, tried[1]);
}

#[tokio::test(start_paused = true)]
async fn a_backed_off_only_broker_is_waited_for_within_the_deadline() {
    let core = core(FakeTransport::new(1, 2), |_| {});
    core.transport.script(
        "broker-a",
        &[Step::BackedOff(ms(200)), Step::Ok(Duration::ZERO)],
    );
    let t0 = Instant::now();
    let result = run(&core, job(Target::Any, 2, S3)).await.expect("sent");
    let calls = core.transport.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[1].at - t0, ms(200), "the retry waits the window out");
    assert!(result.is_some());

    // A window longer than the time left: no wait, the send fails at once.
    let core = self::core(FakeTransport::new(1, 2), |_| {});
    core.transport.script(
        "broker-a",
        &[
            Step::BackedOff(ms(5000)),
            Step::BackedOff(ms(5000)),
            Step::BackedOff(ms(5000)),
        ],
    );
    let t0 = Instant::now();
    let err = run(&core, job(Target::Any, 2, S3))
        .await
        .expect_err("refused");
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert!(!err.maybe_stored());
}

#[tokio::test(start_paused = true)]
async fn a_backed_off_broker_is_not_waited_for_when_another_can_take_the_retry() {
    let core = core(FakeTransport::new(2, 1), |_| {});
    core.transport.script_next(&[Step::BackedOff(ms(200))]);
    let t0 = Instant::now();
    run(&core, job(Target::Any, 2, S3)).await.expect("sent");
    let calls = core.transport.calls();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0].broker, calls[1].broker);
    assert_eq!(calls[1].at, t0, "straight to the other broker");
}

#[tokio::test(start_paused = true)]
async fn abort_wakes_every_waiting_attempt_and_later_ones_at_once() {
    let core = core(FakeTransport::new(1, 1), |_| {});
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let core = Arc::clone(&core);
            tokio::spawn(async move { core.aborted().await })
        })
        .collect();
    // Not woken without an abort.
    tokio::time::sleep(ms(50)).await;
    assert!(waiting.iter().all(|w| !w.is_finished()));
    core.abort();
    for w in waiting {
        let woke = tokio::time::timeout(ms(10), w).await;
        assert!(matches!(woke, Ok(Ok(()))), "woken by the abort");
    }
    let late = tokio::time::timeout(ms(10), core.aborted()).await;
    assert!(late.is_ok(), "an attempt after the abort does not wait");
}

#[tokio::test(start_paused = true)]
async fn a_first_attempt_is_born_at_the_prepares_clock_read_and_a_retry_reads_the_clock() {
    let core = core(FakeTransport::new(2, 1), |_| {});
    core.transport
        .script_next(&[Step::Refuse(ResponseCode::SYSTEM_ERROR)]);
    let job = job(Target::Any, 2, S3);
    let born = job.out.born_ms;
    assert!(born > 0, "the prepare read the wall clock");
    run(&core, job).await.expect("the retry answers");
    let calls = core.transport.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].born_ms, Some(born), "the prepare's read, no other");
    assert_eq!(calls[1].born_ms, None, "a retry is born when it is made");
}

/// A state built after a wait (a route lookup, a selector): its first attempt has what the
/// wait left of the send's timeout, never the whole of it, and a fresh `bornTimestamp`.
/// Runs `job` as a send that waited (for room, a route, a selector) since it started: its
/// first attempt reads the clocks again ([`SendState::after_wait`]).
async fn run_after_wait(
    core: &Arc<Core<FakeTransport>>,
    job: Job,
) -> Result<Option<SendResult>, ErrorKind> {
    let info = publish_info(core, "T", job.started, job.timeout)
        .await
        .expect("route");
    SendState::new(Arc::clone(core), job, info, Span::none())
        .after_wait()
        .run()
        .await
}

#[tokio::test(start_paused = true)]
async fn a_first_attempt_after_a_wait_has_only_the_time_left() {
    let core = core(FakeTransport::new(2, 1), |_| {});
    core.transport.script_next(&[Step::BlackHole]);
    let job = job(Target::Any, 0, S3);
    let t0 = job.started;
    tokio::time::advance(ms(2000)).await;
    let err = run_after_wait(&core, job).await.expect_err("timed out");
    let calls = core.transport.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].budget, ms(1000), "what the wait left");
    assert_eq!(calls[0].born_ms, None, "born when it is made");
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(t0.elapsed(), S3, "never later than the send's deadline");
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_spent_the_whole_timeout_ends_the_send_without_an_attempt() {
    let core = core(FakeTransport::new(2, 1), |_| {});
    let job = job(Target::Any, 2, S3);
    tokio::time::advance(S3).await;
    let err = run_after_wait(&core, job).await.expect_err("timed out");
    assert!(err.is_timeout(), "{err:?}");
    assert!(core.transport.calls().is_empty());
}
