#!/usr/bin/env bash
# The browser tests: Debian's Chromium, headless, driven through ChromeDriver by Selenium,
# against one `gammainfra serve --demo` (offline simulators, the simulated Stripe
# included): topup.py (a card top-up started through the API), then console.py (the
# customers' web console, from sign-up to logout). .ci/run runs them after the SDK
# suite; by hand:
#
#   GAMMAINFRA_BIN=target/debug/gammainfra tests/browser/run.sh
#
# Installs chromium and chromium-driver with apt-get when they are missing (as root, or
# through sudo), and the pinned Selenium of tests/browser/requirements.txt into a new
# virtual environment. When any of that cannot be had it fails and says why.
# Screenshots of every page go to $GAMMAINFRA_SCREENSHOTS (default
# target/browser-screenshots) for review.
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() {
    echo "tests/browser/run.sh: $*" >&2
    exit 1
}

W=$(mktemp -d -t gi-browser.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$W"
}
trap cleanup EXIT

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || fail "chromium and chromium-driver are not installed, and installing them needs root or sudo"
        as_root=(sudo)
    fi
    echo "tests/browser/run.sh: installing chromium and chromium-driver (apt-get)"
    if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >"$W/apt.log" 2>&1; then
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$W/apt.log" 2>&1 || true
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >>"$W/apt.log" 2>&1 || {
            tail -20 "$W/apt.log" >&2
            fail "apt-get could not install chromium and chromium-driver (above: why)"
        }
    fi
fi
command -v chromium >/dev/null || fail "chromium is still missing after apt-get"
command -v chromedriver >/dev/null || fail "chromedriver is still missing after apt-get"

bin=${GAMMAINFRA_BIN:-}
if [ -z "$bin" ]; then
    cargo build -q --bin gammainfra
    bin=target/debug/gammainfra
fi
[ -x "$bin" ] || fail "no gateway binary at $bin"

python3 -m venv "$W/venv" >"$W/venv.log" 2>&1 || {
    cat "$W/venv.log" >&2
    fail "python3 -m venv could not make a virtual environment"
}
"$W/venv/bin/python" -m pip install --disable-pip-version-check --no-input -q \
    -r tests/browser/requirements.txt >"$W/pip.log" 2>&1 || {
    cat "$W/pip.log" >&2
    fail "pip could not install the pinned Selenium of tests/browser/requirements.txt (above: why)"
}

# Port 0: the demo prints the address it got once it listens.
"$bin" serve --demo --listen 127.0.0.1:0 >"$W/demo.out" 2>"$W/demo.err" &
pid=$!
for _ in $(seq 1 100); do
    grep -q "API key:" "$W/demo.out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$W/demo.err" >&2; fail "the demo gateway exited"; }
    sleep 0.1
done
grep -q "API key:" "$W/demo.out" || { cat "$W/demo.err" >&2; fail "the demo gateway did not start"; }

shots=${GAMMAINFRA_SCREENSHOTS:-target/browser-screenshots}
mkdir -p "$shots"
for test in topup console; do
    GAMMAINFRA_DEMO_BANNER="$W/demo.out" GAMMAINFRA_SCREENSHOTS="$shots" \
        "$W/venv/bin/python" "tests/browser/$test.py" || {
        tail -30 "$W/demo.err" >&2
        fail "the browser test tests/browser/$test.py failed (above: the gateway's log)"
    }
done
