#!/usr/bin/env bash
# rocketmq-dev.sh: a real RocketMQ dev cluster on loopback, for interop tests and local development.
#
# One name server and two master brokers (broker-a, broker-b) of one cluster, auto topic creation on,
# using the Rust implementations from crates.io (rocketmq-namesrv / rocketmq-broker 1.0.0); and, apart
# from them, a second name server with one broker that requires ACL authentication (broker-acl, user
# rocketmq / 12345678), for the signing interop test.
#
#   install              build the binaries once into a cache outside the clone (reused when present)
#   start                install if needed, start the cluster, wait until both brokers are routable;
#                        prints `export ...` lines on stdout:  eval "$(scripts/rocketmq-dev.sh start)"
#   stop                 stop exactly the processes this script started (by pid)
#   status               what is running
#   env                  print the export lines again
#   stop-broker NAME     stop one broker (e.g. broker-b); start-broker NAME starts it again
#
# Environment (all optional):
#   RMQ_DEV_CACHE   where the binaries are installed   (default: ${XDG_CACHE_HOME:-$HOME/.cache}/rmq-dev)
#   RMQ_DEV_STATE   pid files, configs, logs, stores    (default: ${TMPDIR:-/tmp}/rmq-dev-$UID)
#   RMQ_DEV_NAMESRV_PORT (9876), RMQ_DEV_BROKER_A_PORT (10911), RMQ_DEV_BROKER_B_PORT (10921)
#   RMQ_DEV_ACL_NAMESRV_PORT (9886), RMQ_DEV_BROKER_ACL_PORT (10931)
#   RMQ_DEV_START_TIMEOUT seconds to wait for readiness (default 120)
set -euo pipefail

VERSION=1.0.0
CACHE=${RMQ_DEV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rmq-dev}
ROOT="$CACHE/rocketmq-$VERSION"
BIN="$ROOT/bin"
STATE=${RMQ_DEV_STATE:-${TMPDIR:-/tmp}/rmq-dev-$(id -u)}
NAMESRV_PORT=${RMQ_DEV_NAMESRV_PORT:-9876}
BROKER_A_PORT=${RMQ_DEV_BROKER_A_PORT:-10911}
BROKER_B_PORT=${RMQ_DEV_BROKER_B_PORT:-10921}
ACL_NAMESRV_PORT=${RMQ_DEV_ACL_NAMESRV_PORT:-9886}
BROKER_ACL_PORT=${RMQ_DEV_BROKER_ACL_PORT:-10931}
ACL_USER=rocketmq
ACL_SECRET=12345678
START_TIMEOUT=${RMQ_DEV_START_TIMEOUT:-120}
HOST=127.0.0.1
SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

log() { echo "rocketmq-dev: $*" >&2; }
die() { log "error: $*"; exit 1; }

broker_port() {
  case "$1" in
    broker-a) echo "$BROKER_A_PORT" ;;
    broker-b) echo "$BROKER_B_PORT" ;;
    broker-acl) echo "$BROKER_ACL_PORT" ;;
    *) die "unknown broker '$1' (broker-a, broker-b or broker-acl)" ;;
  esac
}

# The name server a broker registers with: broker-acl has its own, so that its queues never
# appear in the routes the other brokers serve.
broker_namesrv_port() {
  case "$1" in
    broker-acl) echo "$ACL_NAMESRV_PORT" ;;
    *) echo "$NAMESRV_PORT" ;;
  esac
}

installed() { [ -x "$BIN/rocketmq-namesrv-rust" ] && [ -x "$BIN/rocketmq-broker-rust" ]; }

cmd_install() {
  if installed; then
    log "using cached binaries in $BIN"
    return 0
  fi
  command -v cargo >/dev/null || die "cargo is required to build the RocketMQ binaries"
  mkdir -p "$CACHE"
  log "building rocketmq-namesrv and rocketmq-broker $VERSION from crates.io into $ROOT (once; about 15 minutes on 2 cores)"
  # A private target dir keeps the build out of the clone; it is removed after a successful install.
  # Run outside the clone so its rust-toolchain.toml does not apply to this unrelated build.
  # Build with the project's pinned toolchain when rustup has it (the only one these machines have).
  local toolchain
  toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$(dirname "$SCRIPT_PATH")/../rust-toolchain.toml" 2>/dev/null || true)
  if [ -n "$toolchain" ] && command -v rustup >/dev/null && rustup toolchain list | grep -q "^$toolchain"; then
    export RUSTUP_TOOLCHAIN=$toolchain
  fi
  (cd "$CACHE" && CARGO_TARGET_DIR="$CACHE/target" cargo install --locked --root "$ROOT" \
    "rocketmq-namesrv@$VERSION" "rocketmq-broker@$VERSION") >&2 \
    || die "cargo install failed (it needs crates.io); RMQ_SKIP_INTEROP=1 bash scripts/test-all.sh runs everything else"
  installed || die "binaries missing after install"
  rm -rf "$CACHE/target"
  log "installed: $BIN"
}

