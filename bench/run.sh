#!/usr/bin/env bash
# GammaInfra gateway vs. the shared harness's nginx mock upstream (and the peers), measured
# against the product's performance targets in one run.
#
# Same mock, load generator and pinning as ../shared/bench/run_peers.sh, so the figures sit
# next to the peers': the target under test on core 0 (taskset), wrk -t1 on core 1, nginx
# unpinned, loopback only. Every gateway row has authentication and billing on (a real
# account, topped up; the ledger on SQLite unless said otherwise). In one run:
#
#   1. throughput and latency at each c of CONCURRENCY (default 1 16 64 256), non-streamed
#      (mock :18080) and streamed (mock :18081, SSE), direct to the mock and through the
#      gateway; at each c the direct row and the gateway row run back to back;
#   2. added latency at c=1: REPEAT alternating direct/gateway pairs (non-streamed, then
#      streamed), with the min/median/max of the p50 and p99 differences (p99 at c=1 is
#      mostly machine jitter, so one pair says little);
#   3. time to first token, direct vs gateway (bench/ttft.py: TTFT_ROUNDS alternating rounds
#      of TTFT_N streamed requests over one keep-alive connection each);
#   4. gateway RSS: idle (after start and the account setup, before any request), after
#      RSS_MINUTE seconds at c=64 non-streamed (a fresh gateway), and the peak with STREAMS
#      concurrent streams (wrk -c$STREAMS on the streaming route, /proc/PID/status sampled
#      every 0.2 s, VmHWM as a cross-check);
#   5. the peers (PEERS=1): LiteLLM proxy and the Portkey gateway, non-streamed at each c,
#      started as run_peers.sh starts them, installed once into BENCH_CACHE; a peer that does
#      not install or start gets a row saying why and the run goes on;
#   6. with BENCH_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test): the gateway
#      rows at each c once more with the ledger on PostgreSQL (a fresh schema, created and
#      dropped with psql), one replica, credit leases on; with BENCH_COMMIT_BEFORE_ANSWER=1
#      as well, the non-streamed rows once more with billing.commit_before_answer = true.
#
# The report ($OUT) has: the Targets table (each target, the figure, met or missed and by
# how much), one table with every row (req/s, ratio to direct at that c, p50, p99, RSS, CPU,
# errors, billing exactness), the c=1 pairs, the time to first token and the RSS figures.
#
#   bench/run.sh                                  # 15 s per row, about 12 min with the peers
#   DURATION=10 OUT=/tmp/r.md bench/run.sh        # about 9 min with the peers
#   (plus the peers' installs on a first run, a minute or two)
#   DURATION=2 RSS_MINUTE=5 PEERS=0 bench/run.sh  # a quick check of the script, ~2 min
#
# Environment:
#   GAMMAINFRA_BIN  a prebuilt gateway binary (default: cargo build --release)
#   DURATION        seconds per wrk row (default 15)
#   CONCURRENCY     connections per row, space separated (default "1 16 64 256"; the targets
#                   read c=64)
#   REPEAT          direct/gateway pairs at c=1, each kind (default 3; 0 skips)
#   TTFT_N, TTFT_ROUNDS   requests per round and rounds for ttft.py (default 2000 and 4;
#                   TTFT_ROUNDS=0 skips)
#   RSS_MINUTE      seconds of the c=64 run before reading RSS (default 60; 0 skips)
#   STREAMS         concurrent streams for the RSS peak (default 1000; 0 skips), for DURATION s
#   PEERS           1 (default) measures LiteLLM and Portkey, 0 skips them
#   BENCH_CACHE     where the peers are installed (default ~/.cache/gammainfra-bench)
#   BENCH_POSTGRES_URL, BENCH_COMMIT_BEFORE_ANSWER   see 6. above
#   OUT             markdown results (default bench/last-run.md)
#   GW_PORT         gateway port (default 18090); MOCK_PORT, MOCK_STREAM_PORT: the mock's
#                   ports (default 18080, 18081; the peers keep 14000 and 8787)
#   BENCH_DIR       work directory (default a fresh mktemp directory; kept at the end for
#                   the logs and raw wrk output)
# Exit status: 0 when every gateway row is clean, 1 when a gateway row (or the time to first
# token through the gateway) saw non-2xx answers, socket errors or failed requests (the
# results are still printed and written); other failures exit early. A missed target or a
# peer that did not install is reported, not an error.
set -euo pipefail

DURATION=${DURATION:-15}
CONCURRENCY=${CONCURRENCY:-1 16 64 256}
REPEAT=${REPEAT:-3}
TTFT_N=${TTFT_N:-2000}
TTFT_ROUNDS=${TTFT_ROUNDS:-4}
RSS_MINUTE=${RSS_MINUTE:-60}
STREAMS=${STREAMS:-1000}
PEERS=${PEERS:-1}
BENCH_CACHE=${BENCH_CACHE:-$HOME/.cache/gammainfra-bench}
GW_PORT=${GW_PORT:-18090}
MOCK_PORT=${MOCK_PORT:-18080}
MOCK_STREAM_PORT=${MOCK_STREAM_PORT:-18081}
here=$(cd "$(dirname "$0")" && pwd)      # bench/
repo=$(cd "$here/.." && pwd)             # the repository root
OUT=${OUT:-$here/last-run.md}
W=${BENCH_DIR:-$(mktemp -d -t gi-bench.XXXXXX)}
mkdir -p "$W"
GW=http://127.0.0.1:$GW_PORT
ADMIN=bench-admin-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')

# The targets (docs: performance targets), each a ratio to the mock called directly.
T_RATIO=0.25        # c=64 req/s, gateway / direct, at least
T_ADD_P50=100       # added latency at c=1, p50, microseconds, at most
T_ADD_P99=150       # added latency at c=1, p99, microseconds, at most
T_TTFT=300          # added time to first token, p50, microseconds, at most
T_RSS_IDLE=20       # MB, at most
T_RSS_MINUTE=60     # MB after a minute at c=64, at most
T_RSS_STREAMS=150   # MB with 1,000 concurrent streams, at most

die() { echo "run.sh: $*" >&2; exit 1; }
for v in DURATION REPEAT TTFT_N TTFT_ROUNDS RSS_MINUTE STREAMS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
for c in $CONCURRENCY; do [[ $c =~ ^[1-9][0-9]*$ ]] || die "CONCURRENCY: '$c' is not a positive number"; done
[ "$DURATION" -ge 1 ] || die "DURATION must be at least 1"

