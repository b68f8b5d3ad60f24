#!/usr/bin/env bash
# Runs every check and test of the workspace, including the interop tests against a real RocketMQ
# cluster (started here with scripts/rocketmq-dev.sh, which builds and caches the binaries once).
#
#   bash scripts/test-all.sh
#
# RMQ_SKIP_INTEROP=1 skips starting the real cluster (the interop tests then skip themselves,
# except under CI, where a missing cluster is a failure).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo clippy -p rmq-producer without the metrics feature (the workspace build turns it on)"
cargo clippy -p rmq-producer --all-targets --locked -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked

if [ "${RMQ_SKIP_INTEROP:-0}" != 1 ]; then
  step "real RocketMQ cluster (scripts/rocketmq-dev.sh)"
  # Stop the cluster afterwards only if this run started it (a cluster the user started stays up).
  if ! bash scripts/rocketmq-dev.sh status >/dev/null 2>&1; then
    trap 'bash scripts/rocketmq-dev.sh stop || true' EXIT
  fi
  # One more try from scratch if the start fails (it says why, with the servers' last log lines).
  cluster_env=$(bash scripts/rocketmq-dev.sh start) || {
    printf 'test-all: the cluster did not start; stopping it and trying once more\n' >&2
    bash scripts/rocketmq-dev.sh stop || true
    cluster_env=$(bash scripts/rocketmq-dev.sh start)
  }
  eval "$cluster_env"
  printf '%s\n' "$cluster_env" >&2
else
  # Without the cluster, the quickstart below must not go to whatever NAMESRV_ADDR points at.
  unset NAMESRV_ADDR
fi

if [ -f fuzz/Cargo.toml ]; then
  step "fuzz crate builds (corpus replay runs in rmq-remoting's tests)"
  cargo build --manifest-path fuzz/Cargo.toml --locked
fi

step "cargo test (unit, integration, interop, benches in test mode)"
PROPTEST_CASES=${PROPTEST_CASES:-256} cargo test --workspace --all-targets --locked

step "the main job: cargo run --example quickstart (embedded dev broker, then the real cluster)"
env -u NAMESRV_ADDR cargo run --quiet --locked --example quickstart
if [ -n "${NAMESRV_ADDR:-}" ]; then
  cargo run --quiet --locked --example quickstart
fi

step "cargo run --example transaction (commit, rollback, unknown then checked back; embedded, then the real cluster)"
env -u NAMESRV_ADDR cargo run --quiet --locked --example transaction
if [ -n "${NAMESRV_ADDR:-}" ]; then
  CHECK_WAIT_SECS=60 cargo run --quiet --locked --example transaction
fi

step "cargo run --example metrics_prometheus (feature metrics; serves /metrics 3 s, prints the last scrape)"
metrics_out=$(env -u NAMESRV_ADDR METRICS_ADDR=127.0.0.1:0 cargo run --quiet --locked --features metrics --example metrics_prometheus -- 3)
printf '%s\n' "$metrics_out" | grep -E '^rocketmq_send_cost_time_count.*invocation_status="success"' >&2

step "cargo test --doc"
cargo test --workspace --doc --locked
