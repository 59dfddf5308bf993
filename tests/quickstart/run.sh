#!/usr/bin/env bash
# The newcomer's path, as written: README.md's demo command (`cargo run -- serve --demo`,
# on its default address 127.0.0.1:8080), the `export` line the demo prints, every
# command between the `quickstart:demo` markers of docs/quickstart.md exactly as
# written, and the `catalog verify` line the demo prints. Each command's output is
# checked for what the page says it shows. Needs curl and a free port 8080.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() {
    echo "tests/quickstart/run.sh: $*" >&2
    exit 1
}

command -v curl >/dev/null || fail "curl is needed"
if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
    fail "port 8080 is in use: the README's demo command listens there"
fi
grep -qx 'cargo run -- serve --demo' README.md || fail "README.md no longer shows \`cargo run -- serve --demo\`"
grep -qx 'cargo run -- serve --demo' docs/quickstart.md || fail "docs/quickstart.md no longer shows \`cargo run -- serve --demo\`"

W=$(mktemp -d)
demo=
cleanup() {
    [ -n "$demo" ] && kill -- "-$demo" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

# Its own process group, so that the gateway under `cargo run` stops with it.
setsid cargo run -- serve --demo >"$W/demo.out" 2>"$W/demo.err" &
demo=$!
for _ in $(seq 1 1800); do
    grep -q '^export GAMMAINFRA_URL=' "$W/demo.out" 2>/dev/null && break
    kill -0 "$demo" 2>/dev/null || { cat "$W/demo.err" >&2; fail "the demo exited"; }
    sleep 0.2
done
export_line=$(grep '^export GAMMAINFRA_URL=' "$W/demo.out") || {
    tail -40 "$W/demo.err" >&2
    fail "the demo printed no export line"
}
eval "$export_line"
[ "$GAMMAINFRA_URL" = http://127.0.0.1:8080 ] || fail "the demo is not on the README's address: $GAMMAINFRA_URL"

# The page's commands: each ```sh block between the markers.
awk -v dir="$W" '
    /<!-- quickstart:demo -->/ { on = 1; next }
    /<!-- \/quickstart:demo -->/ { on = 0; next }
    on && /^```sh$/ { n++; file = sprintf("%s/step%02d.sh", dir, n); inblock = 1; next }
    inblock && /^```$/ { inblock = 0; next }
    inblock { print > file }
' docs/quickstart.md

# What each block's output shows, in order (extended regexes, case-insensitive, all must
# match).
expect=(
    'HTTP/1.1 200|x-gammainfra-upstream-model: global\.anthropic\.claude-sonnet-4-6|"cost_usd":"'
    'HTTP/1.1 200|x-gammainfra-provider: anthropic|"content":"Simulated reply to: Hello!"'
    '^data: \{.*"usage":\{.*"cost_usd":"|^data: \[DONE\]'
    'HTTP/1.1 200|x-gammainfra-provider: openai_compatible:local|x-gammainfra-upstream-region: eu-west-1'
    '"object":"response"|"status":"completed"|"text":"Simulated reply to: Hello!"|"cost_usd":"0\.0'
    'HTTP/1.1 200|x-gammainfra-upstream-model: eu\.anthropic\.claude-sonnet-4-6|x-gammainfra-upstream-region: eu'
    'HTTP/1.1 400|"code":"no_endpoint_in_region"'
    'HTTP/1.1 200|x-gammainfra-output-capped: [0-9]+|"finish_reason":"stop"'
    '"object":"credits".*"spent_usd":"0\.0|"provider":"bedrock".*"provider":"anthropic".*"provider":"openai".*"provider":"openai_compatible:local"|"region":"eu"'
)
steps=("$W"/step*.sh)
[ "${#steps[@]}" -eq "${#expect[@]}" ] ||
    fail "docs/quickstart.md has ${#steps[@]} commands between its markers; this test knows ${#expect[@]}"
for i in "${!steps[@]}"; do
    out="$W/out$i"
    bash -euo pipefail "${steps[$i]}" >"$out" 2>&1 || { cat "${steps[$i]}" "$out" >&2; fail "step $((i + 1)) failed"; }
    IFS='|' read -ra patterns <<<"${expect[$i]}"
    for p in "${patterns[@]}"; do
        grep -qiE -- "$p" "$out" || {
            echo "--- step $((i + 1)):" >&2
            cat "${steps[$i]}" >&2
            echo "--- its output:" >&2
            cat "$out" >&2
            fail "step $((i + 1)): the output does not show /$p/"
        }
    done
    echo "quickstart: step $((i + 1)) ok"
done

# The `catalog verify` line the demo printed, as printed.
verify_line=$(grep '^AWS_ACCESS_KEY_ID=.* catalog verify$' "$W/demo.out") || fail "the demo printed no catalog verify line"
bash -c "$verify_line" >"$W/verify.out" 2>&1 || { cat "$W/verify.out" >&2; fail "catalog verify failed"; }
grep -qE '^[0-9]+ entries checked, 0 mismatch\(es\)$' "$W/verify.out" || { cat "$W/verify.out" >&2; fail "catalog verify reported mismatches"; }
if grep -qiE 'imds|instance metadata|\x1b\[' "$W/verify.out"; then
    cat "$W/verify.out" >&2
    fail "catalog verify printed instance-metadata noise or colour codes"
fi
echo "quickstart: catalog verify ok ($(tail -1 "$W/verify.out"))"
echo "quickstart: all $((${#steps[@]} + 1)) steps passed"
