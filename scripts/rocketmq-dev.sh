#!/usr/bin/env bash
# rocketmq-dev.sh: a real RocketMQ dev cluster on loopback, for interop tests and local development.
#
# One name server and two master brokers (broker-a, broker-b) of one cluster, auto topic creation on,
# using the Rust implementations from crates.io (rocketmq-namesrv / rocketmq-broker 1.0.0); and, apart
# from them, a second name server with one broker that requires ACL authentication (broker-acl, user
# rocketmq / 12345678), for the signing interop test; and a third name server speaking TLS with one
# broker that accepts TLS only (broker-tls), for the TLS interop test. Their certificates (a CA, a
# server certificate for 127.0.0.1 / localhost, and an unrelated second CA) are made at start with
# openssl into $RMQ_DEV_STATE/tls. In front of the first name server, a RocketMQ 5 gRPC proxy
# (rocketmq-proxy 1.0.0, cluster mode, gRPC on 127.0.0.1:8081) for the gRPC transport's interop tests.
#
#   install              build the binaries once into a cache outside the clone (reused when present)
#   start                install if needed, start the cluster, wait until both brokers are routable;
#                        prints `export ...` lines on stdout:  eval "$(scripts/rocketmq-dev.sh start)"
#   stop                 stop exactly the processes this script started (by pid)
#   status               what is running
#   env                  print the export lines again
#   stop-broker NAME     stop one broker (e.g. broker-b, broker-tls); start-broker NAME starts it again
#   start-proxy          build if needed and start only the gRPC proxy (next to a running cluster)
#
# Environment (all optional):
#   RMQ_DEV_CACHE   where the binaries are installed   (default: ${XDG_CACHE_HOME:-$HOME/.cache}/rmq-dev)
#   RMQ_DEV_STATE   pid files, configs, logs            (default: ${TMPDIR:-/tmp}/rmq-dev-$UID)
#   RMQ_DEV_STORES  the brokers' stores (default: a tmpfs of their own, see prepare_stores)
#   RMQ_DEV_NAMESRV_PORT (9876), RMQ_DEV_BROKER_A_PORT (10911), RMQ_DEV_BROKER_B_PORT (10921)
#   RMQ_DEV_ACL_NAMESRV_PORT (9886), RMQ_DEV_BROKER_ACL_PORT (10931)
#   RMQ_DEV_TLS_NAMESRV_PORT (9896), RMQ_DEV_BROKER_TLS_PORT (10941)
#   RMQ_DEV_PROXY_PORT (8081)
#   RMQ_DEV_NO_PROXY=1   neither build nor start the gRPC proxy (its build takes ~15 minutes on 2 cores)
#   RMQ_DEV_START_TIMEOUT seconds to wait for readiness (default 120)
set -Eeuo pipefail

VERSION=1.0.0
CACHE=${RMQ_DEV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rmq-dev}
# The "-tls" suffix names binaries built with the broker's `tls` feature (the name server has it by
# default): a cache from before TLS (rocketmq-$VERSION) is not reused, the new one is built next to it.
ROOT="$CACHE/rocketmq-$VERSION-tls"
BIN="$ROOT/bin"
# The proxy has its own install root: it was added after the servers, and caches of the servers
# alone stay valid.
PROXY_ROOT="$CACHE/rocketmq-proxy-$VERSION"
PROXY_BIN="$PROXY_ROOT/bin/rocketmq-proxy-rust"
NO_PROXY_BUILD=${RMQ_DEV_NO_PROXY:-}
STATE=${RMQ_DEV_STATE:-${TMPDIR:-/tmp}/rmq-dev-$(id -u)}
STORES_MOUNT="$STATE/stores"
NAMESRV_PORT=${RMQ_DEV_NAMESRV_PORT:-9876}
BROKER_A_PORT=${RMQ_DEV_BROKER_A_PORT:-10911}
BROKER_B_PORT=${RMQ_DEV_BROKER_B_PORT:-10921}
ACL_NAMESRV_PORT=${RMQ_DEV_ACL_NAMESRV_PORT:-9886}
BROKER_ACL_PORT=${RMQ_DEV_BROKER_ACL_PORT:-10931}
TLS_NAMESRV_PORT=${RMQ_DEV_TLS_NAMESRV_PORT:-9896}
BROKER_TLS_PORT=${RMQ_DEV_BROKER_TLS_PORT:-10941}
PROXY_PORT=${RMQ_DEV_PROXY_PORT:-8081}
ACL_USER=rocketmq
ACL_SECRET=12345678
START_TIMEOUT=${RMQ_DEV_START_TIMEOUT:-120}
HOST=127.0.0.1
TLS_DIR="$STATE/tls"
SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

