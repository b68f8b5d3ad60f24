#!/usr/bin/env bash
# The per-message cost of rmq as ratios to the wire limit, measured in one run (issue 13).
#
# Builds (release) ../shared/tools/nullbroker and rawping, rmq's CLI and the remoting_bench
# example; starts nullbroker on loopback; measures the wire limit with rawping (ping-pong, and
# pipelined with 256 in flight), then rmq: RemotingClient::invoke_async with 256 in flight,
# producer send with 1 task, async with 256 in flight, 64 sync tasks and oneway with 4 tasks.
# Two more rows run invoke_async and the producer's async row on a runtime with one worker thread
# (TOKIO_WORKER_THREADS=1; the others use tokio's default, one worker per core): no target, they
# show how much of a row's time is the runtime's threads handing work to each other.
# Prints one table: absolute rates and each rmq row as a ratio to its wire limit. Every run is
# bounded by its count; nullbroker is killed on exit.
#
#   scripts/bench-ratios.sh                 # default counts
#   SCALE=0.25 scripts/bench-ratios.sh      # a quicker, noisier run
#
# Environment: CARGO_TARGET_DIR (rmq's build; default target/), BASELINE_TARGET_DIR (the
# tools' build; default $CARGO_TARGET_DIR/baselines), SHARED_TOOLS (default ../shared/tools
# next to the repository, else /work/shared/tools), NAMESRV_PORT / BROKER_PORT (29876 / 29911),
# SCALE (multiplies every count), NO_BUILD=1 (use what is built).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BASE_TARGET=${BASELINE_TARGET_DIR:-$TARGET/baselines}
TOOLS=${SHARED_TOOLS:-$ROOT/../shared/tools}
[ -d "$TOOLS" ] || TOOLS=/work/shared/tools
NS_PORT=${NAMESRV_PORT:-29876}
BR_PORT=${BROKER_PORT:-29911}
SCALE=${SCALE:-1}

count() { awk -v n="$1" -v s="$SCALE" 'BEGIN { c = int(n * s); if (c < 1000) c = 1000; print c }'; }

if [ "${NO_BUILD:-0}" != 1 ]; then
    echo "building (release)..." >&2
    CARGO_TARGET_DIR=$BASE_TARGET cargo build -q --release --manifest-path "$TOOLS/nullbroker/Cargo.toml"
    CARGO_TARGET_DIR=$BASE_TARGET cargo build -q --release --manifest-path "$TOOLS/rawping/Cargo.toml"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build -q --release -p rmq-cli --bin rmq)
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build -q --release --example remoting_bench)
fi
NULLBROKER=$BASE_TARGET/release/nullbroker
RAWPING=$BASE_TARGET/release/rawping
RMQ=$TARGET/release/rmq
RBENCH=$TARGET/release/examples/remoting_bench

NB_PID=
cleanup() { if [ -n "$NB_PID" ]; then kill "$NB_PID" 2>/dev/null || true; wait "$NB_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT INT TERM

"$NULLBROKER" --namesrv-port "$NS_PORT" --broker-port "$BR_PORT" --quiet >/dev/null 2>&1 &
NB_PID=$!
for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$BR_PORT") 2>/dev/null && break
    sleep 0.1
done
# Ours, not another nullbroker that already had the ports (its numbers would mix with ours).
sleep 0.2
if ! kill -0 "$NB_PID" 2>/dev/null; then
    echo "nullbroker did not start (ports $NS_PORT/$BR_PORT busy? set NAMESRV_PORT/BROKER_PORT)" >&2
    NB_PID=
    exit 1
fi

# The tps of a `rawping`/remoting_bench line, or of `rmq bench`'s JSON summary.
tps_of() { grep -o 'tps=[0-9.]*' | tail -1 | cut -d= -f2; }
json_tps() { grep -o '"tps":[0-9.]*' | tail -1 | cut -d: -f2; }

run_rmq() { # mode concurrency count
    "$RMQ" bench --namesrv "127.0.0.1:$NS_PORT" --mode "$1" --concurrency "$2" --count "$3" \
        2>/dev/null | json_tps
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
PING=$("$RAWPING" "$BR_PORT" pingpong "$(count 50000)" | tps_of)
PIPE=$("$RAWPING" "$BR_PORT" pipeline "$(count 1000000)" 256 | tps_of)
INVOKE=$("$RBENCH" "127.0.0.1:$BR_PORT" "$(count 600000)" 256 | tps_of)
SYNC1=$(run_rmq sync 1 "$(count 50000)")
ASYNC=$(run_rmq async 256 "$(count 600000)")
SYNC64=$(run_rmq sync 64 "$(count 300000)")
ONEWAY=$(run_rmq oneway 4 "$(count 600000)")
INVOKE_1W=$(TOKIO_WORKER_THREADS=1 "$RBENCH" "127.0.0.1:$BR_PORT" "$(count 600000)" 256 | tps_of)
ASYNC_1W=$(TOKIO_WORKER_THREADS=1 run_rmq async 256 "$(count 600000)")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

row() { # name tps baseline-tps target
    awk -v n="$1" -v t="$2" -v b="$3" -v g="$4" 'BEGIN {
        if (b == "") printf "| %-34s | %9.1f K/s | %-6s | %-6s |\n", n, t / 1000, "", g;
        else printf "| %-34s | %9.1f K/s | %6.2f | %-6s |\n", n, t / 1000, t / b, g }'
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
echo "load average before: $LOAD_BEFORE; after: $LOAD_AFTER"
echo "| run                                | rate          | ratio  | target |"
echo "|------------------------------------|---------------|--------|--------|"
row "wire: rawping pingpong" "$PING" "" ""
row "wire: rawping pipeline 256" "$PIPE" "" ""
row "invoke_async, 256 in flight" "$INVOKE" "$PIPE" ">=0.6"
row "producer send, 1 task" "$SYNC1" "$PING" ">=0.9"
row "producer async, 256 in flight" "$ASYNC" "$PIPE" ">=0.5"
row "producer sync, 64 tasks" "$SYNC64" "$PIPE" ">=0.3"
row "producer oneway, 4 tasks" "$ONEWAY" "$PIPE" ">=0.5"
row "invoke_async 256, 1 worker thread" "$INVOKE_1W" "$PIPE" ""
row "producer async 256, 1 worker thread" "$ASYNC_1W" "$PIPE" ""
