#!/usr/bin/env bash
# Codex CLI through the gateway: installs @openai/codex from npm into a temporary prefix,
# points it at `gammainfra serve --demo` (offline simulators) as a custom model provider
# speaking the Responses API (`wire_api = "responses"`: Codex streams every turn from
# POST /v1/responses), and runs `codex exec` with a prompt that makes it call its
# exec_command tool, once through each provider that serves Claude models (Bedrock and
# Anthropic's API, chosen with X-GammaInfra-Provider, which Codex sends from its
# provider's `http_headers`). Checks that it exits 0, prints the simulated answer built
# from the file its command read, and that the gateway billed each of its requests: one
# usage record per response Codex received, each with a positive cost and the tokens
# Codex was told, and the balance lost exactly their cost.
#
# Codex retries a failed request or a broken stream on its own (up to 5 times, and each
# HTTP attempt 4 more times on 5xx); the provider sets both retry counts to 0 here, so
# that a failure shows at once and every request Codex makes is one it counted.
#
# CODEX_VERSION picks another release; CODEX_TEST_BASE_URL=http://HOST:PORT runs it
# against a gateway that is already running (with GAMMAINFRA_API_KEY and
# GAMMAINFRA_ADMIN_TOKEN for it) instead of starting the demo. Needs Node.js with npm
# and the npm registry; a failed install fails the run with the reason.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=${CODEX_VERSION:-0.171.0}
BIN=${GAMMAINFRA_BIN:-target/debug/gammainfra}
MODEL=anthropic/claude-sonnet-4-6
W=$(mktemp -d -t gi-codex.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$W"
}
trap cleanup EXIT
fail() {
    echo "codex: $*" >&2
    exit 1
}

command -v npm >/dev/null || fail "npm is not installed (Node.js with npm is needed)"
command -v curl >/dev/null || fail "curl is not installed"
started=$SECONDS
if ! npm install --silent --no-fund --no-audit --prefix "$W/npm" "@openai/codex@$VERSION" >"$W/npm.log" 2>&1; then
    cat "$W/npm.log" >&2
    fail "npm install @openai/codex@$VERSION failed (above: why)"
fi
CODEX="$W/npm/node_modules/.bin/codex"
# The native binary comes in an optional dependency per platform: check that it came.
got=$("$CODEX" --version 2>"$W/version.err") || {
    cat "$W/version.err" >&2
    fail "the installed codex does not run (its platform package may be missing)"
}
[ "$got" = "codex-cli $VERSION" ] || fail "codex --version says '$got', not codex-cli $VERSION"
echo "codex: $got installed in $((SECONDS - started)) s"

if [ -n "${CODEX_TEST_BASE_URL:-}" ]; then
    BASE=${CODEX_TEST_BASE_URL%/}
    KEY=${GAMMAINFRA_API_KEY:?CODEX_TEST_BASE_URL needs GAMMAINFRA_API_KEY}
    ADMIN=${GAMMAINFRA_ADMIN_TOKEN:?CODEX_TEST_BASE_URL needs GAMMAINFRA_ADMIN_TOKEN}
else
    [ -x "$BIN" ] || fail "$BIN is missing (run cargo build first)"
    # Port 0: the demo prints the address it got once it listens.
    "$BIN" serve --demo --listen 127.0.0.1:0 >"$W/demo.out" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
        grep -q '^Admin token' "$W/demo.out" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    BASE=$(sed -n 's/^GammaInfra demo: gateway on \(http:[^ ]*\) .*/\1/p' "$W/demo.out")
    KEY=$(sed -n 's/.*API key: \([^ ]*\)$/\1/p' "$W/demo.out")
    ADMIN=$(sed -n 's/^Admin token (for \/admin\/v1): //p' "$W/demo.out")
    if [ -z "$BASE" ] || [ -z "$KEY" ] || [ -z "$ADMIN" ]; then
        cat "$W/demo.out" >&2
        fail "the demo gateway did not start (its output is above)"
    fi
fi

mkdir -p "$W/project" "$W/home"
MARKER="gammainfra-marker-$RANDOM$RANDOM"
printf 'The marker is %s.\n' "$MARKER" >"$W/project/notes.txt"
# The simulated model calls the tool the prompt names with these (space-free) arguments.
PROMPT="Read the notes. [[sim:call exec_command cmd=cat<notes.txt]]"

for provider in bedrock anthropic; do
    # A fresh Codex home per run: its config, and its session log, whose
    # token_usage_record lines are Codex's own account of each response it received.
    home="$W/codex-$provider"
    mkdir -p "$home"
    cat >"$home/config.toml" <<EOF
model_provider = "gammainfra"
model = "$MODEL"
check_for_update_on_startup = false
# Codex offers the model OpenAI's built-in web_search tool unless told not to; no
# provider the gateway routes the Responses API to runs it (the gateway refuses it,
# naming it).
web_search = "disabled"

[model_providers.gammainfra]
name = "GammaInfra"
base_url = "$BASE/v1"
env_key = "GAMMAINFRA_API_KEY"
wire_api = "responses"
http_headers = { "X-GammaInfra-Provider" = "$provider" }
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