# Asks the name server on port $1 for the route of TBW102 (GET_ROUTEINFO_BY_TOPIC, JSON header)
# and prints the broker names it lists, one per line; prints nothing when it does not answer SUCCESS.
route_brokers() {
  command -v python3 >/dev/null || die "python3 is required for the readiness probe"
  python3 - "$HOST" "$1" <<'PY' 2>/dev/null || true
import json, socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
hdr = json.dumps({"code": 105, "extFields": {"topic": "TBW102"}, "flag": 0, "language": "JAVA",
                  "opaque": 1, "serializeTypeCurrentRPC": "JSON", "version": 401},
                 separators=(",", ":")).encode()
with socket.create_connection((host, port), timeout=2) as s:
    s.settimeout(2)
    s.sendall(struct.pack(">II", 4 + len(hdr), len(hdr)) + hdr)
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit(1)
        buf += chunk
total, word = struct.unpack(">II", buf[:8])
hlen = word & 0xFFFFFF
header = json.loads(buf[8:8 + hlen])
if header.get("code") != 0:
    sys.exit(1)
route = json.loads(buf[8 + hlen:4 + total])
for qd in route.get("queueDatas") or []:
    print(qd["brokerName"])
PY
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# A pid file names a live process of ours (pids are reused: a stale file from an earlier boot or
# session must not make us skip a start, nor stop someone else's process).
# After a launch: waits (bounded) until the recorded pid has exec'ed into the server binary, so
# the readiness loops never mistake the short-lived launching subshell for a dead server.
await_exec() {
  local pidf=$1 i
  for i in $(seq 1 100); do
    pid_alive "$pidf" && return 0
    kill -0 "$(cat "$pidf")" 2>/dev/null || return 0  # exited: the readiness loop reports it
    sleep 0.05
  done
}

pid_alive() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'rocketmq-\(namesrv\|broker\)-rust'
}

write_namesrv_config() {
  local dir="$STATE/$1"
  mkdir -p "$dir"
  cat >"$dir/namesrv.toml" <<EOF
rocketmqHome = "$STATE/home"
kvConfigPath = "$dir/kvConfig.json"
configStorePath = "$dir/namesrv.properties"
EOF
}

write_broker_config() {
  local name=$1 port=$2 dir="$STATE/$1" cluster=DefaultCluster auth=""
  if [ "$name" = broker-acl ]; then
    cluster=AclCluster
    auth="authenticationEnabled = true
authConfigPath = \"$dir/auth\"
initAuthenticationUser = '{\"username\":\"$ACL_USER\",\"password\":\"$ACL_SECRET\"}'"
  fi
  mkdir -p "$dir/store"
  cat >"$dir/broker.toml" <<EOF
[broker]
namesrvAddr = "$HOST:$(broker_namesrv_port "$name")"
brokerIp1 = "$HOST"
listenPort = $port
storePathRootDir = "$dir/store"
autoCreateTopicEnable = true
$auth

[broker.brokerServerConfig]
bindAddress = "$HOST"

[broker.brokerIdentity]
brokerName = "$name"
brokerClusterName = "$cluster"
brokerId = 0

[store]
storeType = "LocalFile"
brokerRole = "ASYNC_MASTER"
storePathRootDir = "$dir/store"
haListenAddress = "$HOST"
haListenPort = $((port + 1))
# Small preallocated files: the defaults (1 GiB commit log, 400 MiB index, 6 MB per consume
# queue file) cost about 1.5 GB of disk per broker, for a cluster that holds test messages.
mappedFileSizeCommitLog = 67108864
mappedFileSizeConsumeQueue = 1200000
maxHashSlotNum = 100000
maxIndexNum = 400000
EOF
}

run_env() {
  export ROCKETMQ_HOME="$STATE/home"
  export ROCKETMQ_SECURITY_PROFILE=development-insecure-loopback
  unset NAMESRV_ADDR
}

# start_namesrv NAME PORT: a name server with its state in $STATE/NAME, waited for until it listens.
start_namesrv() {
  local name=$1 port=$2 pidf="$STATE/$1.pid"
  if pid_alive "$pidf"; then log "$name already running (pid $(cat "$pidf"))"; return 0; fi
  port_open "$port" && die "port $port is in use by another process"
  write_namesrv_config "$name"
  (run_env; cd "$STATE/$name" && exec setsid "$BIN/rocketmq-namesrv-rust" -c "$STATE/$name/namesrv.toml" \
      --listenPort "$port" --bindAddress "$HOST" >"$STATE/$name/out.log" 2>&1 </dev/null) &
  echo $! >"$pidf"
  await_exec "$pidf"
  log "$name starting on $HOST:$port (pid $!)"
  local deadline=$((SECONDS + START_TIMEOUT))
  until port_open "$port"; do
    pid_alive "$pidf" || { tail -n 30 "$STATE/$name/out.log" >&2; die "$name exited"; }
    [ $SECONDS -ge $deadline ] && die "$name not listening after ${START_TIMEOUT}s"
    sleep 0.2
  done
}

