#!/usr/bin/env bash
# Claude Code through the gateway: installs @anthropic-ai/claude-code from npm into a
# temporary prefix, points it at `gammainfra serve --demo` (offline simulators) with a
# gateway key, and runs a non-interactive prompt that makes it call its Read tool, once
# through each provider that serves Claude models (Anthropic's API and Bedrock, chosen
# with X-GammaInfra-Provider). Checks that it exits 0, prints the simulated answer built
# from the file it read, and that the gateway billed each of its requests: the usage
# records add up to the tokens Claude Code itself counted, and the balance lost exactly
# their cost. No model is set (CLAUDE_CODE_MODEL sets one, for trying by hand): Claude
# Code's default model must resolve.
#
# Run by .ci/run after `cargo test` (which builds target/debug/gammainfra). Needs
# Node.js with npm and the npm registry; a failed install fails the run with the reason.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=${CLAUDE_CODE_VERSION:-2.1.197}
BIN=${GAMMAINFRA_BIN:-target/debug/gammainfra}
W=$(mktemp -d -t gi-claude.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$W"' EXIT

command -v npm >/dev/null || { echo "claude-code: npm is not installed (Node.js with npm is needed)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "claude-code: $BIN is missing (run cargo build first)" >&2; exit 1; }
if ! npm install --silent --no-fund --no-audit --prefix "$W/npm" "@anthropic-ai/claude-code@$VERSION" >"$W/npm.log" 2>&1; then
    echo "claude-code: npm install @anthropic-ai/claude-code@$VERSION failed:" >&2
    cat "$W/npm.log" >&2
    exit 1
fi
CLAUDE="$W/npm/node_modules/.bin/claude"
"$CLAUDE" --version >/dev/null 2>"$W/version.err" || { echo "claude-code: the installed claude does not run:" >&2; cat "$W/version.err" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --demo --listen "127.0.0.1:$port" >"$W/demo.out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q 'Admin token' "$W/demo.out" 2>/dev/null && break; sleep 0.1; done
KEY=$(grep -o 'API key: [^ ]*' "$W/demo.out" | cut -d' ' -f3)
ADMIN=$(grep -o 'Admin token (for /admin/v1): [^ ]*' "$W/demo.out" | awk '{print $NF}')
[ -n "$KEY" ] && [ -n "$ADMIN" ] || { echo "claude-code: the demo did not start:" >&2; cat "$W/demo.out" >&2; exit 1; }
BASE="http://127.0.0.1:$port"

mkdir -p "$W/project" "$W/home"
MARKER="gammainfra-marker-$RANDOM$RANDOM"
printf 'The marker is %s.\n' "$MARKER" >"$W/project/notes.txt"

for provider in anthropic bedrock; do
    before=$(curl -sf "$BASE/v1/usage?limit=1000" -H "authorization: Bearer $KEY")
    ( cd "$W/project" && env -i PATH="$PATH" HOME="$W/home" \
        ANTHROPIC_BASE_URL="$BASE" ANTHROPIC_API_KEY="$KEY" \
        ANTHROPIC_CUSTOM_HEADERS="X-GammaInfra-Provider: $provider" \
        ${CLAUDE_CODE_MODEL:+ANTHROPIC_MODEL="$CLAUDE_CODE_MODEL"} \
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 \
        timeout 300 "$CLAUDE" -p "Read the notes. [[sim:call Read file_path=$W/project/notes.txt]]" \
        --output-format json ) >"$W/out.$provider.json" 2>"$W/err.$provider.txt" || {
        echo "claude-code via $provider: claude exited with $?" >&2
        cat "$W/out.$provider.json" "$W/err.$provider.txt" >&2
        exit 1
    }
    after=$(curl -sf "$BASE/v1/usage?limit=1000" -H "authorization: Bearer $KEY")
    BEFORE="$before" AFTER="$after" OUT="$W/out.$provider.json" PROVIDER="$provider" MARKER="$MARKER" python3 - <<'PY'
import json, os, sys
out = json.load(open(os.environ["OUT"]))
provider, marker = os.environ["PROVIDER"], os.environ["MARKER"]
def fail(msg):
    sys.exit(f"claude-code via {provider}: {msg}\n{json.dumps(out)[:3000]}")
if out.get("is_error") or out.get("subtype") != "success":
    fail("Claude Code reported an error")
result = out.get("result", "")
if not result.startswith("Simulated reply to:") or marker not in result:
    fail(f"the answer is not the simulated reply to the file it read: {result[:500]!r}")
if out.get("num_turns", 0) < 2:
    fail("no tool was called")
seen = {r["request_id"] for r in json.loads(os.environ["BEFORE"])["data"]}
records = [r for r in json.loads(os.environ["AFTER"])["data"] if r["request_id"] not in seen]
if not records:
    fail("nothing was billed")
for r in records:
    if r["provider"] != provider or r["status"] != "completed":
        fail(f"a request was not served by {provider} and completed: {r}")
mine = {
    "input": sum(r["input_tokens"] for r in records),
    "output": sum(r["output_tokens"] for r in records),
    "cache_read": sum(r["cache_read_tokens"] for r in records),
    "cache_write": sum(r["cache_write_tokens"] for r in records),
}
theirs = {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0}
for u in out.get("modelUsage", {}).values():
    theirs["input"] += u.get("inputTokens", 0)
    theirs["output"] += u.get("outputTokens", 0)
    theirs["cache_read"] += u.get("cacheReadInputTokens", 0)
    theirs["cache_write"] += u.get("cacheCreationInputTokens", 0)
if mine != theirs:
    fail(f"the gateway billed {mine} over {len(records)} requests; Claude Code counted {theirs}")
print(f"claude-code via {provider}: ok, {len(records)} requests billed, {mine}")
PY
done

# The ledger: what the account lost is exactly what its usage records cost.
ACCOUNT=$(curl -sf "$BASE/v1/credits" -H "authorization: Bearer $KEY" | python3 -c 'import json,sys; print(json.load(sys.stdin)["account_id"])')
curl -sf "$BASE/admin/v1/accounts/$ACCOUNT" -H "authorization: Bearer $ADMIN" >"$W/account.json"
USAGE=$(curl -sf "$BASE/v1/usage?limit=1000" -H "authorization: Bearer $KEY")
USAGE="$USAGE" python3 - "$W/account.json" <<'PY'
import json, os, sys
from decimal import Decimal
view = json.load(open(sys.argv[1]))
spent = sum(Decimal(r["cost_usd"]) for r in json.loads(os.environ["USAGE"])["data"])
balance = Decimal(view["balance_usd"])
if view["ledger_sum_usd"] != view["balance_usd"] or Decimal("3.00") - spent != balance:
    sys.exit(f"claude-code: the ledger does not add up: spent {spent}, account {view}")
print(f"claude-code: ledger exact, spent {spent}, balance {balance}")
PY