log() { echo "rocketmq-dev: $*" >&2; }
die() { log "error: $*"; exit 1; }
# Any command that stops the script through `set -e` says which one, where: a failure must never
# be silent (CI shows only what was printed).
trap 'log "error: \"$BASH_COMMAND\" failed (exit $?) at line $LINENO${FUNCNAME[0]:+ in ${FUNCNAME[0]}}"' ERR

broker_port() {
  case "$1" in
    broker-a) echo "$BROKER_A_PORT" ;;
    broker-b) echo "$BROKER_B_PORT" ;;
    broker-acl) echo "$BROKER_ACL_PORT" ;;
    broker-tls) echo "$BROKER_TLS_PORT" ;;
    *) die "unknown broker '$1' (broker-a, broker-b, broker-acl or broker-tls)" ;;
  esac
}

# The name server a broker registers with: broker-acl and broker-tls have their own, so that their
# queues never appear in the routes the other brokers serve.
broker_namesrv_port() {
  case "$1" in
    broker-acl) echo "$ACL_NAMESRV_PORT" ;;
    broker-tls) echo "$TLS_NAMESRV_PORT" ;;
    *) echo "$NAMESRV_PORT" ;;
  esac
}

installed() { [ -x "$BIN/rocketmq-namesrv-rust" ] && [ -x "$BIN/rocketmq-broker-rust" ]; }

with_proxy() { [ "${NO_PROXY_BUILD:-0}" != 1 ]; }

# pinned_toolchain: builds use the project's pinned toolchain when rustup has it (the only one
# these machines have).
pinned_toolchain() {
  local toolchain
  toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$(dirname "$SCRIPT_PATH")/../rust-toolchain.toml" 2>/dev/null || true)
  if [ -n "$toolchain" ] && command -v rustup >/dev/null && rustup toolchain list | grep -q "^$toolchain"; then
    export RUSTUP_TOOLCHAIN=$toolchain
  fi
}

# vendored_protoc: the path of the protoc binary the protoc-bin-vendored crate ships (the proxy's
# build needs PROTOC; a fresh machine has no system protoc). A two-line crate in the cache asks the
# crate for its own path, so no registry layout is assumed.
vendored_protoc() {
  local dir="$CACHE/protoc-path"
  mkdir -p "$dir/src"
  cat >"$dir/Cargo.toml" <<'EOF'
[package]
name = "protoc-path"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
protoc-bin-vendored = "3"

[workspace]
EOF
  cat >"$dir/src/main.rs" <<'EOF'
fn main() {
    match protoc_bin_vendored::protoc_bin_path() {
        Ok(path) => println!("{}", path.display()),
        Err(e) => {
            eprintln!("protoc-bin-vendored: {e}");
            std::process::exit(1);
        }
    }
}
EOF
  (cd "$dir" && CARGO_TARGET_DIR="$dir/target" cargo run -q --release 2>/dev/null)
}

cmd_install_proxy() {
  if [ -x "$PROXY_BIN" ]; then
    log "using cached proxy in $PROXY_BIN"
    return 0
  fi
  command -v cargo >/dev/null || die "cargo is required to build the RocketMQ proxy"
  mkdir -p "$CACHE"
  pinned_toolchain
  local protoc
  protoc=$(vendored_protoc) || die "could not get protoc from the protoc-bin-vendored crate"
  [ -x "$protoc" ] || chmod +x "$protoc" 2>/dev/null || true
  log "building rocketmq-proxy $VERSION from crates.io into $PROXY_ROOT (once; about 15 minutes on 2 cores; protoc $protoc)"
  (cd "$CACHE" && export CARGO_TARGET_DIR="$CACHE/target-proxy" PROTOC="$protoc" \
    && cargo install --locked --root "$PROXY_ROOT" "rocketmq-proxy@$VERSION") >&2 \
    || die "cargo install rocketmq-proxy failed (it needs crates.io); RMQ_DEV_NO_PROXY=1 skips the proxy"
  [ -x "$PROXY_BIN" ] || die "proxy binary missing after install"
  rm -rf "$CACHE/target-proxy"
  log "installed: $PROXY_BIN"
}

