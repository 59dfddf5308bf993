#!/usr/bin/env bash
# GammaInfra gateway vs. the shared harness's nginx mock upstream, measured with wrk.
#
# Same mock, load generator and pinning as ../shared/bench/run_peers.sh, so the figures sit
# next to the peers': the gateway on core 0 (taskset), wrk -t1 on core 1, nginx unpinned,
# loopback only. In one run it measures, for c=1 and c=64:
#   non-streaming  direct to the mock (127.0.0.1:18080)  vs  through the gateway
#   streaming      direct to the mock (127.0.0.1:18081)  vs  through the gateway
# with authentication and billing on (a real account, topped up, on a SQLite database).
#
#   bench/run.sh                      # 15 s per row
#   DURATION=10 OUT=/tmp/r.md bench/run.sh
#
# With BENCH_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test) the gateway rows
# are measured a second time with the ledger on PostgreSQL (a fresh schema, created and
# dropped with psql), in the same run: one replica, credit leases on; with
# BENCH_COMMIT_BEFORE_ANSWER=1 as well, the non-streaming row once more with
# billing.commit_before_answer = true.
#
# Environment: GAMMAINFRA_BIN (a prebuilt gateway binary; default: cargo build --release),
# DURATION (seconds per row, default 15), OUT (markdown results, default
# bench/last-run.md), GW_PORT (gateway port, default 18090), BENCH_DIR (work directory,
# default a fresh mktemp directory; kept at the end for the logs and raw wrk output).
# Exit status: 0 when every gateway row is clean, 1 when a gateway row saw non-2xx answers or
# socket errors (the results are still printed and written), other failures exit early.
set -euo pipefail

DURATION=${DURATION:-15}
GW_PORT=${GW_PORT:-18090}
here=$(cd "$(dirname "$0")" && pwd)      # bench/
repo=$(cd "$here/.." && pwd)             # the repository root
OUT=${OUT:-$here/last-run.md}
W=${BENCH_DIR:-$(mktemp -d -t gi-bench.XXXXXX)}
mkdir -p "$W"
GW=http://127.0.0.1:$GW_PORT
ADMIN=bench-admin-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')

die() { echo "run.sh: $*" >&2; exit 1; }

# --- Every process we start is recorded here and stopped by its PID on exit. -------------
pids=()
pg_schemas=()
cleanup() {
  for p in "${pids[@]:-}"; do if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi; done
  for s in "${pg_schemas[@]:-}"; do
    if [ -n "$s" ]; then psql -q "$BENCH_POSTGRES_URL" -c "DROP SCHEMA $s CASCADE" >/dev/null 2>&1 || true; fi
  done
  if [ -f "$W/nginx.pid" ]; then kill "$(cat "$W/nginx.pid")" 2>/dev/null || true; fi
}
trap cleanup EXIT

# --- Tools: wrk and nginx from apt if missing (as run_peers.sh), plus curl and ps. -------
need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx || ! need curl || ! need ps; then
  sudo=; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  # nginx-light is gone from newer Debian releases; plain nginx serves the mock as well.
  $sudo apt-get install -y -qq wrk nginx-light curl procps >/dev/null \
    || $sudo apt-get install -y -qq wrk nginx curl procps >/dev/null
fi

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

# --- Nginx mock, exactly as run_peers.sh starts it. ---------------------------------------
sed "s#@W@#$W#g" "$NGINX_CONF" > "$W/nginx.conf"
mkdir -p "$W/body"
nginx -c "$W/nginx.conf"
MOCK=http://127.0.0.1:18080
MOCK_STREAM=http://127.0.0.1:18081

wait_http() { for _ in $(seq 1 120); do curl -s -o /dev/null "$1" && return 0; sleep 1; done; echo "no answer from $1" >&2; return 1; }
wait_http "$MOCK/"

# --- Small helpers. ---------------------------------------------------------------------
# json_get KEY: the first "KEY":"value" (or "KEY":number) of the compact JSON on stdin.
json_get() { grep -o "\"$1\":\"\{0,1\}[^\",}]*" | head -n1 | sed 's/^[^:]*:"\{0,1\}//'; }
# The request body the wrk scripts send, so the checks below send the very same one.
lua_body() { sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$1"; }
# Latency as wrk prints it (61.00us, 1.23ms, 2.00s, 1.00m) in microseconds.
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; m = 1
  if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1e3; else if (v ~ /m$/) m = 6e7; else if (v ~ /s$/) m = 1e6
  printf "%.0f", n * m }'; }
HZ=$(getconf CLK_TCK)
# CPU time (user + system ticks, all threads) of a process so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
nginx_ticks() {
  local t=0 p
  for p in $(cat "$W/nginx.pid") $(ps -o pid= --ppid "$(cat "$W/nginx.pid")"); do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}
