//! `NameServerConfig::validate` / `clamped`, and the route cache never taking an invalid
//! configuration as it is (a zero poll interval made the refresher spin).

use std::future::Future;
use std::time::Duration;

use rmq_nameserver_client::{
    ConfigError, NameServerConfig, RouteCache, MAX_QUEUES_PER_BROKER, MIN_POLL_INTERVAL,
};
use rmq_remoting::{RemotingClient, RemotingConfig};
use rmq_testkit::{MockNameServer, RouteBuilder};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("test step timed out")
}

fn base() -> NameServerConfig {
    NameServerConfig::new(["127.0.0.1:9876"])
}

#[test]
fn every_invalid_setting_is_a_typed_error_and_clamps_to_a_valid_one() {
    assert_eq!(base().validate(), Ok(()));
    assert_eq!(base().clamped(), base());
    let cases: Vec<(NameServerConfig, &str)> = vec![
        (
            NameServerConfig {
                poll_interval: Duration::ZERO,
                ..base()
            },
            "poll_interval",
        ),
        (
            NameServerConfig {
                poll_interval: Duration::from_millis(9),
                ..base()
            },
            "poll_interval",
        ),
        (
            NameServerConfig {
                request_timeout: Duration::ZERO,
                ..base()
            },
            "request_timeout",
        ),
        (
            NameServerConfig {
                topic_idle_expiry: Duration::ZERO,
                ..base()
            },
            "topic_idle_expiry",
        ),
    ];
    for (config, field) in cases {
        match config.validate() {
            Err(ConfigError::TooShort { field: f, min, .. }) => {
                assert_eq!(f, field);
                assert!(min > Duration::ZERO);
            }
            other => panic!("{field}: {other:?}"),
        }
        assert_eq!(config.clamped().validate(), Ok(()), "{field}");
    }
    assert_eq!(
        NameServerConfig {
            poll_interval: Duration::ZERO,
            ..base()
        }
        .clamped()
        .poll_interval,
        MIN_POLL_INTERVAL
    );

    for nums in [0, -1, MAX_QUEUES_PER_BROKER + 1, i32::MAX] {
        let config = NameServerConfig {
            default_topic_queue_nums: nums,
            ..base()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::DefaultTopicQueueNums {
                value: nums,
                max: MAX_QUEUES_PER_BROKER
            })
        );
        let clamped = config.clamped();
        assert!((1..=MAX_QUEUES_PER_BROKER).contains(&clamped.default_topic_queue_nums));
    }

    let config = NameServerConfig {
        default_topic: " ".into(),
        ..base()
    };
    assert_eq!(config.validate(), Err(ConfigError::BlankDefaultTopic));
    assert_eq!(config.clamped().default_topic, "TBW102");

    let config = NameServerConfig::new(["a:1", " ", "b:2"]);
    assert_eq!(
        config.validate(),
        Err(ConfigError::BlankAddress { index: 1 })
    );
    assert_eq!(config.clamped().addrs, ["a:1", "b:2"]);
    let text = ConfigError::BlankAddress { index: 1 }.to_string();
    assert!(text.contains("#1"), "{text}");

    // No address at all is allowed (requests fail with NoNameServer), and so is no throttle.
    let config = NameServerConfig {
        min_immediate_refresh_interval: Duration::ZERO,
        ..NameServerConfig::default()
    };
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn try_new_refuses_what_new_clamps() {
    let remoting = RemotingClient::new(RemotingConfig::default());
    let spin = NameServerConfig {
        poll_interval: Duration::ZERO,
        ..base()
    };
    assert!(matches!(
        RouteCache::try_new(remoting.clone(), spin.clone()),
        Err(ConfigError::TooShort {
            field: "poll_interval",
            ..
        })
    ));
    let cache = RouteCache::new(remoting.clone(), spin);
    assert_eq!(cache.config().poll_interval, MIN_POLL_INTERVAL);
    assert!(RouteCache::try_new(remoting, base()).is_ok());
}

#[tokio::test]
async fn a_zero_poll_interval_does_not_make_the_refresher_spin() {
    let ns = within(MockNameServer::start()).await.unwrap();
    ns.set_route(
        "T",
        RouteBuilder::new()
            .broker("broker-a", "127.0.0.1:10911")
            .queues("broker-a", 1)
            .build(),
    );
    let config = NameServerConfig {
        poll_interval: Duration::ZERO,
        ..NameServerConfig::new([ns.addr()])
    };
    let cache = RouteCache::new(RemotingClient::new(RemotingConfig::default()), config);
    within(cache.publish_info("T", false, Duration::from_secs(5)))
        .await
        .unwrap();
    let start = Instant::now();
    let refresher = cache.start_refresher(CancellationToken::new());
    tokio::time::sleep(Duration::from_millis(300)).await;
    within(cache.shutdown()).await;
    within(refresher).await.unwrap();
    let refreshes = ns.request_count("T") - 1;
    let elapsed = start.elapsed();
    // One refresh per MIN_POLL_INTERVAL at most.
    let max = usize::try_from(elapsed.as_millis() / MIN_POLL_INTERVAL.as_millis()).unwrap() + 1;
    assert!(
        refreshes <= max,
        "{refreshes} refreshes in {elapsed:?} (at most {max})"
    );
    assert!(refreshes >= 1, "the refresher never ran");
}
