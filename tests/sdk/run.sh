#!/usr/bin/env bash
# Runs the official OpenAI Python SDK against `gammainfra serve --demo` (offline
# simulators). Needs python3 and PyPI access for the SDK. Not part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
W=$(mktemp -d -t gi-sdk.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$W"' EXIT
cargo build -q
python3 -m venv "$W/venv"
"$W/venv/bin/pip" install -q openai
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
./target/debug/gammainfra serve --demo --listen "127.0.0.1:$port" >"$W/demo.out" 2>&1 &
pid=$!
for _ in $(seq 1 50); do grep -q 'API key:' "$W/demo.out" 2>/dev/null && break; sleep 0.2; done
KEY=$(grep -o 'API key: [^ ]*' "$W/demo.out" | cut -d' ' -f3)
BASE="http://127.0.0.1:$port" KEY="$KEY" "$W/venv/bin/python" tests/sdk/openai_sdk.py