pct() { awk -v t="$1" -v hz="$HZ" -v s="$2" 'BEGIN { printf "%.0f%%", t / hz / s * 100 }'; }

# api METHOD PATH [BODY]: an admin call; prints the answer, fails loudly on non-2xx.
api() {
  local resp code
  resp=$(curl -s -w '\n%{http_code}' -X "$1" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' ${3:+-d "$3"} "$GW$2") || die "$1 $2: no answer"
  code=${resp##*$'\n'}; resp=${resp%$'\n'*}
  [[ $code == 2* ]] || die "$1 $2 -> $code: $resp"
  echo "$resp"
}

# --- The gateway: started once for the non-streaming rows, once for the streaming rows. -
# start_gateway TAG UPSTREAM_URL: config + fresh database in $W, pinned to core 0; sets GW_PID.
# start_gateway TAG UPSTREAM [postgres [EXTRA_BILLING_TOML]]: the ledger on SQLite, or on a
# fresh PostgreSQL schema of BENCH_POSTGRES_URL, with extra [billing] settings.
start_gateway() {
  local tag=$1 upstream=$2 db
  db="sqlite://$W/gateway-$tag.db"
  curl -s -o /dev/null --max-time 1 "$GW/" && die "something already listens on $GW (set GW_PORT)"
  if [ "${3:-}" = postgres ]; then
    local schema="gi_bench_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    psql -q "$BENCH_POSTGRES_URL" -c "CREATE SCHEMA $schema" || die "cannot create a schema on BENCH_POSTGRES_URL"
    pg_schemas+=("$schema")
    local sep='?'; case $BENCH_POSTGRES_URL in *\?*) sep='&';; esac
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
stop_gateway() { kill "$GW_PID"; wait "$GW_PID" || true; }

# setup_account: an account with its first key, topped up so billing never runs dry;
# sets ACCOUNT and KEY.
setup_account() {
  local resp
  resp=$(api POST /admin/v1/accounts '{"email":"bench@example.com"}')
  ACCOUNT=$(json_get id <<<"$resp"); KEY=$(json_get api_key <<<"$resp")
  [ -n "$ACCOUNT" ] && [ -n "$KEY" ] || die "unexpected account answer: $resp"
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

# --- Measurement. ------------------------------------------------------------------------
declare -A R          # R[name,c,field]
rows=()               # "name c" in order, for the table
problems=()           # gateway rows with non-2xx / socket errors

# measure NAME URL LUA [PID]: wrk at c=1 and c=64, one row each. PID (the gateway) gives
# the RSS and CPU columns; nginx and wrk CPU are measured for every row.
measure() {
  local name=$1 url=$2 lua=$3 pid=${4:-}
  local c out t0 n0 real user sys rps p50 p99 rss non2xx sock reqs gcpu ncpu wcpu
  for c in 1 64; do
    out="$W/wrk-$name-c$c.txt"
    t0=0; [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
    n0=$(nginx_ticks)
    local TIMEFORMAT='%R %U %S'   # bash `time`: wall, user and system seconds of wrk
    if ! { time taskset -c 1 wrk -t1 -c"$c" -d"${DURATION}s" -s "$lua" --latency "$url" >"$out" 2>&1; } 2>"$out.time"; then
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
    rss=-; gcpu=-
    if [ -n "$pid" ]; then
      rss="$(( $(ps -o rss= -p "$pid") / 1024 )) MB"
      gcpu=$(pct $(( $(cpu_ticks "$pid") - t0 )) "$real")
    fi
    R[$name,$c,rps]=$rps; R[$name,$c,p50]=$p50; R[$name,$c,p99]=$p99; R[$name,$c,rss]=$rss
    R[$name,$c,non2xx]=$non2xx; R[$name,$c,sock]=$sock; R[$name,$c,reqs]=$reqs
    R[$name,$c,gcpu]=$gcpu; R[$name,$c,ncpu]=$ncpu; R[$name,$c,wcpu]=$wcpu
    rows+=("$name $c")
    printf '%-15s c=%-3s %10s req/s  p50 %-9s p99 %-9s rss %-7s cpu: gw %-5s nginx %-5s wrk %s\n' \
      "$name" "$c" "$rps" "$p50" "$p99" "$rss" "$gcpu" "$ncpu" "$wcpu"
    if [ "$non2xx" != 0 ] || [ "$sock" != 0 ]; then
      echo "  !! $name c=$c: non-2xx=$non2xx socket errors: $(grep 'Socket errors' "$out" | sed 's/^ *Socket errors: //')"
      if [ -n "$pid" ]; then problems+=("$name c=$c: $non2xx non-2xx, $sock socket errors (see $out)"); fi
    fi
  done
}

# billing_report TAG COST: what the account was charged vs. what wrk completed.
billing_report() {
  local tag=$1 cost=$2 resp spent reqs
  resp=$(api GET "/admin/v1/accounts/$ACCOUNT")
  spent=$(json_get spent_usd <<<"$resp")
  reqs=$(( ${R[$tag,1,reqs]} + ${R[$tag,64,reqs]} + 1 ))   # + the check request
  R[$tag,billing]=$(awk -v s="$spent" -v c="$cost" -v n="$reqs" -v b="$(json_get balance_usd <<<"$resp")" \
    'BEGIN { printf "spent $%s = %.0f requests at $%s each; wrk completed %d (+1 check); balance left $%s", s, s / c, c, n, b }')
  echo "billing ($tag): ${R[$tag,billing]}"
}

echo
echo "== non-streaming (mock on :18080), ${DURATION}s per row, gateway on core 0, wrk on core 1 =="
sed "s#@AUTH@#sk-mock#" "$CHAT_LUA" > "$W/direct.lua"
check "$MOCK/v1/chat/completions" "$W/direct.lua" sk-mock no no
start_gateway chat "$MOCK"
setup_account
sed "s#@AUTH@#$KEY#" "$CHAT_LUA" > "$W/gateway.lua"
check "$GW/v1/chat/completions" "$W/gateway.lua" "$KEY" no yes; cost_chat=$COST
measure direct "$MOCK/v1/chat/completions" "$W/direct.lua"
measure gateway "$GW/v1/chat/completions" "$W/gateway.lua" "$GW_PID"
billing_report gateway "$cost_chat"
stop_gateway
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  start_gateway chat-pg "$MOCK" postgres
  setup_account
  sed "s#@AUTH@#$KEY#" "$CHAT_LUA" > "$W/gateway-pg.lua"
  check "$GW/v1/chat/completions" "$W/gateway-pg.lua" "$KEY" no yes; cost_chat_pg=$COST
  measure gateway-pg "$GW/v1/chat/completions" "$W/gateway-pg.lua" "$GW_PID"
  billing_report gateway-pg "$cost_chat_pg"
  stop_gateway
  if [ -n "${BENCH_COMMIT_BEFORE_ANSWER:-}" ]; then
    # billing.commit_before_answer: every answer waits for its charge's commit.
    start_gateway chat-pg-commit "$MOCK" postgres "commit_before_answer = true"
    setup_account
    sed "s#@AUTH@#$KEY#" "$CHAT_LUA" > "$W/gateway-pg-commit.lua"
    check "$GW/v1/chat/completions" "$W/gateway-pg-commit.lua" "$KEY" no yes; cost_commit=$COST
    measure gateway-pg-commit "$GW/v1/chat/completions" "$W/gateway-pg-commit.lua" "$GW_PID"
    billing_report gateway-pg-commit "$cost_commit"
    stop_gateway
  fi
fi

echo
echo "== streaming (mock on :18081, SSE, include_usage) =="
sed "s#@AUTH@#sk-mock#" "$STREAM_LUA" > "$W/direct-stream.lua"
check "$MOCK_STREAM/v1/chat/completions" "$W/direct-stream.lua" sk-mock yes no
start_gateway stream "$MOCK_STREAM"
setup_account
sed "s#@AUTH@#$KEY#" "$STREAM_LUA" > "$W/gateway-stream.lua"
check "$GW/v1/chat/completions" "$W/gateway-stream.lua" "$KEY" yes yes; cost_stream=$COST
measure direct-stream "$MOCK_STREAM/v1/chat/completions" "$W/direct-stream.lua"
measure gateway-stream "$GW/v1/chat/completions" "$W/gateway-stream.lua" "$GW_PID"
billing_report gateway-stream "$cost_stream"
stop_gateway
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  start_gateway stream-pg "$MOCK_STREAM" postgres
  setup_account
  sed "s#@AUTH@#$KEY#" "$STREAM_LUA" > "$W/gateway-stream-pg.lua"
  check "$GW/v1/chat/completions" "$W/gateway-stream-pg.lua" "$KEY" yes yes; cost_stream_pg=$COST
  measure gateway-stream-pg "$GW/v1/chat/completions" "$W/gateway-stream-pg.lua" "$GW_PID"
  billing_report gateway-stream-pg "$cost_stream_pg"
  stop_gateway
fi

# --- Ratios. -------------------------------------------------------------------------------
ratio() { awk -v g="${R[$1,64,rps]}" -v d="${R[$2,64,rps]}" 'BEGIN { printf "%.3f (direct is %.1fx)", g / d, d / g }'; }
added() { echo "$(( $(to_us "${R[$1,1,$3]}") - $(to_us "${R[$2,1,$3]}") )) us"; }
ratios=(
  "non-streaming: gateway c=64 req/s / direct c=64 req/s = $(ratio gateway direct)"
  "non-streaming: added latency at c=1: p50 +$(added gateway direct p50), p99 +$(added gateway direct p99)"
  "streaming:     gateway c=64 req/s / direct c=64 req/s = $(ratio gateway-stream direct-stream)"
  "streaming:     added latency at c=1 (whole response): p50 +$(added gateway-stream direct-stream p50), p99 +$(added gateway-stream direct-stream p99)"
)
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  ratios+=(
    "non-streaming, PostgreSQL: gateway-pg c=64 req/s / direct = $(ratio gateway-pg direct); / SQLite gateway = $(ratio gateway-pg gateway)"
    "non-streaming, PostgreSQL: added latency at c=1: p50 +$(added gateway-pg direct p50), p99 +$(added gateway-pg direct p99)"
    ${BENCH_COMMIT_BEFORE_ANSWER:+"non-streaming, PostgreSQL, commit_before_answer: c=64 / direct = $(ratio gateway-pg-commit direct); / PostgreSQL without it = $(ratio gateway-pg-commit gateway-pg); added latency at c=1: p50 +$(added gateway-pg-commit direct p50), p99 +$(added gateway-pg-commit direct p99)"}
    "streaming, PostgreSQL: gateway-stream-pg c=64 req/s / direct = $(ratio gateway-stream-pg direct-stream); / SQLite gateway = $(ratio gateway-stream-pg gateway-stream)"
    "streaming, PostgreSQL: added latency at c=1 (whole response): p50 +$(added gateway-stream-pg direct-stream p50), p99 +$(added gateway-stream-pg direct-stream p99)"
  )
fi
# Saturation notes: which side ran out of CPU at c=64.
notes=()
for n in gateway gateway-stream direct direct-stream ${BENCH_POSTGRES_URL:+gateway-pg gateway-stream-pg}; do
  for who in gcpu wcpu; do
    v=${R[$n,64,$who]%\%}
    if [ "$v" != - ] && [ "$v" -ge 90 ]; then
      notes+=("$n c=64: $([ $who = gcpu ] && echo "gateway (core 0)" || echo "wrk (core 1)") at ${v}% of a core")
    fi
  done
done
echo
printf '%s\n' "${ratios[@]}"
if [ ${#notes[@]} -gt 0 ]; then printf 'saturation: %s\n' "${notes[@]}"; fi

# --- Markdown results. --------------------------------------------------------------------
commit=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit (working tree has uncommitted changes)"
fi
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
  echo "# GammaInfra gateway benchmark"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- machine: $(nproc) CPUs (nproc), ${cpu_model:-unknown CPU}, Linux $(uname -r)"
  echo "- git commit: $commit"
  echo "- gateway: $("$BIN" --version), release build, on core 0 (taskset); billing on (SQLite, topped-up account)"
  echo "- load: $(wrk -v 2>&1 | head -n1 | awk '{ print $1, $2 }') -t1 on core 1, DURATION=${DURATION}s per row; upstream: $(nginx -v 2>&1 | sed 's/.*: //') mock (bench/mock-nginx.conf), unpinned"
  echo
  echo "| target | c | req/s | p50 | p99 | gateway RSS | gateway CPU | nginx CPU | wrk CPU | non-2xx | socket errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for r in "${rows[@]}"; do
    set -- $r
    echo "| $1 | $2 | ${R[$1,$2,rps]} | ${R[$1,$2,p50]} | ${R[$1,$2,p99]} | ${R[$1,$2,rss]} | ${R[$1,$2,gcpu]} | ${R[$1,$2,ncpu]} | ${R[$1,$2,wcpu]} | ${R[$1,$2,non2xx]} | ${R[$1,$2,sock]} |"
  done
  echo
  printf -- '- %s\n' "${ratios[@]}"
  echo "- billing (non-streaming): ${R[gateway,billing]}"
  echo "- billing (streaming): ${R[gateway-stream,billing]}"
  if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
    echo "- billing (non-streaming, PostgreSQL): ${R[gateway-pg,billing]}"
    echo "- billing (streaming, PostgreSQL): ${R[gateway-stream-pg,billing]}"
  fi
  if [ ${#notes[@]} -gt 0 ]; then printf -- '- saturation: %s\n' "${notes[@]}"; fi
  if [ ${#problems[@]} -gt 0 ]; then printf -- '- PROBLEM: %s\n' "${problems[@]}"; else echo "- every gateway row: 0 non-2xx, 0 socket errors"; fi
  echo
  echo "CPU columns are percent of one core over the row (user + system time). streaming rows time whole responses (wrk); time to first token is not measured here."
} > "$OUT"
echo
echo "results: $OUT"
echo "work dir (logs, raw wrk output): $W"

if [ ${#problems[@]} -gt 0 ]; then
  printf 'PROBLEM: %s\n' "${problems[@]}" >&2
  exit 1
fi