# Nothing but the gateway: these would look up plugins and apps on the internet.
[features]
plugins = false
remote_plugin = false
apps = false
EOF
    before=$(curl -sf "$BASE/v1/usage?limit=1000" -H "authorization: Bearer $KEY")
    credits_before=$(curl -sf "$BASE/v1/credits" -H "authorization: Bearer $KEY")
    status=0
    (cd "$W/project" && env -i PATH="$PATH" HOME="$W/home" CODEX_HOME="$home" \
        GAMMAINFRA_API_KEY="$KEY" \
        timeout 300 "$CODEX" exec --strict-config --skip-git-repo-check --sandbox read-only \
        --json "$PROMPT" </dev/null) >"$W/out.$provider.jsonl" 2>"$W/err.$provider.txt" || status=$?
    if [ "$status" -ne 0 ]; then
        cat "$W/out.$provider.jsonl" "$W/err.$provider.txt" >&2
        if [ -f "$W/demo.out" ]; then
            echo "codex: the demo gateway's log (last 20 lines):" >&2
            tail -n 20 "$W/demo.out" >&2
        fi
        fail "via $provider: codex exec exited with $status"
    fi
    after=$(curl -sf "$BASE/v1/usage?limit=1000" -H "authorization: Bearer $KEY")
    credits_after=$(curl -sf "$BASE/v1/credits" -H "authorization: Bearer $KEY")
    BEFORE="$before" AFTER="$after" CREDITS_BEFORE="$credits_before" CREDITS_AFTER="$credits_after" \
        OUT="$W/out.$provider.jsonl" SESSIONS="$home/sessions" PROVIDER="$provider" MARKER="$MARKER" \
        MODEL="$MODEL" python3 - <<'PY'
import json, os, pathlib, sys
from decimal import Decimal

provider, marker = os.environ["PROVIDER"], os.environ["MARKER"]
events = [json.loads(line) for line in open(os.environ["OUT"]) if line.strip()]


def fail(msg):
    sys.exit(f"codex via {provider}: {msg}\n" + "\n".join(json.dumps(e) for e in events)[:4000])


items = [e["item"] for e in events if e.get("type") == "item.completed"]
answers = [i["text"] for i in items if i.get("type") == "agent_message"]
commands = [i for i in items if i.get("type") == "command_execution"]
if not answers:
    fail("no answer")
if not answers[-1].startswith("Simulated reply to:") or marker not in answers[-1]:
    fail(f"the answer is not the simulated reply to the file it read: {answers[-1][:500]!r}")
if not commands or commands[0].get("exit_code") != 0:
    fail("the tool was not called, or its command failed")
turns = [e for e in events if e.get("type") == "turn.completed"]
if len(turns) != 1:
    fail("no turn.completed")

# Codex's own record of each response it received (its session log).
theirs = []
for path in pathlib.Path(os.environ["SESSIONS"]).rglob("*.jsonl"):
    for line in open(path):
        e = json.loads(line)
        if e.get("type") == "token_usage_record":
            theirs.append(e["payload"]["usage"])
if len(theirs) < 2:
    fail(f"Codex recorded {len(theirs)} responses; the tool call takes two")

seen = {r["request_id"] for r in json.loads(os.environ["BEFORE"])["data"]}
records = [r for r in json.loads(os.environ["AFTER"])["data"] if r["request_id"] not in seen]
if len(records) != len(theirs):
    fail(f"the gateway has {len(records)} usage records for the {len(theirs)} requests Codex made: {records}")
for r in records:
    if r["provider"] != provider or r["status"] != "completed" or r["model"] != os.environ["MODEL"]:
        fail(f"a request was not served by {provider} and completed: {r}")
    if not Decimal(r["cost_usd"]) > 0:
        fail(f"a request was not charged: {r}")


# Per request, the tokens billed are the ones the gateway reported to Codex (Responses
# usage: input_tokens counts cached reads and cache writes too).
def billed(r):
    read, write = r["cache_read_tokens"], r["cache_write_tokens"]
    return (r["input_tokens"] + read + write, read, write, r["output_tokens"])


def told(u):
    return (u["input_tokens"], u["cached_input_tokens"], u.get("cache_write_input_tokens", 0), u["output_tokens"])


if sorted(map(billed, records)) != sorted(map(told, theirs)):
    fail(f"billed (input, cache read, cache write, output) {sorted(map(billed, records))}; "
         f"Codex was told {sorted(map(told, theirs))}")
total = turns[0]["usage"]
if told(total) != tuple(map(sum, zip(*map(told, theirs)))):
    fail(f"the turn's usage {total} is not the sum of its responses' {theirs}")

spent = sum(Decimal(r["cost_usd"]) for r in records)
lost = Decimal(json.loads(os.environ["CREDITS_BEFORE"])["balance_usd"]) - Decimal(
    json.loads(os.environ["CREDITS_AFTER"])["balance_usd"])
if lost != spent:
    fail(f"the balance lost {lost}; the usage records cost {spent}")
print(f"codex via {provider}: ok, {len(records)} requests billed {spent} USD, {told(total)}")
PY
done

# The ledger: the account's entries add up to its balance.
ACCOUNT=$(curl -sf "$BASE/v1/credits" -H "authorization: Bearer $KEY" | python3 -c 'import json,sys; print(json.load(sys.stdin)["account_id"])')
curl -sf "$BASE/admin/v1/accounts/$ACCOUNT" -H "authorization: Bearer $ADMIN" >"$W/account.json"
python3 - "$W/account.json" <<'PY'
import json, sys
view = json.load(open(sys.argv[1]))
if view["ledger_sum_usd"] != view["balance_usd"]:
    sys.exit(f"codex: the ledger does not add up to the balance: {view}")
print(f"codex: ledger exact, balance {view['balance_usd']}")
PY