cmd_install() {
  if with_proxy; then cmd_install_proxy; fi
  if installed; then
    log "using cached binaries in $BIN"
    return 0
  fi
  command -v cargo >/dev/null || die "cargo is required to build the RocketMQ binaries"
  mkdir -p "$CACHE"
  log "building rocketmq-namesrv and rocketmq-broker $VERSION from crates.io into $ROOT (once; about 30 minutes on 2 cores)"
  # A private target dir keeps the build out of the clone; it is removed after a successful install.
  # Run outside the clone so its rust-toolchain.toml does not apply to this unrelated build.
  pinned_toolchain
  # Two installs sharing one target dir: `--features` applies to one package. The broker needs its
  # `tls` feature (off by default) for broker-tls; the name server has TLS in its default features.
  (cd "$CACHE" && export CARGO_TARGET_DIR="$CACHE/target" \
    && cargo install --locked --root "$ROOT" "rocketmq-namesrv@$VERSION" \
    && cargo install --locked --root "$ROOT" --features tls "rocketmq-broker@$VERSION") >&2 \
    || die "cargo install failed (it needs crates.io); RMQ_SKIP_INTEROP=1 bash scripts/test-all.sh runs everything else"
  installed || die "binaries missing after install"
  rm -rf "$CACHE/target"
  # The binaries of before TLS (a broker without the `tls` feature) are of no further use.
  rm -rf "${CACHE:?}/rocketmq-$VERSION"
  log "installed: $BIN"
}

# probe MODE PORT [CA]: one remoting request (JSON header) to $HOST:PORT, over TLS when CA (a PEM
# file) is given, verifying the server's certificate against it and its name against $HOST.
#   route     GET_ROUTEINFO_BY_TOPIC (105) of TBW102 to a name server: prints the broker names the
#             route lists, one per line; exits non-zero unless the answer is SUCCESS
#   runtime   GET_BROKER_RUNTIME_INFO (28) to a broker: exits zero when it answers (any code)
#   refused   the same request: exits zero when no remoting answer comes (the connection closed or
#             reset, silence, a TLS alert: plaintext to a broker that requires TLS)
# A failing probe says why on stderr.
probe() {
  command -v python3 >/dev/null || die "python3 is required for the readiness probe"
  python3 - "$1" "$HOST" "$2" "${3:-}" <<'PY'
import json, socket, ssl, struct, sys
mode, host, port, ca = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
code, ext = (105, {"topic": "TBW102"}) if mode == "route" else (28, {})
hdr = json.dumps({"code": code, "extFields": ext, "flag": 0, "language": "JAVA",
                  "opaque": 1, "serializeTypeCurrentRPC": "JSON", "version": 401},
                 separators=(",", ":")).encode()
def fail(why):
    print(why, file=sys.stderr)
    sys.exit(1)
try:
    s = socket.create_connection((host, port), timeout=5)
    s.settimeout(5)
    if ca:
        s = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname=host)
except (OSError, ssl.SSLError) as e:
    fail(f"connect: {type(e).__name__}: {e}")
buf = b""
try:
    s.sendall(struct.pack(">II", 4 + len(hdr), len(hdr)) + hdr)
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
except (OSError, ssl.SSLError):
    pass  # reset, timeout: whatever arrived is judged below
finally:
    s.close()
header = None
if len(buf) >= 8:
    total, word = struct.unpack(">II", buf[:8])
    hlen = word & 0xFFFFFF
    try:
        header = json.loads(buf[8:8 + hlen])
    except ValueError:
        header = None
answered = isinstance(header, dict) and "code" in header
if mode == "refused":
    # Refused = no remoting answer: closed, reset, silent, or a TLS alert.
    sys.exit(1 if answered else 0)
if not answered:
    fail(f"no answer ({len(buf)} bytes)")
if mode == "runtime":
    sys.exit(0)
if header.get("code") != 0:
    fail(f"answer code {header.get('code')}")
