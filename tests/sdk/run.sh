#!/usr/bin/env bash
# The SDK conformance suite: the official `anthropic` and `openai` Python SDKs, LangChain,
# and every example of docs/clients.md, against `gammainfra serve --demo` (the offline
# simulated providers). .ci/run runs it after `cargo test`; by hand:
#
#   tests/sdk/run.sh                                         # builds the debug binary
#   GAMMAINFRA_BIN=target/debug/gammainfra tests/sdk/run.sh  # or takes this one
#   tests/sdk/run.sh anthropic_sdk                           # only these modules
#
# Needs python3 with venv, curl, and PyPI for the pinned packages of
# tests/sdk/requirements.txt, which it installs into a new virtual environment in a
# temporary directory (GAMMAINFRA_SDK_VENV=DIR keeps one in DIR for the next run).
# When any of that is missing it fails and says why: nothing is skipped.
# Prints one line per check and closes with `sdk: N passed, N failed`.
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() {
    echo "tests/sdk/run.sh: $*" >&2
    exit 1
}

W=$(mktemp -d -t gi-sdk.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$W"
}
trap cleanup EXIT

command -v python3 >/dev/null || fail "python3 is not installed"
command -v curl >/dev/null || fail "curl is not installed (the examples of docs/clients.md use it)"
bin=${GAMMAINFRA_BIN:-}
if [ -z "$bin" ]; then
    cargo build -q --bin gammainfra
    bin=target/debug/gammainfra
fi
[ -x "$bin" ] || fail "no gateway binary at $bin"

started=$SECONDS
venv=${GAMMAINFRA_SDK_VENV:-$W/venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >"$W/venv.log" 2>&1 || {
        cat "$W/venv.log" >&2
        fail "python3 -m venv could not make a virtual environment"
    }
fi
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q \
    -r tests/sdk/requirements.txt >"$W/pip.log" 2>&1 || {
    cat "$W/pip.log" >&2
    fail "pip could not install the pinned packages of tests/sdk/requirements.txt (above: why)"
}
echo "tests/sdk/run.sh: SDKs installed in $((SECONDS - started)) s:" \
    "$("$venv/bin/python" -m pip freeze | grep -E '^(anthropic|openai|langchain-anthropic|langchain-openai)==' | tr '\n' ' ')"

# Port 0: the demo prints the address it got once it listens.
"$bin" serve --demo --listen 127.0.0.1:0 >"$W/demo.out" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
    grep -q '^Admin token' "$W/demo.out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
url=$(sed -n 's/^GammaInfra demo: gateway on \(http:[^ ]*\) .*/\1/p' "$W/demo.out")
key=$(sed -n 's/.*API key: \([^ ]*\)$/\1/p' "$W/demo.out")
admin=$(sed -n 's/^Admin token (for \/admin\/v1): //p' "$W/demo.out")
if [ -z "$url" ] || [ -z "$key" ] || [ -z "$admin" ]; then
    cat "$W/demo.out" >&2
    fail "the demo gateway did not start (its output is above)"
fi

status=0
(cd tests/sdk && GAMMAINFRA_URL=$url GAMMAINFRA_API_KEY=$key GAMMAINFRA_ADMIN_TOKEN=$admin \
    "$venv/bin/python" suite.py "$@") || status=$?
if [ "$status" -ne 0 ]; then
    echo "tests/sdk/run.sh: the demo gateway's log (last 40 lines):" >&2
    tail -n 40 "$W/demo.out" >&2
fi
exit "$status"