start_broker() {
  local name=$1 port pidf="$STATE/$1.pid"
  port=$(broker_port "$name")
  if pid_alive "$pidf"; then log "$name already running (pid $(cat "$pidf"))"; return 0; fi
  port_open "$port" && die "port $port is in use by another process"
  port_open $((port + 1)) && die "port $((port + 1)) (HA) is in use by another process"
  port_open $((port - 2)) && die "port $((port - 2)) (fast channel) is in use by another process"
  write_broker_config "$name" "$port"
  (run_env; cd "$STATE/$name" && exec setsid "$BIN/rocketmq-broker-rust" -c "$STATE/$name/broker.toml" \
      -n "$HOST:$(broker_namesrv_port "$name")" >"$STATE/$name/out.log" 2>&1 </dev/null) &
  echo $! >"$pidf"
  await_exec "$pidf"
  log "$name starting on $HOST:$port (pid $!)"
}

# wait_routable PORT BROKER...: waits until the name server on PORT routes TBW102 to every BROKER.
wait_routable() {
  local port=$1 deadline=$((SECONDS + START_TIMEOUT)) reply missing b p
  shift
  while :; do
    reply=$(route_brokers "$port")
    missing=""
    for b in "$@"; do
      printf '%s\n' "$reply" | grep -qx -- "$b" || missing="$missing $b"
    done
    [ -n "$reply" ] && [ -z "$missing" ] && return 0
    for p in "$STATE"/*.pid; do
      [ -f "$p" ] || continue
      pid_alive "$p" || { tail -n 30 "$STATE/$(basename "$p" .pid)"/out.log >&2 2>/dev/null; die "$(basename "$p" .pid) exited during startup"; }
    done
    [ $SECONDS -ge $deadline ] && die "cluster not routable after ${START_TIMEOUT}s (missing:${missing:- name server}); logs in $STATE"
    sleep 0.5
  done
}

print_env() {
  echo "export RMQ_INTEROP_NAMESRV=$HOST:$NAMESRV_PORT"
  echo "export RMQ_INTEROP_BROKERS='broker-a=$HOST:$BROKER_A_PORT;broker-b=$HOST:$BROKER_B_PORT'"
  echo "export RMQ_INTEROP_SCRIPT=$SCRIPT_PATH"
  echo "export RMQ_INTEROP_ACL_NAMESRV=$HOST:$ACL_NAMESRV_PORT"
  echo "export RMQ_INTEROP_ACL_CREDENTIALS=$ACL_USER:$ACL_SECRET"
  echo "export NAMESRV_ADDR=$HOST:$NAMESRV_PORT"
}

# The processes of the dev cluster, in stop order.
ALL="broker-a broker-b broker-acl namesrv namesrv-acl"

cmd_start() {
  cmd_install
  local w running=""
  for w in $ALL; do pid_alive "$STATE/$w.pid" && running=1; done
  if [ -z "$running" ]; then
    # A fresh cluster: no topics, offsets, users or messages left over from an earlier run.
    for w in $ALL home; do rm -rf "${STATE:?}/$w"; done
  fi
  mkdir -p "$STATE/home/conf"
  start_namesrv namesrv "$NAMESRV_PORT"
  start_namesrv namesrv-acl "$ACL_NAMESRV_PORT"
  start_broker broker-a
  start_broker broker-b
  start_broker broker-acl
  wait_routable "$NAMESRV_PORT" broker-a broker-b
  wait_routable "$ACL_NAMESRV_PORT" broker-acl
  log "cluster ready: name server $HOST:$NAMESRV_PORT, broker-a $HOST:$BROKER_A_PORT, broker-b $HOST:$BROKER_B_PORT"
  log "ACL cluster ready: name server $HOST:$ACL_NAMESRV_PORT, broker-acl $HOST:$BROKER_ACL_PORT (user $ACL_USER)"
  print_env
}

stop_one() {
  local what=$1 pidf="$STATE/$1.pid" pid
  [ -f "$pidf" ] || return 0
  pid=$(cat "$pidf")
  if pid_alive "$pidf"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { log "$what did not stop in 5 s; killing"; kill -KILL "$pid" 2>/dev/null || true; }
    log "stopped $what (pid $pid)"
  fi
  rm -f "$pidf"
}

cmd_stop() {
  local w
  for w in $ALL; do stop_one "$w"; done
}

cmd_status() {
  local any=1 w
  for w in $ALL; do
    if pid_alive "$STATE/$w.pid"; then echo "$w running (pid $(cat "$STATE/$w.pid"))"; any=0; else echo "$w stopped"; fi
  done
  return $any
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) print_env ;;
  stop-broker) [ -n "${2:-}" ] || die "usage: $0 stop-broker NAME"; broker_port "$2" >/dev/null; stop_one "$2" ;;
  start-broker)
    [ -n "${2:-}" ] || die "usage: $0 start-broker NAME"
    start_broker "$2"
    wait_routable "$(broker_namesrv_port "$2")" "$2"
    ;;
  *) echo "usage: $0 install|start|stop|status|env|stop-broker NAME|start-broker NAME" >&2; exit 2 ;;
esac