if mode == "route":
    route = json.loads(buf[8 + hlen:4 + total])
    for qd in route.get("queueDatas") or []:
        print(qd["brokerName"])
PY
}

# route_brokers PORT [CA]: the broker names the name server on PORT routes TBW102 to (nothing when
# it does not answer SUCCESS).
route_brokers() { probe route "$@" 2>/dev/null || true; }

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
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'rocketmq-\(namesrv\|broker\|proxy\)-rust'
}

# prepare_stores: sets STORES, where the brokers keep their stores, and prints the broker's own
# measure of that filesystem's fill. A rocketmq-rust broker refuses every write
# ("store_backpressure reason=store_not_writeable") while (size - available) / size of its store's
# filesystem is above 0.90 (rocketmq-store-local cleanup.rs `classify`; the ratio is clamped to at
# most 0.90 in rocketmq-store's message_store_config.rs, so no setting raises it). `available`
# excludes the root-reserved blocks, so a disk that df shows 61 % used is 85 % by this measure, and a
# shared CI disk can cross 0.90 while the build is running. So the stores live on a filesystem of
# their own, in this order:
#   1. RMQ_DEV_STORES, when set;
#   2. a tmpfs mounted at $STATE/stores (needs root; 8 GiB at most, used as written: the cluster's
#      test messages take well under 1 GiB of RAM), unmounted by `stop`;
#   3. /dev/shm/rmq-dev-$UID, when /dev/shm is a tmpfs with at least 2 GiB available;
#   4. $STATE/stores on the disk, with a warning when the disk is already above 0.85.
prepare_stores() {
  if [ -n "${RMQ_DEV_STORES:-}" ]; then
    STORES=$RMQ_DEV_STORES
  elif mountpoint -q "$STORES_MOUNT" 2>/dev/null; then
    STORES=$STORES_MOUNT
  else
    mkdir -p "$STORES_MOUNT"
    if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=8g,mode=0700 rmq-dev-stores "$STORES_MOUNT" 2>/dev/null; then
      STORES=$STORES_MOUNT
      log "broker stores on a tmpfs of their own at $STORES"
    elif [ -d /dev/shm ] && [ -w /dev/shm ] && [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] \
        && [ "$(df -P --block-size=1M /dev/shm | awk 'NR == 2 { print $4 }')" -ge 2048 ]; then
      STORES=/dev/shm/rmq-dev-$(id -u)
      log "broker stores in $STORES (a tmpfs could not be mounted)"
    else
      STORES=$STORES_MOUNT
      log "broker stores on the disk at $STORES (neither a tmpfs of their own nor /dev/shm)"
    fi
  fi
  mkdir -p "$STORES"
  local used
  used=$(df -P --block-size=1M "$STORES" | awk 'NR == 2 && $2 > 0 { printf "%d", 100 * ($2 - $4) / $2 }')
  if [ -n "$used" ] && [ "$used" -gt 85 ]; then
    log "warning: the brokers' store filesystem ($STORES) is $used % full by the broker's measure; above 90 % every send is refused with store_not_writeable"
  fi
}

# release_stores: after the last broker stopped, the tmpfs of prepare_stores is unmounted (its
# messages go with it; a fresh start clears the stores anyway).
release_stores() {
  local b
  for b in broker-a broker-b broker-acl broker-tls; do pid_alive "$STATE/$b.pid" && return 0; done
  if mountpoint -q "$STORES_MOUNT" 2>/dev/null; then
    umount "$STORES_MOUNT" 2>/dev/null && log "unmounted the stores' tmpfs ($STORES_MOUNT)" \
      || log "could not unmount $STORES_MOUNT"
  fi
  if [ -d "/dev/shm/rmq-dev-$(id -u)" ]; then rm -rf "/dev/shm/rmq-dev-$(id -u)"; fi
}