# --- Every process we start is recorded here and stopped by its PID on exit (with the ----
# children it started, found by parent PID: LiteLLM may run workers).
pids=()
pg_schemas=()
tree_pids() { local p; echo "$1"; for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree_pids "$p"; done; }
kill_tree() { local p; for p in $(tree_pids "$1"); do kill "$p" 2>/dev/null || true; done; }
# stop PID: stop a process we started (and its children), reap it, and forget its PID so the
# exit trap cannot hit a later process that reuses the number.
stop() {
  local p keep=()
  kill_tree "$1"; wait "$1" 2>/dev/null || true
  for p in "${pids[@]:-}"; do if [ "$p" != "$1" ]; then keep+=("$p"); fi; done
  pids=("${keep[@]:-}")
}
cleanup() {
  local p s
  for p in "${pids[@]:-}"; do if [ -n "$p" ]; then kill_tree "$p"; fi; done
  for s in "${pg_schemas[@]:-}"; do
    if [ -n "$s" ]; then psql -q "$BENCH_POSTGRES_URL" -c "DROP SCHEMA $s CASCADE" >/dev/null 2>&1 || true; fi
  done
  if [ -f "$W/nginx.pid" ]; then kill "$(cat "$W/nginx.pid")" 2>/dev/null || true; fi
}
trap cleanup EXIT

# --- Tools: wrk and nginx from apt if missing (as run_peers.sh), plus curl, ps, python3. ---
need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx || ! need curl || ! need ps || ! need python3; then
  sudo=; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  # nginx-light is gone from newer Debian releases; plain nginx serves the mock as well.
  $sudo apt-get install -y -qq wrk nginx-light curl procps python3 >/dev/null \
    || $sudo apt-get install -y -qq wrk nginx curl procps python3 >/dev/null
fi

# --- File descriptors: STREAMS client connections (wrk), as many accepted plus as many to
# the mock (gateway), and the mock's side of those; every process below inherits this. ----
want_fds=$(( 2 * STREAMS + 1024 ))
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$want_fds" ]; then
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ "$hard" -lt "$want_fds" ]; then want_fds=$hard; fi
  ulimit -Sn "$want_fds"
fi
[ "$STREAMS" -eq 0 ] || [ "$(ulimit -Sn)" = unlimited ] || [ "$(ulimit -Sn)" -ge $(( STREAMS + 256 )) ] \
  || echo "warning: ulimit -n is $(ulimit -Sn) (hard limit); STREAMS=$STREAMS may fail for lack of descriptors" >&2

# --- Harness files: the in-repo copies (bench/), else ../shared/bench. -------------------
harness() {
  local f
  for f in "$here/$1" "$repo/../shared/bench/$1"; do
    [ -f "$f" ] && { echo "$f"; return; }
  done
  die "$1 not found in $here or $repo/../shared/bench"
}
NGINX_CONF=$(harness mock-nginx.conf); CHAT_LUA=$(harness chat.lua); STREAM_LUA=$(harness chat-stream.lua)
for f in mock-nginx.conf chat.lua chat-stream.lua; do   # say so when the copies drifted
  if [ -f "$repo/../shared/bench/$f" ] && [ -f "$here/$f" ] && ! cmp -s "$here/$f" "$repo/../shared/bench/$f"; then
    echo "note: bench/$f differs from ../shared/bench/$f; using bench/$f" >&2
  fi
done

# --- Build the gateway (release) from the repository root, unless GAMMAINFRA_BIN names a
# prebuilt binary (to compare two builds with the same script). -------------------------
if [ -n "${GAMMAINFRA_BIN:-}" ]; then
  BIN=$GAMMAINFRA_BIN