# gen_certs: the TLS material of broker-tls and namesrv-tls in $TLS_DIR, made once per fresh cluster:
# ca.pem (a CA), server.pem / server.key (a certificate it signed for IP 127.0.0.1 and DNS localhost,
# the key in PKCS#8), and other-ca.pem, an unrelated CA that signed nothing here (the "does not trust"
# case). P-256 keys; the keys are mode 600.
gen_certs() {
  [ -s "$TLS_DIR/ca.pem" ] && [ -s "$TLS_DIR/server.pem" ] && [ -s "$TLS_DIR/server.key" ] \
    && [ -s "$TLS_DIR/other-ca.pem" ] && return 0
  if ! command -v openssl >/dev/null; then
    # Fresh Debian/Ubuntu CI images may lack the openssl tool (the library is always there).
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "openssl is missing: installing it with apt-get"
      { apt-get install -y --no-install-recommends openssl >/dev/null 2>&1 \
        || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends openssl >/dev/null 2>&1; }; } \
        || die "could not install openssl (apt-get install -y openssl)"
    else
      die "openssl is required to make the TLS cluster's certificates (apt-get install -y openssl)"
    fi
  fi
  rm -rf "$TLS_DIR"
  mkdir -p "$TLS_DIR"
  (
    umask 077
    cd "$TLS_DIR"
    for ca in ca other-ca; do
      openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
        -keyout "$ca.key" -out "$ca.pem" -subj "/O=rmq dev/CN=rmq dev $ca" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    done
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
      -keyout server.key -out server.csr -subj "/O=rmq dev/CN=localhost"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
      -sha256 -days 825 -extfile server.ext -out server.pem
    rm -f server.csr server.ext other-ca.key
    chmod 644 ca.pem other-ca.pem server.pem
  ) >/dev/null 2>"$STATE/tls-gen.log" || { cat "$STATE/tls-gen.log" >&2; die "making the TLS certificates failed"; }
  openssl verify -CAfile "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" >/dev/null \
    || die "the server certificate does not verify against $TLS_DIR/ca.pem"
  log "TLS certificates in $TLS_DIR (CA ca.pem, server.pem for $HOST, other-ca.pem)"
}

# write_namesrv_config NAME: its config file, $STATE/NAME/namesrv.toml.
write_namesrv_config() {
  local dir="$STATE/$1" tls=""
  mkdir -p "$dir"
  if [ "$1" = namesrv-tls ]; then
    # The name server reads its -c file twice: through the config crate into its settings (where
    # these dotted keys make a `tls` table it ignores), and as Java properties for the tls.* keys
    # (rocketmq-namesrv src/bin/namesrv_bootstrap_server.rs:704, apply_tls_properties_from_file;
    # quotes around values are stripped). An .ini file with the same lines works as well.
    # Permissive, not enforcing: the broker registers with its name server in plaintext, always
    # (rocketmq-broker 1.0.0 builds its name-server client from TransportClientConfig::default(),
    # TLS off: src/broker_runtime/composition.rs:1174), so an enforcing name server would never
    # learn of broker-tls. Permissive takes TLS (clients, the readiness probe, which verifies the
    # certificate) and plaintext (the broker's registration, the plain producer of the interop test).
    tls="tls.enable = true
tls.server.mode = \"permissive\"
tls.server.certPath = \"$TLS_DIR/server.pem\"
tls.server.keyPath = \"$TLS_DIR/server.key\""
  fi
  cat >"$dir/namesrv.toml" <<EOF
rocketmqHome = "$STATE/home"
kvConfigPath = "$dir/kvConfig.json"
configStorePath = "$dir/namesrv.properties"
$tls
EOF
}

write_broker_config() {
  local name=$1 port=$2 dir="$STATE/$1" cluster=DefaultCluster auth="" tls
  # The server side of TLS follows `mode` alone (rocketmq-transport tls.rs: any mode but disabled
  # tries to load a certificate), so the plain brokers say "disabled" outright; `enable` makes the
  # broker's config validation require certPath and keyPath.
  tls='[broker.brokerServerConfig.tlsConfig]
enable = false

[broker.brokerServerConfig.tlsConfig.server]
mode = "disabled"'
  if [ "$name" = broker-tls ]; then
    cluster=TlsCluster
    tls="[broker.brokerServerConfig.tlsConfig]
enable = true
testModeEnable = false

[broker.brokerServerConfig.tlsConfig.server]
mode = \"enforcing\"
certPath = \"$TLS_DIR/server.pem\"
keyPath = \"$TLS_DIR/server.key\""
  fi
  if [ "$name" = broker-acl ]; then
    cluster=AclCluster
    auth="authenticationEnabled = true
authConfigPath = \"$dir/auth\"
initAuthenticationUser = '{\"username\":\"$ACL_USER\",\"password\":\"$ACL_SECRET\"}'"
  fi
  mkdir -p "$dir" "$STORES/$name"
  cat >"$dir/broker.toml" <<EOF
[broker]
namesrvAddr = "$HOST:$(broker_namesrv_port "$name")"
brokerIp1 = "$HOST"
listenPort = $port
storePathRootDir = "$STORES/$name"
autoCreateTopicEnable = true
# Short transaction timers (all in ms), so that the transactional interop tests see the broker's
# CHECK_TRANSACTION_STATE within seconds, not the defaults' 30 s interval / 6 s timeout: a half
# message older than transactionTimeout is checked at the next scan (every transactionCheckInterval),
# at most transactionCheckMax times, then moved to TRANS_CHECK_MAX_TIME_TOPIC. The op batch interval
# (default 3 s) is how late a commit/rollback's removal record may be written: kept well below both,
# or a transaction already ended could be checked again (and a second commit store it twice).
transactionCheckInterval = 1000
transactionTimeout = 3000
transactionCheckMax = 15
transactionOpBatchInterval = 200
$auth

[broker.brokerServerConfig]
bindAddress = "$HOST"

$tls

[broker.brokerIdentity]
brokerName = "$name"
brokerClusterName = "$cluster"
brokerId = 0

[store]
storeType = "LocalFile"
brokerRole = "ASYNC_MASTER"
storePathRootDir = "$STORES/$name"
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
  if [ "$name" = namesrv-tls ]; then gen_certs; fi
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
  if [ "$name" = broker-tls ]; then gen_certs; fi
  [ -n "${STORES:-}" ] || prepare_stores
  write_broker_config "$name" "$port"
  (run_env; cd "$STATE/$name" && exec setsid "$BIN/rocketmq-broker-rust" -c "$STATE/$name/broker.toml" \
      -n "$HOST:$(broker_namesrv_port "$name")" >"$STATE/$name/out.log" 2>&1 </dev/null) &
  echo $! >"$pidf"
  await_exec "$pidf"
  log "$name starting on $HOST:$port (pid $!)"
}

# write_proxy_config: $STATE/proxy/proxy.toml, cluster mode in front of the first name server, gRPC
# on loopback, the remoting ingress off (keys as in the crate's README; unknown keys stop it).
write_proxy_config() {
  local dir="$STATE/proxy"
  mkdir -p "$dir"
  cat >"$dir/proxy.toml" <<EOF
mode = "cluster"
enableAclRpcHookForClusterMode = false

[grpc]
listenAddr = "$HOST:$PROXY_PORT"

[remoting]
enabled = false

[cluster]
namesrvAddr = "$HOST:$NAMESRV_PORT"
brokerClusterName = "DefaultCluster"
instanceName = "rmq-dev-proxy"
EOF
}

# start_proxy: the gRPC proxy, waited for until it listens. It asks the name server for routes
# on demand, so it may start before the brokers are routable.
start_proxy() {
  local pidf="$STATE/proxy.pid"
  if pid_alive "$pidf"; then log "proxy already running (pid $(cat "$pidf"))"; return 0; fi
  port_open "$PROXY_PORT" && die "port $PROXY_PORT is in use by another process"
  write_proxy_config
  (run_env; cd "$STATE/proxy" && exec setsid "$PROXY_BIN" -c "$STATE/proxy/proxy.toml" \
      >"$STATE/proxy/out.log" 2>&1 </dev/null) &
  echo $! >"$pidf"
  await_exec "$pidf"
  log "proxy starting on $HOST:$PROXY_PORT (pid $!)"
  local deadline=$((SECONDS + START_TIMEOUT))
  until port_open "$PROXY_PORT"; do
    pid_alive "$pidf" || { tail -n 30 "$STATE/proxy/out.log" >&2; die "proxy exited"; }
    [ $SECONDS -ge $deadline ] && die "proxy not listening after ${START_TIMEOUT}s"
    sleep 0.2
  done
}