else
  echo "building the gateway (cargo build --release) ..."
  (cd "$repo" && cargo build --release)
  target_dir=$(cd "$repo" && cargo metadata --format-version 1 --no-deps \
    | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
  BIN=$target_dir/release/gammainfra
fi
[ -x "$BIN" ] || die "no binary at $BIN"

# --- Catalog: the built-in one plus the mock model (bench/catalog-extra.toml). -----------
{ cat "$repo/catalog/catalog.toml"; echo; cat "$here/catalog-extra.toml"; } > "$W/catalog.toml"
"$BIN" catalog check "$W/catalog.toml" || die "the benchmark catalog does not pass the check"

# --- Nginx mock, as run_peers.sh starts it (on MOCK_PORT / MOCK_STREAM_PORT). -------------
# port_busy PORT: something accepts connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$MOCK_PORT" "$MOCK_STREAM_PORT"; do
  port_busy "$p" && die "something already listens on 127.0.0.1:$p (another mock? set MOCK_PORT and MOCK_STREAM_PORT)"
done
sed -e "s#@W@#$W#g" -e "s#127\.0\.0\.1:18080;#127.0.0.1:$MOCK_PORT;#" -e "s#127\.0\.0\.1:18081;#127.0.0.1:$MOCK_STREAM_PORT;#" \
  "$NGINX_CONF" > "$W/nginx.conf"
mkdir -p "$W/body"
nginx -c "$W/nginx.conf"
MOCK=http://127.0.0.1:$MOCK_PORT
MOCK_STREAM=http://127.0.0.1:$MOCK_STREAM_PORT

wait_http() { for _ in $(seq 1 120); do curl -s -o /dev/null "$1" && return 0; sleep 1; done; echo "no answer from $1" >&2; return 1; }
wait_http "$MOCK/"

# --- Small helpers. ---------------------------------------------------------------------
T0=$SECONDS
say() { printf '\n[%02d:%02d] == %s ==\n' $(( (SECONDS - T0) / 60 )) $(( (SECONDS - T0) % 60 )) "$*"; }
# json_get KEY: the first "KEY":"value" (or "KEY":number) of the compact JSON on stdin.
json_get() { grep -o "\"$1\":\"\{0,1\}[^\",}]*" | head -n1 | sed 's/^[^:]*:"\{0,1\}//'; }
# The request body the wrk scripts send, so the checks below send the very same one.
lua_body() { sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$1"; }
# Latency as wrk prints it (61.00us, 1.23ms, 2.00s, 1.00m) in microseconds.
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; m = 1
  if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1e3; else if (v ~ /m$/) m = 6e7; else if (v ~ /s$/) m = 1e6
  printf "%.0f", n * m }'; }
HZ=$(getconf CLK_TCK)
# CPU time (user + system ticks, all threads) of a process and its children so far; the
# fields after the parenthesised command name, which may hold spaces.
cpu_ticks() {
  local t=0 p v
  for p in $(tree_pids "$1"); do
    v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || true
    t=$(( t + ${v:-0} ))
  done
  echo "$t"
}
nginx_ticks() { cpu_ticks "$(cat "$W/nginx.pid")"; }
pct() { awk -v t="$1" -v hz="$HZ" -v s="$2" 'BEGIN { printf "%.0f%%", t / hz / s * 100 }'; }
# Resident memory (VmRSS, kB) of a process and its children.
rss_kb() {
  local t=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null) || true
    t=$(( t + ${v:-0} ))
  done
  echo "$t"
}
# when TEST... TEXT: TEXT if the test holds; always succeeds (safe in an assignment under set -e).
when() { if "${@:1:$#-1}"; then echo "${!#}"; fi; }
# signed N: +N / -N.
signed() { awk -v v="$1" 'BEGIN { if (v == int(v)) printf "%+d", v; else printf "%+.1f", v }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
# median of the numbers on stdin; stats: "min / median / max".
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
stats() { local v; v=$(cat); printf '%s / %s / %s' "$(sort -g <<<"$v" | head -n1)" "$(median <<<"$v")" "$(sort -g <<<"$v" | tail -n1)"; }

# api METHOD PATH [BODY]: an admin call; prints the answer, fails loudly on non-2xx.
api() {
  local resp code
  resp=$(curl -s -w '\n%{http_code}' -X "$1" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' ${3:+-d "$3"} "$GW$2") || die "$1 $2: no answer"
  code=${resp##*$'\n'}; resp=${resp%$'\n'*}
  [[ $code == 2* ]] || die "$1 $2 -> $code: $resp"
  echo "$resp"
}

# --- The gateway: one process per configuration (upstream, ledger), started fresh. ---------
# start_gateway TAG UPSTREAM [postgres [EXTRA_BILLING_TOML]]: config + fresh database in $W,
# pinned to core 0; the ledger on SQLite, or on a fresh PostgreSQL schema of
# BENCH_POSTGRES_URL, with extra [billing] settings. Sets GW_PID.
start_gateway() {
  local tag=$1 upstream=$2 db schema sep
  db="sqlite://$W/gateway-$tag.db"
  port_busy "$GW_PORT" && die "something already listens on $GW (set GW_PORT)"
  if [ "${3:-}" = postgres ]; then
    schema="gi_bench_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    psql -q "$BENCH_POSTGRES_URL" -c "CREATE SCHEMA $schema" || die "cannot create a schema on BENCH_POSTGRES_URL"
    pg_schemas+=("$schema")
    sep='?'; case $BENCH_POSTGRES_URL in *\?*) sep='&';; esac
    db="$BENCH_POSTGRES_URL${sep}options[search_path]=$schema"
  fi
  cat > "$W/gateway-$tag.toml" <<TOML
listen = "127.0.0.1:$GW_PORT"
database_url = "$db"
catalog = "$W/catalog.toml"

[[providers.openai_compatible]]
name = "mock"
base_url = "$upstream/v1"
api_key = "sk-mock"

[billing]
${4:-}
TOML
  # Unset the variables that would override the file or add real providers.
  env -u GAMMAINFRA_LISTEN -u GAMMAINFRA_DATABASE_URL -u GAMMAINFRA_DATA_DIR -u GAMMAINFRA_CATALOG \
      -u GAMMAINFRA_CONFIG -u OPENAI_API_KEY -u OPENAI_BASE_URL -u ANTHROPIC_API_KEY -u ANTHROPIC_BASE_URL \
      GAMMAINFRA_ADMIN_TOKEN="$ADMIN" GAMMAINFRA_LOG=warn \
      taskset -c 0 "$BIN" serve --config "$W/gateway-$tag.toml" >"$W/gateway-$tag.log" 2>&1 &
  GW_PID=$!; pids+=("$GW_PID")
  for _ in $(seq 1 120); do
    curl -s -o /dev/null "$GW/healthz" && return 0
    kill -0 "$GW_PID" 2>/dev/null || { cat "$W/gateway-$tag.log" >&2; die "the gateway exited at start"; }
    sleep 0.5
  done
  die "the gateway does not answer on $GW/healthz"
}
stop_gateway() { stop "$GW_PID"; }

# setup_account: an account with its first key, topped up so billing never runs dry;
# sets ACCOUNT and KEY.
setup_account() {
  local resp
  resp=$(api POST /admin/v1/accounts '{"email":"bench@example.com"}')
  ACCOUNT=$(json_get id <<<"$resp"); KEY=$(json_get api_key <<<"$resp")
  if [ -z "$ACCOUNT" ] || [ -z "$KEY" ]; then die "unexpected account answer: $resp"; fi
  api POST "/admin/v1/accounts/$ACCOUNT/topups" '{"amount_usd":"100000.00"}' >/dev/null
}

# check URL LUA AUTH STREAM WANT_COST: one request with the wrk body; 200 (and, through the
# gateway, usage.cost_usd) or fail loudly. Sets COST to the billed cost of that request.
check() {
  local url=$1 lua=$2 auth=$3 stream=$4 want_cost=$5 resp code
  resp=$(curl -sN -w '\n%{http_code}' -H "Authorization: Bearer $auth" -H 'Content-Type: application/json' \
    -d "$(lua_body "$lua")" "$url") || die "no answer from $url"
  code=${resp##*$'\n'}; resp=${resp%$'\n'*}
  [ "$code" = 200 ] || die "$url -> $code: $resp"
  if [ "$stream" = yes ]; then
    grep -q '^data: \[DONE\]' <<<"$resp" || die "$url: the stream does not end with data: [DONE]: $resp"
  fi
  COST=
  if [ "$want_cost" = yes ]; then
    COST=$(json_get cost_usd <<<"$resp")   # only the usage object carries cost_usd
    [ -n "$COST" ] || die "$url: 200 but no usage.cost_usd in the answer: $resp"
  fi
  echo "ok: $url -> 200${COST:+, usage.cost_usd=$COST}"
}

# gateway_up TAG UPSTREAM LUA_TEMPLATE STREAM [postgres [EXTRA_BILLING_TOML]]: a gateway, its
# account, the idle RSS (before any request), and one checked request. Sets GW_PID,
# ACCOUNT, KEY, GW_LUA (the wrk script with this key) and GW_COST (the cost of a request).
declare -A IDLE_RSS   # tag -> kB
idle_tags=()
gateway_up() {
  local tag=$1 upstream=$2 template=$3 stream=$4; shift 4
  start_gateway "$tag" "$upstream" "$@"
  setup_account
  IDLE_RSS[$tag]=$(rss_kb "$GW_PID"); idle_tags+=("$tag")
  GW_LUA=$W/gateway-$tag.lua
  sed "s#@AUTH@#$KEY#" "$template" > "$GW_LUA"
  check "$GW/v1/chat/completions" "$GW_LUA" "$KEY" "$stream" yes
  GW_COST=$COST
  echo "gateway $tag: pid $GW_PID, idle RSS $(mb "${IDLE_RSS[$tag]}") (after start and account setup)"
}

# spent: what the current account has been charged so far (USD). settled_spent: the same
# once the ledger has caught up (the charges are committed in groups, after the answers):
# two reads 0.3 s apart that agree.
spent() { api GET "/admin/v1/accounts/$ACCOUNT" | json_get spent_usd; }
settled_spent() {
  local a b
  a=$(spent)
  for _ in $(seq 1 30); do sleep 0.3; b=$(spent); [ "$a" = "$b" ] && break; a=$b; done
  echo "$a"
}
# billing_line S0 S1 COMPLETED C: requests billed between two spent readings vs. requests
# the client completed. Up to C more billed is exact: requests in flight when wrk stopped
# were answered (and charged) after wrk stopped counting.
billing_line() {
  awk -v s0="$1" -v s1="$2" -v cost="$GW_COST" -v n="$3" -v c="$4" 'BEGIN {
    b = (s1 - s0) / cost; d = b - n
    printf "%.0f billed / %d completed", b, n
    if (d > -0.5 && d < c + 0.5) printf (d >= 0.5 ? " (exact; %.0f in flight at the end)" : " (exact)"), d
    else printf " (MISMATCH: %+.1f)", d }'
}

# --- Measurement. ------------------------------------------------------------------------
# Every wrk run is a row: R[id,field]. TABLE says where it is reported: main (the table of
# every row) or pairs (the c=1 pairs table).
declare -A R
declare -A DIRECT_RPS   # "stream c" -> req/s of the direct row, for the ratios
main_rows=()
problems=()             # gateway rows with non-2xx, socket errors or failed requests
billing_issues=()
nrows=0
TABLE=main

# row KIND NAME STREAM C URL LUA [PID [SECONDS [WRK_ARGS]]]: wrk -c C for SECONDS (default
# DURATION). KIND: direct, gateway (billing and error checks) or peer. PID (gateway or peer)
# gives the RSS and CPU columns; nginx and wrk CPU are measured for every row. Sets ROW.
row() {
  local kind=$1 name=$2 stream=$3 c=$4 url=$5 lua=$6 pid=${7:-} secs=${8:-$DURATION} extra=${9:-}
  local id out t0 n0 s0='' real user sys rps p50 p99 rss non2xx sock reqs gcpu ncpu wcpu bill=-
  nrows=$((nrows + 1)); id=$nrows; ROW=$id
  out="$W/wrk-$id-${name// /_}-c$c.txt"
  if [ "$kind" = gateway ]; then s0=$(spent); fi
  t0=0; [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
  n0=$(nginx_ticks)
  local TIMEFORMAT='%R %U %S'   # bash `time`: wall, user and system seconds of wrk
  # shellcheck disable=SC2086  # WRK_ARGS are words
  if ! { time taskset -c 1 wrk -t1 -c"$c" -d"${secs}s" $extra -s "$lua" --latency "$url" >"$out" 2>&1; } 2>"$out.time"; then
    cat "$out" >&2; die "wrk failed for $name c=$c"
  fi
  read -r real user sys < "$out.time"
  rps=$(awk '/^Requests\/sec/ { print $2 }' "$out")
  p50=$(awk '$1 == "50%" { print $2 }' "$out"); p99=$(awk '$1 == "99%" { print $2 }' "$out")
  reqs=$(awk '/ requests in / { print $1 }' "$out")
  non2xx=$(awk '/Non-2xx/ { print $NF }' "$out"); non2xx=${non2xx:-0}
  sock=$(awk '/Socket errors/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$out"); sock=${sock:-0}
  ncpu=$(pct $(( $(nginx_ticks) - n0 )) "$real")
  wcpu=$(awk -v u="$user" -v s="$sys" -v r="$real" 'BEGIN { printf "%.0f%%", (u + s) / r * 100 }')
  rss=-; gcpu=-; R[$id,rss_kb]=
  if [ -n "$pid" ]; then
    R[$id,rss_kb]=$(rss_kb "$pid"); rss=$(mb "${R[$id,rss_kb]}")
    gcpu=$(pct $(( $(cpu_ticks "$pid") - t0 )) "$real")
  fi
  if [ "$kind" = gateway ]; then
    bill=$(billing_line "$s0" "$(settled_spent)" "$reqs" "$c")
    if [[ $bill == *MISMATCH* ]]; then billing_issues+=("$name$(when [ "$stream" = yes ] ", streamed") c=$c: $bill"); fi
  fi
  R[$id,kind]=$kind; R[$id,name]=$name; R[$id,stream]=$stream; R[$id,c]=$c; R[$id,secs]=$secs
  R[$id,rps]=$rps; R[$id,p50]=$p50; R[$id,p99]=$p99; R[$id,rss]=$rss; R[$id,reqs]=$reqs
  R[$id,non2xx]=$non2xx; R[$id,sock]=$sock; R[$id,gcpu]=$gcpu; R[$id,ncpu]=$ncpu; R[$id,wcpu]=$wcpu
  R[$id,bill]=$bill; R[$id,note]=
  if [ "$TABLE" = main ]; then
    main_rows+=("$id")
    if [ "$kind" = direct ]; then DIRECT_RPS["$stream $c"]=$rps; fi
  fi
  printf '%-22s %-3s c=%-4s %10s req/s  p50 %-9s p99 %-9s rss %-9s cpu: %-4s nginx %-4s wrk %-4s %s\n' \
    "$name" "$([ "$stream" = yes ] && echo sse || echo '')" "$c" "$rps" "$p50" "$p99" "$rss" "$gcpu" "$ncpu" "$wcpu" \
    "$(when [ "$bill" != - ] "billing: $bill")"
  if [ "$non2xx" != 0 ] || [ "$sock" != 0 ]; then
    echo "  !! $name c=$c: non-2xx=$non2xx socket errors: $(grep 'Socket errors' "$out" | sed 's/^ *Socket errors: //')"
    if [ "$kind" = gateway ]; then problems+=("$name c=$c: $non2xx non-2xx, $sock socket errors (see $out)"); fi
  fi
}

# note_row KIND NAME STREAM C NOTE: a row that could not be measured (a peer that did not
# install or start), with the reason.
note_row() {
  nrows=$((nrows + 1))
  R[$nrows,kind]=$1; R[$nrows,name]=$2; R[$nrows,stream]=$3; R[$nrows,c]=$4; R[$nrows,note]=$5
  main_rows+=("$nrows")
  echo "$2: $5"
}

# pairs STREAM DIRECT_URL DIRECT_LUA: REPEAT alternating direct/gateway rows at c=1 on the
# running gateway; the differences go to PAIR_P50 / PAIR_P99 (one line per pair, us).
declare -A PAIR_P50 PAIR_P99
pair_rows=()
pairs() {
  local stream=$1 url=$2 lua=$3 i d g
  TABLE=pairs
  for i in $(seq 1 "$REPEAT"); do
    row direct direct "$stream" 1 "$url" "$lua"; d=$ROW
    row gateway gateway "$stream" 1 "$GW/v1/chat/completions" "$GW_LUA" "$GW_PID"; g=$ROW
    pair_rows+=("$stream $i $d $g")
    PAIR_P50[$stream]+="$(( $(to_us "${R[$g,p50]}") - $(to_us "${R[$d,p50]}") ))"$'\n'
    PAIR_P99[$stream]+="$(( $(to_us "${R[$g,p99]}") - $(to_us "${R[$d,p99]}") ))"$'\n'
  done
  TABLE=main
}

# A rough forecast, so a long run says so up front.
nc=$(wc -w <<<"$CONCURRENCY")
est=$(( (4 * nc + 4 * REPEAT + (STREAMS > 0 ? 1 : 0)) * (DURATION + 1) + RSS_MINUTE + TTFT_ROUNDS * TTFT_N * 2 / 1000 + 15 ))
if [ "$PEERS" = 1 ]; then est=$(( est + 2 * nc * (DURATION + 1) + 60 )); fi
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then est=$(( est + (${BENCH_COMMIT_BEFORE_ANSWER:+1} + 2) * nc * (DURATION + 1) )); fi
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "work dir: $W; expect about $(( (est + 59) / 60 )) min$(when [ "$PEERS" = 1 ] ", plus the peers' installs on a first run") (load average now $load_start)"

sed "s#@AUTH@#sk-mock#" "$CHAT_LUA" > "$W/direct.lua"
sed "s#@AUTH@#sk-mock#" "$STREAM_LUA" > "$W/direct-stream.lua"
check "$MOCK/v1/chat/completions" "$W/direct.lua" sk-mock no no
check "$MOCK_STREAM/v1/chat/completions" "$W/direct-stream.lua" sk-mock yes no

# 1. and 2., non-streamed ---------------------------------------------------------------
say "non-streamed (mock on :$MOCK_PORT): direct and gateway at c = $CONCURRENCY, ${DURATION}s per row"
gateway_up chat "$MOCK" "$CHAT_LUA" no
for c in $CONCURRENCY; do
  row direct direct no "$c" "$MOCK/v1/chat/completions" "$W/direct.lua"
  row gateway gateway no "$c" "$GW/v1/chat/completions" "$GW_LUA" "$GW_PID"
done
if [ "$REPEAT" -gt 0 ]; then
  say "non-streamed, c=1: $REPEAT direct/gateway pairs"
  pairs no "$MOCK/v1/chat/completions" "$W/direct.lua"
fi
stop_gateway

# 1., 2. and 3., streamed ---------------------------------------------------------------
say "streamed (mock on :$MOCK_STREAM_PORT, SSE, include_usage): direct and gateway at c = $CONCURRENCY"
gateway_up stream "$MOCK_STREAM" "$STREAM_LUA" yes
for c in $CONCURRENCY; do
  row direct direct yes "$c" "$MOCK_STREAM/v1/chat/completions" "$W/direct-stream.lua"
  row gateway gateway yes "$c" "$GW/v1/chat/completions" "$GW_LUA" "$GW_PID"
done
if [ "$REPEAT" -gt 0 ]; then
  say "streamed, c=1: $REPEAT direct/gateway pairs (whole responses)"
  pairs yes "$MOCK_STREAM/v1/chat/completions" "$W/direct-stream.lua"
fi
if [ "$TTFT_ROUNDS" -gt 0 ]; then
  say "time to first token: $TTFT_ROUNDS rounds of $TTFT_N requests, direct and gateway alternating (ttft.py on core 1)"
  lua_body "$STREAM_LUA" > "$W/stream-body.json"
  s0=$(spent)
  taskset -c 1 python3 "$here/ttft.py" --body-file "$W/stream-body.json" --n "$TTFT_N" --rounds "$TTFT_ROUNDS" \
    --summary "$W/ttft.txt" --markdown "$W/ttft.md" \
    --target direct "$MOCK_STREAM/v1/chat/completions" sk-mock \
    --target gateway "$GW/v1/chat/completions" "$KEY" || die "ttft.py failed"
  ttft() { sed -n "s/^$1=//p" "$W/ttft.txt"; }
  TTFT_BILL=$(billing_line "$s0" "$(settled_spent)" "$(ttft gateway.completed)" 1)
  echo "billing (time to first token): $TTFT_BILL"
  if [[ $TTFT_BILL == *MISMATCH* ]]; then billing_issues+=("time to first token: $TTFT_BILL"); fi
  if [ "$(ttft gateway.errors)" != 0 ]; then
    problems+=("time to first token: $(ttft gateway.errors) failed requests through the gateway, last: $(ttft gateway.last_error)")
  fi
fi
stop_gateway

# 4. RSS ------------------------------------------------------------------------------------
if [ "$RSS_MINUTE" -gt 0 ]; then
  say "RSS after ${RSS_MINUTE}s at c=64, non-streamed (a fresh gateway)"
  gateway_up minute "$MOCK" "$CHAT_LUA" no
  row gateway "gateway, RSS run" no 64 "$GW/v1/chat/completions" "$GW_LUA" "$GW_PID" "$RSS_MINUTE"
  RSS_MINUTE_KB=${R[$ROW,rss_kb]}; RSS_MINUTE_ROW=$ROW   # read as wrk ended
  echo "RSS after ${RSS_MINUTE}s at c=64: $(mb "$RSS_MINUTE_KB")"
  stop_gateway
fi
if [ "$STREAMS" -gt 0 ]; then
  say "RSS with $STREAMS concurrent streams for ${DURATION}s (a fresh gateway, sampled every 0.2 s)"
  gateway_up streams "$MOCK_STREAM" "$STREAM_LUA" yes
  # The sampler: VmRSS (kB) of the gateway every 0.2 s until it is stopped.
  ( while v=$(awk '/^VmRSS/ { print $2 }' "/proc/$GW_PID/status" 2>/dev/null) && [ -n "$v" ]; do
      echo "$v"; sleep 0.2
    done ) > "$W/rss-streams.txt" &
  sampler=$!; pids+=("$sampler")
  row gateway "gateway, $STREAMS streams" yes "$STREAMS" "$GW/v1/chat/completions" "$GW_LUA" "$GW_PID"
  stop "$sampler"
  STREAMS_ROW=$ROW
  STREAMS_PEAK_KB=$(sort -n "$W/rss-streams.txt" | tail -n1)
  STREAMS_SAMPLES=$(wc -l < "$W/rss-streams.txt")
  STREAMS_HWM_KB=$(awk '/^VmHWM/ { print $2 }' "/proc/$GW_PID/status")
  echo "RSS with $STREAMS streams: peak $(mb "$STREAMS_PEAK_KB") over $STREAMS_SAMPLES samples, VmHWM $(mb "$STREAMS_HWM_KB")"
  stop_gateway
fi

# 6. PostgreSQL --------------------------------------------------------------------------
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  say "ledger on PostgreSQL: gateway rows at c = $CONCURRENCY"
  pg_sweep() {  # TAG NAME UPSTREAM TEMPLATE STREAM [EXTRA_BILLING_TOML]
    local c
    gateway_up "$1" "$3" "$4" "$5" postgres "${6:-}"
    for c in $CONCURRENCY; do row gateway "$2" "$5" "$c" "$GW/v1/chat/completions" "$GW_LUA" "$GW_PID"; done
    stop_gateway
  }
  pg_sweep chat-pg "gateway, PostgreSQL" "$MOCK" "$CHAT_LUA" no
  if [ -n "${BENCH_COMMIT_BEFORE_ANSWER:-}" ]; then
    # billing.commit_before_answer: every answer waits for its charge's commit.
    pg_sweep chat-pg-commit "gateway, PostgreSQL, commit_before_answer" "$MOCK" "$CHAT_LUA" no "commit_before_answer = true"
  fi
  pg_sweep stream-pg "gateway, PostgreSQL" "$MOCK_STREAM" "$STREAM_LUA" yes
fi

# 5. Peers --------------------------------------------------------------------------------
declare -A PEER_IDLE PEER_MAX   # name -> kB
peer_names=()
# oneline FILE: the first error line of an install log (pip's ERROR:, npm's "npm error"),
# else its last non-empty line, fit for a table cell.
oneline() {
  { grep -E -m1 '^(ERROR:|npm error|npm ERR!)' "$1" || grep -v '^[[:space:]]*$' "$1" | tail -n1; } 2>/dev/null \
    | tr '|' '/' | cut -c1-160
}
# probe URL AUTH [CURL_ARGS...]: one request with the wrk body; 0 on a 200 chat completion.
probe() {
  local url=$1 auth=$2 resp code; shift 2
  resp=$(curl -s --max-time 60 -w '\n%{http_code}' -H "Authorization: Bearer $auth" -H 'Content-Type: application/json' \
    "$@" -d "$(lua_body "$CHAT_LUA")" "$url") || { PROBE_ERR="no answer from $url"; return 1; }
  code=${resp##*$'\n'}; resp=${resp%$'\n'*}
  [ "$code" = 200 ] && grep -q '"choices"' <<<"$resp" && return 0
  PROBE_ERR="answered $code: $(tr '|\n' '/ ' <<<"$resp" | cut -c1-120)"; return 1
}
# wait_up URL PID SECONDS: the URL answers while PID lives; 1 when PID died or time ran out.
wait_up() {
  local i
  for i in $(seq 1 "$3"); do
    curl -s -o /dev/null --max-time 2 "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    [ "$i" -lt "$3" ] && sleep 1
  done
  return 1
}
# peer_sweep NAME URL LUA PID: the peer non-streamed at each c, its RSS tracked. wrk waits
# up to 30 s per request for the peers (default 2 s), so a slow peer's latency is measured
# rather than counted as timeouts.
peer_sweep() {
  local name=$1 url=$2 lua=$3 pid=$4 c k
  PEER_IDLE[$name]=$(rss_kb "$pid"); PEER_MAX[$name]=${PEER_IDLE[$name]}; peer_names+=("$name")
  echo "$name: pid $pid, RSS after start $(mb "${PEER_IDLE[$name]}")"
  for c in $CONCURRENCY; do
    row peer "$name" no "$c" "$url" "$lua" "$pid" "$DURATION" "--timeout 30s"
    k=$(rss_kb "$pid"); if [ "$k" -gt "${PEER_MAX[$name]}" ]; then PEER_MAX[$name]=$k; fi
  done
}
peer_failed() { local c; for c in $CONCURRENCY; do note_row peer "$1" no "$c" "$2"; done; }

if [ "$PEERS" = 1 ]; then
  mkdir -p "$BENCH_CACHE"

  # LiteLLM proxy (pip, in a venv of BENCH_CACHE; .installed marks a finished install).
  say "LiteLLM proxy: non-streamed at c = $CONCURRENCY"
  venv=$BENCH_CACHE/litellm-venv
  if [ ! -f "$venv/.installed" ]; then
    echo "installing litellm[proxy] into $venv (pip) ..."
    rm -rf "$venv"
    if python3 -m venv "$venv" >"$W/litellm-install.log" 2>&1 \
       && "$venv/bin/pip" install -q 'litellm[proxy]' >>"$W/litellm-install.log" 2>&1; then
      touch "$venv/.installed"
    fi
  fi
  if [ ! -f "$venv/.installed" ]; then
    peer_failed "LiteLLM proxy" "did not install: $(oneline "$W/litellm-install.log") (log: $W/litellm-install.log)"
  elif port_busy 14000; then
    peer_failed "LiteLLM proxy" "did not start: port 14000 is already in use"
  else
    name="LiteLLM proxy $("$venv/bin/pip" show litellm 2>/dev/null | awk '/^Version:/ { print $2 }')"
    LKEY=sk-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    cat > "$W/litellm.yaml" <<YAML
model_list:
  - model_name: mock-model
    litellm_params: {model: openai/mock-model, api_base: $MOCK/v1, api_key: sk-mock}
general_settings: {master_key: os.environ/LITELLM_MASTER_KEY}
YAML
    LITELLM_MASTER_KEY=$LKEY LITELLM_TELEMETRY=False LITELLM_LOG=ERROR taskset -c 0 "$venv/bin/litellm" \
      --config "$W/litellm.yaml" --host 127.0.0.1 --port 14000 --num_workers 1 >"$W/litellm.log" 2>&1 &
    lpid=$!; pids+=("$lpid")
    if ! wait_up http://127.0.0.1:14000/health/liveliness "$lpid" 180; then
      peer_failed "$name" "did not start: $(oneline "$W/litellm.log") (log: $W/litellm.log)"
    elif ! probe http://127.0.0.1:14000/v1/chat/completions "$LKEY"; then
      peer_failed "$name" "started, but the check request failed: $PROBE_ERR"
    else
      sed "s#@AUTH@#$LKEY#" "$CHAT_LUA" > "$W/litellm.lua"
      peer_sweep "$name" http://127.0.0.1:14000/v1/chat/completions "$W/litellm.lua" "$lpid"
    fi
    stop "$lpid"
  fi

  # Portkey gateway (npm, in BENCH_CACHE; it listens on 8787).
  say "Portkey gateway: non-streamed at c = $CONCURRENCY"
  pk=$BENCH_CACHE/portkey
  pk_js=node_modules/@portkey-ai/gateway/build/start-server.js
  if [ ! -f "$pk/.installed" ]; then
    echo "installing @portkey-ai/gateway into $pk (npm) ..."
    rm -rf "$pk"; mkdir -p "$pk"
    if ! need npm; then
      echo "npm: command not found" > "$W/portkey-install.log"
    elif ! (cd "$pk" && npm install --loglevel=error --no-audit --no-fund @portkey-ai/gateway) >"$W/portkey-install.log" 2>&1; then
      echo "npm install failed" >> "$W/portkey-install.log"   # said last if npm said nothing
    elif [ ! -f "$pk/$pk_js" ]; then
      echo "installed, but $pk_js is missing" >> "$W/portkey-install.log"
    else
      touch "$pk/.installed"
    fi
  fi
  if [ ! -f "$pk/.installed" ]; then
    peer_failed "Portkey gateway" "did not install: $(oneline "$W/portkey-install.log") (log: $W/portkey-install.log)"
  elif port_busy 8787; then
    peer_failed "Portkey gateway" "did not start: port 8787 is already in use"
  else
    name="Portkey gateway $(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pk/node_modules/@portkey-ai/gateway/package.json" | head -n1)"
    (cd "$pk" && exec taskset -c 0 node "$pk_js" >"$W/portkey.log" 2>&1) &
    ppid_=$!; pids+=("$ppid_")
    pk_hdrs=(-H "x-portkey-provider: openai" -H "x-portkey-custom-host: $MOCK/v1")
    if ! wait_up http://127.0.0.1:8787/ "$ppid_" 60; then
      peer_failed "$name" "did not start: $(oneline "$W/portkey.log") (log: $W/portkey.log)"
    elif ! probe http://127.0.0.1:8787/v1/chat/completions sk-mock "${pk_hdrs[@]}"; then
      peer_failed "$name" "started, but the check request failed: $PROBE_ERR"
    else
      sed "s#@AUTH@#sk-mock#" "$CHAT_LUA" > "$W/portkey.lua"
      sed -i 's#^wrk.body#wrk.headers["x-portkey-provider"] = "openai"\nwrk.headers["x-portkey-custom-host"] = "'"$MOCK"'/v1"\nwrk.body#' "$W/portkey.lua"
      peer_sweep "$name" http://127.0.0.1:8787/v1/chat/completions "$W/portkey.lua" "$ppid_"
    fi
    stop "$ppid_"
  fi
fi
say "done; writing $OUT"

# --- Figures for the targets. --------------------------------------------------------------
# gw_row STREAM C: the id of the SQLite gateway row of the sweep at that c (empty if none).
gw_row() { local i; for i in "${main_rows[@]}"; do
  if [ "${R[$i,kind]}" = gateway ] && [ "${R[$i,name]}" = gateway ] && [ "${R[$i,stream]}" = "$1" ] && [ "${R[$i,c]}" = "$2" ]; then echo "$i"; return; fi
done; }
# ratio_of ID: req/s of a row / req/s of the direct row at the same c and kind.
ratio_of() {
  local d=${DIRECT_RPS["${R[$1,stream]} ${R[$1,c]}"]:-}
  if [ -z "$d" ] || [ -z "${R[$1,rps]:-}" ]; then echo -; return; fi
  awk -v g="${R[$1,rps]}" -v d="$d" 'BEGIN { printf "%.3f", g / d }'
}
# judge MEASURED LIMIT UNIT min|max: "met (X to spare)" or "missed by X".
judge() {
  awk -v m="$1" -v l="$2" -v u="$3" -v k="$4" 'BEGIN {
    if (m == "" || m == "-" || m == "nan") { print "not measured"; exit }
    d = (k == "min") ? m - l : l - m
    f = (u == "") ? "%.3f" : (u == " MB") ? "%.1f" : "%.0f"
    if (d >= 0) printf "met (" f "%s to spare)", d, u; else printf "**missed** by " f "%s", -d, u }'
}
targets=()   # "target | limit | measured | result"
for s in no yes; do
  kind=$([ $s = yes ] && echo streamed || echo non-streamed)
  g=$(gw_row $s 64)
  if [ -n "$g" ]; then
    r=$(ratio_of "$g")
    targets+=("throughput at c=64, $kind | ≥ $T_RATIO × direct | $r × (${R[$g,rps]} vs ${DIRECT_RPS["$s 64"]} req/s) | $(judge "$r" $T_RATIO "" min)")
  else
    targets+=("throughput at c=64, $kind | ≥ $T_RATIO × direct | - | not measured (64 is not in CONCURRENCY)")
  fi
done
if [ "$REPEAT" -gt 0 ]; then
  for p in 50 99; do
    if [ $p = 50 ]; then lim=$T_ADD_P50; v=${PAIR_P50[no]}; else lim=$T_ADD_P99; v=${PAIR_P99[no]}; fi
    m=$(median <<<"${v%$'\n'}")
    targets+=("added latency at c=1, p$p, non-streamed | ≤ $lim µs | median $(signed "$m") µs (min / median / max of $REPEAT pairs: $(stats <<<"${v%$'\n'}") µs) | $(judge "$m" "$lim" " µs" max)")
  done
else
  targets+=("added latency at c=1 | ≤ $T_ADD_P50 µs p50, ≤ $T_ADD_P99 µs p99 | - | not measured (REPEAT=0)")
fi
if [ "$TTFT_ROUNDS" -gt 0 ]; then
  m=$(ttft gateway.diff_p50_us)
  targets+=("added time to first token, p50 | ≤ $T_TTFT µs | $(signed "$m") µs ($(ttft gateway.p50_us) vs $(ttft direct.p50_us) µs; min / median / max of the rounds $(ttft gateway.round_diff_p50_us | tr / ' ' | xargs printf '%s / %s / %s') µs; p99 $(signed "$(ttft gateway.diff_p99_us)") µs) | $(judge "$m" $T_TTFT " µs" max)")
else
  targets+=("added time to first token | ≤ $T_TTFT µs | - | not measured (TTFT_ROUNDS=0)")
fi
idle_max=0; idle_list=()
for t in "${idle_tags[@]}"; do
  idle_list+=("$t $(mb "${IDLE_RSS[$t]}")")
  case $t in *-pg*) ;; *) if [ "${IDLE_RSS[$t]}" -gt "$idle_max" ]; then idle_max=${IDLE_RSS[$t]}; fi ;; esac
done
idle_mb=$(awk -v k="$idle_max" 'BEGIN { printf "%.1f", k / 1024 }')
targets+=("RSS idle (after start and account setup) | ≤ $T_RSS_IDLE MB | $idle_mb MB (the largest of the SQLite gateway starts) | $(judge "$idle_mb" $T_RSS_IDLE " MB" max)")
if [ "$RSS_MINUTE" -gt 0 ]; then
  m=$(awk -v k="$RSS_MINUTE_KB" 'BEGIN { printf "%.1f", k / 1024 }')
  targets+=("RSS after ${RSS_MINUTE}s at c=64$(when [ "$RSS_MINUTE" -lt 60 ] " (the target says 60 s)") | ≤ $T_RSS_MINUTE MB | $m MB | $(judge "$m" $T_RSS_MINUTE " MB" max)")
else
  targets+=("RSS after a minute at c=64 | ≤ $T_RSS_MINUTE MB | - | not measured (RSS_MINUTE=0)")
fi
if [ "$STREAMS" -gt 0 ]; then
  m=$(awk -v k="$STREAMS_PEAK_KB" 'BEGIN { printf "%.1f", k / 1024 }')
  res=$(judge "$m" $T_RSS_STREAMS " MB" max)
  errs=$(( ${R[$STREAMS_ROW,non2xx]} + ${R[$STREAMS_ROW,sock]} ))
  if [ "$errs" -gt 0 ]; then res="**missed**: ${R[$STREAMS_ROW,non2xx]} non-2xx, ${R[$STREAMS_ROW,sock]} socket errors; memory $res"; fi
  targets+=("RSS with $STREAMS concurrent streams$(when [ "$STREAMS" != 1000 ] " (the target says 1,000)") | ≤ $T_RSS_STREAMS MB, 0 non-2xx | peak $m MB (VmHWM $(mb "$STREAMS_HWM_KB")); ${R[$STREAMS_ROW,non2xx]} non-2xx, ${R[$STREAMS_ROW,sock]} socket errors | $res")
else
  targets+=("RSS with 1,000 concurrent streams | ≤ $T_RSS_STREAMS MB | - | not measured (STREAMS=0)")
fi

# Saturation notes: which side ran out of CPU (at least 90% of its core) at c ≥ 16.
gw_sat=(); wrk_sat=()
for i in "${main_rows[@]}"; do
  [ -n "${R[$i,note]}" ] && continue
  [ "${R[$i,c]}" -ge 16 ] || continue
  label="${R[$i,name]}$(when [ "${R[$i,stream]}" = yes ] " (streamed)") c=${R[$i,c]}"
  v=${R[$i,gcpu]%\%}; if [ "$v" != - ] && [ "$v" -ge 90 ]; then gw_sat+=("$label ${v}%"); fi
  v=${R[$i,wcpu]%\%}; if [ "$v" -ge 90 ]; then wrk_sat+=("$label ${v}%"); fi
done

# --- Markdown results. --------------------------------------------------------------------
commit=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit (working tree has uncommitted changes)"
fi
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
join() { local IFS=';' s; s="$*"; echo "${s//;/; }"; }
{
  echo "# GammaInfra gateway benchmark"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); run time $(( (SECONDS - T0) / 60 )) min $(( (SECONDS - T0) % 60 )) s"
  echo "- machine: $(nproc) CPUs (nproc), ${cpu_model:-unknown CPU}, Linux $(uname -r); load average at start $load_start, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- git commit: $commit"
  awk -v l="${load_start%% *}" -v n="$(nproc)" 'BEGIN { if (l > n / 2) printf "- the machine was busy (load average %s at the start on %d CPUs): other work shared the cores, the figures are noisy\n", l, n }'
  echo "- gateway: $("$BIN" --version), $BIN, on core 0 (taskset); billing on (SQLite unless the row says PostgreSQL, a topped-up account)"
  echo "- load: $(wrk -v 2>&1 | head -n1 | awk '{ print $1, $2 }') -t1 on core 1, DURATION=${DURATION}s per row, CONCURRENCY=\"$CONCURRENCY\", REPEAT=$REPEAT; upstream: $(nginx -v 2>&1 | sed 's/.*: //') mock (bench/mock-nginx.conf, ports $MOCK_PORT and $MOCK_STREAM_PORT), unpinned"
  echo
  echo "## Targets"
  echo
  echo "| target | limit | measured | result |"
  echo "|---|---|---|---|"
  printf '| %s |\n' "${targets[@]}"
  echo
  echo "## Every row"
  echo
  echo "Ratios are to the direct row at the same c and kind (the direct row ran just before the gateway row). RSS is read at the end of the row; CPU columns are percent of one core over the row (user + system time); \"target CPU\" is the gateway's or the peer's (core 0). Billing: requests charged to the account during the row vs. requests wrk completed."
  echo
  echo "| target | streamed | c | req/s | ratio to direct | p50 | p99 | RSS | target CPU | nginx CPU | wrk CPU | non-2xx | socket errors | billing |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for i in "${main_rows[@]}"; do
    secs=; [ "${R[$i,secs]:-$DURATION}" != "$DURATION" ] && secs=" (${R[$i,secs]}s)"
    if [ -n "${R[$i,note]}" ]; then
      echo "| ${R[$i,name]} | ${R[$i,stream]} | ${R[$i,c]} | ${R[$i,note]} | - | - | - | - | - | - | - | - | - | - |"
    else
      r=-; [ "${R[$i,kind]}" != direct ] && r=$(ratio_of "$i")
      echo "| ${R[$i,name]}$secs | ${R[$i,stream]} | ${R[$i,c]} | ${R[$i,rps]} | $r | ${R[$i,p50]} | ${R[$i,p99]} | ${R[$i,rss]} | ${R[$i,gcpu]} | ${R[$i,ncpu]} | ${R[$i,wcpu]} | ${R[$i,non2xx]} | ${R[$i,sock]} | ${R[$i,bill]} |"
    fi
  done
  echo
  [ ${#gw_sat[@]} -gt 0 ] && echo "- at ≥ 90% of core 0 (the target is the limit): $(join "${gw_sat[@]}")"
  [ ${#wrk_sat[@]} -gt 0 ] && echo "- wrk at ≥ 90% of core 1 (the load generator may be the limit; a direct row held down this way flatters the ratio): $(join "${wrk_sat[@]}")"
  [ "$PEERS" = 1 ] && echo "- peers: no authentication, no billing; wrk --timeout 30s for them (2 s for the rest)"
  if [ ${#billing_issues[@]} -gt 0 ]; then printf -- '- billing MISMATCH: %s\n' "${billing_issues[@]}"; else echo "- billing: every gateway row exact (charged = completed, plus at most c answered after wrk stopped counting)"; fi
  if [ ${#problems[@]} -gt 0 ]; then printf -- '- PROBLEM: %s\n' "${problems[@]}"; else echo "- every gateway row: 0 non-2xx, 0 socket errors"; fi
  if [ "$REPEAT" -gt 0 ]; then
    echo
    echo "## Added latency at c=1: $REPEAT direct/gateway pairs"
    echo
    echo "Each pair is a direct row and a gateway row of ${DURATION}s, back to back, on the gateway of the sweep above. Streamed rows time whole responses."
    echo
    echo "| streamed | pair | direct p50 | gateway p50 | added p50 | direct p99 | gateway p99 | added p99 | gateway req/s |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for pr in "${pair_rows[@]}"; do
      read -r s n d g <<<"$pr"
      echo "| $s | $n | ${R[$d,p50]} | ${R[$g,p50]} | $(signed $(( $(to_us "${R[$g,p50]}") - $(to_us "${R[$d,p50]}") ))) µs | ${R[$d,p99]} | ${R[$g,p99]} | $(signed $(( $(to_us "${R[$g,p99]}") - $(to_us "${R[$d,p99]}") ))) µs | ${R[$g,rps]} |"
    done
    echo
    for s in no yes; do
      [ -n "${PAIR_P50[$s]:-}" ] || continue
      echo "- $([ $s = yes ] && echo "streamed (whole response)" || echo "non-streamed"): added p50 min / median / max $(stats <<<"${PAIR_P50[$s]%$'\n'}") µs; added p99 $(stats <<<"${PAIR_P99[$s]%$'\n'}") µs"
    done
  fi
  if [ "$TTFT_ROUNDS" -gt 0 ]; then
    echo
    echo "## Time to first token (bench/ttft.py)"
    echo
    cat "$W/ttft.md"
    echo "- billing: $TTFT_BILL"
  fi
  echo
  echo "## Memory (RSS)"
  echo
  echo "- gateway idle, after start and the account setup, before any request: $(join "${idle_list[@]}")"
  [ "$RSS_MINUTE" -gt 0 ] && echo "- gateway after ${RSS_MINUTE}s at c=64, non-streamed (a fresh gateway, ${R[$RSS_MINUTE_ROW,reqs]} requests): $(mb "$RSS_MINUTE_KB")"
  [ "$STREAMS" -gt 0 ] && echo "- gateway with $STREAMS concurrent streams for ${DURATION}s (a fresh gateway, ${R[$STREAMS_ROW,reqs]} streams completed): peak $(mb "$STREAMS_PEAK_KB") over $STREAMS_SAMPLES samples 0.2 s apart; VmHWM (the kernel's high-water mark) $(mb "$STREAMS_HWM_KB"); ${R[$STREAMS_ROW,non2xx]} non-2xx, ${R[$STREAMS_ROW,sock]} socket errors"
  for n in "${peer_names[@]:-}"; do
    [ -n "$n" ] && echo "- $n: $(mb "${PEER_IDLE[$n]}") after start, at most $(mb "${PEER_MAX[$n]}") after a row"
  done
  true
} > "$OUT"
echo
sed -n '/^## Targets/,/^## Every row/p' "$OUT" | sed '$d'
echo "results: $OUT"
echo "work dir (logs, raw wrk output): $W"

if [ ${#problems[@]} -gt 0 ]; then
  printf 'PROBLEM: %s\n' "${problems[@]}" >&2
  exit 1
fi