# wait_routable PORT BROKER...: waits until the name server on PORT routes TBW102 to every BROKER.
# The TLS name server is asked over TLS, verifying its certificate against ca.pem. Only the
# processes waited for (the name server on PORT and the BROKERs) are checked for an early exit.
wait_routable() {
  local port=$1 deadline=$((SECONDS + START_TIMEOUT)) reply missing b w ca=""
  shift
  local watched="$(namesrv_of_port "$port") $*"
  if [ "$port" = "$TLS_NAMESRV_PORT" ]; then ca="$TLS_DIR/ca.pem"; fi
  while :; do
    reply=$(route_brokers "$port" ${ca:+"$ca"})
    missing=""
    # Listed by the name server and listening: a broker restarted after a hard kill is still
    # listed by its old registration (until the name server expires it) before it listens.
    for b in "$@"; do
      { printf '%s\n' "$reply" | grep -qx -- "$b" && port_open "$(broker_port "$b")"; } || missing="$missing $b"
    done
    if [ -n "$reply" ] && [ -z "$missing" ]; then
      for b in "$@"; do
        if [ "$b" = broker-tls ]; then check_tls_broker; fi
      done
      return 0
    fi
    for w in $watched; do
      pid_alive "$STATE/$w.pid" || { tail -n 30 "$STATE/$w/out.log" >&2 2>/dev/null; die "$w exited during startup"; }
    done
    [ $SECONDS -ge $deadline ] && die "cluster not routable after ${START_TIMEOUT}s (missing:${missing:- name server}); logs in $STATE"
    sleep 0.5
  done
}

namesrv_of_port() {
  case "$1" in
    "$ACL_NAMESRV_PORT") echo namesrv-acl ;;
    "$TLS_NAMESRV_PORT") echo namesrv-tls ;;
    *) echo namesrv ;;
  esac
}

# check_tls_broker: broker-tls answers a request over TLS (its certificate verified against ca.pem)
# and gives no answer to a plaintext request (it closes the connection, or says nothing).
# Probes are retried until the start timeout: on a loaded machine one may miss its read timeout.
# A failed probe's own words (python's error) are kept for the message.
check_tls_broker() {
  local deadline=$((SECONDS + START_TIMEOUT)) why
  until why=$(probe runtime "$BROKER_TLS_PORT" "$TLS_DIR/ca.pem" 2>&1); do
    [ $SECONDS -ge $deadline ] && die "broker-tls does not answer over TLS on $HOST:$BROKER_TLS_PORT (${why:-no answer}); logs in $STATE/broker-tls"
    sleep 1
  done
  until why=$(probe refused "$BROKER_TLS_PORT" 2>&1); do
    [ $SECONDS -ge $deadline ] && die "broker-tls answers plaintext on $HOST:$BROKER_TLS_PORT: it must require TLS (${why:-})"
    sleep 1
  done
}

print_env() {
  echo "export RMQ_INTEROP_NAMESRV=$HOST:$NAMESRV_PORT"
  echo "export RMQ_INTEROP_BROKERS='broker-a=$HOST:$BROKER_A_PORT;broker-b=$HOST:$BROKER_B_PORT'"
  echo "export RMQ_INTEROP_SCRIPT=$SCRIPT_PATH"
  echo "export RMQ_INTEROP_ACL_NAMESRV=$HOST:$ACL_NAMESRV_PORT"
  echo "export RMQ_INTEROP_ACL_CREDENTIALS=$ACL_USER:$ACL_SECRET"
  echo "export RMQ_INTEROP_TLS_NAMESRV=$HOST:$TLS_NAMESRV_PORT"
  echo "export RMQ_INTEROP_TLS_BROKER=$HOST:$BROKER_TLS_PORT"
  echo "export RMQ_INTEROP_TLS_CA='$TLS_DIR/ca.pem'"
  echo "export RMQ_INTEROP_TLS_OTHER_CA='$TLS_DIR/other-ca.pem'"
  if with_proxy; then echo "export RMQ_INTEROP_PROXY=$HOST:$PROXY_PORT"; fi
  echo "export NAMESRV_ADDR=$HOST:$NAMESRV_PORT"
}

# The processes of the dev cluster, in stop order.
ALL="proxy broker-a broker-b broker-acl broker-tls namesrv namesrv-acl namesrv-tls"

cmd_start() {
  cmd_install
  local w running=""
  for w in $ALL; do pid_alive "$STATE/$w.pid" && running=1; done
  if [ -z "$running" ]; then
    # A fresh cluster: no topics, offsets, users, messages or certificates left over from an
    # earlier run.
    for w in $ALL home tls; do rm -rf "${STATE:?}/$w" "${STATE:?}/$w.pid"; done
    prepare_stores
    for w in broker-a broker-b broker-acl broker-tls; do rm -rf "${STORES:?}/$w"; done
  fi
  # A start that fails shows the last lines of every server's log.
  trap 'rc=$?; [ "$rc" = 0 ] || dump_logs' EXIT
  mkdir -p "$STATE/home/conf"
  start_namesrv namesrv "$NAMESRV_PORT"
  start_namesrv namesrv-acl "$ACL_NAMESRV_PORT"
  start_namesrv namesrv-tls "$TLS_NAMESRV_PORT"
  start_broker broker-a
  start_broker broker-b
  start_broker broker-acl
  start_broker broker-tls
  wait_routable "$NAMESRV_PORT" broker-a broker-b
  wait_routable "$ACL_NAMESRV_PORT" broker-acl
  wait_routable "$TLS_NAMESRV_PORT" broker-tls
  if with_proxy; then start_proxy; fi
  log "cluster ready: name server $HOST:$NAMESRV_PORT, broker-a $HOST:$BROKER_A_PORT, broker-b $HOST:$BROKER_B_PORT"
  log "ACL cluster ready: name server $HOST:$ACL_NAMESRV_PORT, broker-acl $HOST:$BROKER_ACL_PORT (user $ACL_USER)"
  log "TLS cluster ready: name server $HOST:$TLS_NAMESRV_PORT (TLS, permissive), broker-tls $HOST:$BROKER_TLS_PORT (TLS only), CA $TLS_DIR/ca.pem"
  if with_proxy; then log "gRPC proxy ready: $HOST:$PROXY_PORT (cluster mode, name server $HOST:$NAMESRV_PORT)"; fi
  print_env
}

# dump_logs: the last lines of each server's log, on stderr.
dump_logs() {
  local w
  for w in $ALL; do
    [ -s "$STATE/$w/out.log" ] || continue
    log "---- $STATE/$w/out.log: its last warnings and errors, then its last lines"
    { grep -aE 'WARN|ERROR|panick' "$STATE/$w/out.log" | tail -n 8; tail -n 4 "$STATE/$w/out.log"; } \
      | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-300 >&2 || true
  done
}

stop_one() {
  local what=$1 pidf="$STATE/$1.pid" pid
  [ -f "$pidf" ] || return 0
  pid=$(cat "$pidf")
  if pid_alive "$pidf"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$what did not stop in 5 s; killing"
      kill -KILL "$pid" 2>/dev/null || true
      # Gone before this returns: a start right after must not meet its port or store lock.
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    log "stopped $what (pid $pid)"
  fi
  rm -f "$pidf"
}

cmd_stop() {
  local w
  for w in $ALL; do stop_one "$w"; done
  release_stores
}

cmd_status() {
  local any=1 w
  for w in $ALL; do
    if [ "$w" = proxy ] && ! with_proxy; then continue; fi
    if pid_alive "$STATE/$w.pid"; then echo "$w running (pid $(cat "$STATE/$w.pid"))"; any=0; else echo "$w stopped"; fi
  done
  return $any
}

case "${1:-}" in
  install) cmd_install ;;
  start-proxy) with_proxy || die "RMQ_DEV_NO_PROXY=1 is set"; cmd_install_proxy; start_proxy; print_env ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status || exit 1 ;;  # not running is an answer, not an error
  env) print_env ;;
  stop-broker) [ -n "${2:-}" ] || die "usage: $0 stop-broker NAME"; broker_port "$2" >/dev/null; stop_one "$2" ;;
  start-broker)
    [ -n "${2:-}" ] || die "usage: $0 start-broker NAME"
    start_broker "$2"
    wait_routable "$(broker_namesrv_port "$2")" "$2"
    ;;
  *) echo "usage: $0 install|start|stop|status|env|start-proxy|stop-broker NAME|start-broker NAME" >&2; exit 2 ;;
esac
