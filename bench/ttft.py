#!/usr/bin/env python3
"""Time to first token of a streamed chat completion, Python standard library only.

wrk times whole responses; this client times the start of the answer. For each target it
keeps one keep-alive HTTP/1.1 connection and sends the same streaming request N times, one
at a time, recording the time from just before the request is sent to the moment the first
SSE `data:` line carrying content (a non-empty choices[0].delta.content) has been read. The
rest of each answer is read to the end (the `data: [DONE]` line must come) so the
connection can be reused.

Targets are measured in alternating rounds (the order flips every round), so a slow spell
of a busy machine falls on both. Times of all rounds are pooled per target for p50/p99; the
difference of every target to the first one is reported pooled and as the spread
(min/median/max) of the per-round differences.

    ttft.py --body-file body.json --n 1000 --rounds 5 \
        --target direct http://127.0.0.1:18081/v1/chat/completions sk-mock \
        --target gateway http://127.0.0.1:18090/v1/chat/completions gi-...

--summary FILE writes key=value lines (for run.sh), --markdown FILE a report fragment.
Exit status 0 even when requests failed (the summary counts them); 2 on bad arguments.
"""

import argparse
import http.client
import json
import math
import socket
import statistics
import sys
import time
import urllib.parse


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list (p in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class Target:
    def __init__(self, name, url, key, body, timeout):
        self.name = name
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http":
            raise SystemExit(f"ttft.py: only http:// URLs (loopback benchmark): {url}")
        self.host, self.port = u.hostname, u.port or 80
        self.path = u.path + (f"?{u.query}" if u.query else "")
        self.body = body
        self.headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {key}",
            "Accept": "text/event-stream",
        }
        self.timeout = timeout
        self.conn = None
        self.samples = []      # microseconds, measured requests only
        self.rounds = []       # per round: list of microseconds
        self.completed = 0     # 200 answers read to [DONE] (warm-up included: all are billed)
        self.errors = 0
        self.last_error = ""
        self.reconnects = 0

    def connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.conn.connect()
        # No Nagle delay on the request (http.client sends headers and body in one write).
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def one(self):
        """One request; returns the time to first token in microseconds, or None on error."""
        if self.conn is None:
            self.connect()
        try:
            t0 = time.perf_counter_ns()
            self.conn.request("POST", self.path, body=self.body, headers=self.headers)
            resp = self.conn.getresponse()
            if resp.status != 200:
                text = resp.read()[:200].decode("utf-8", "replace")
                return self.fail(f"HTTP {resp.status}: {text}")
            first = None
            done = False
            while True:
                line = resp.readline()
                if not line:
                    break
                t = time.perf_counter_ns()
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = True
                    continue
                if first is None:
                    try:
                        choices = json.loads(payload).get("choices") or []
                        content = (choices[0].get("delta") or {}).get("content") if choices else None
                    except (ValueError, AttributeError, IndexError):
                        return self.fail(f"not JSON in a data: line: {payload[:120]!r}")
                    if content:
                        first = t
            resp.read()  # b"" at the end of the body; marks the response done for the connection
            if resp.will_close:
                self.conn.close()
                self.conn = None
                self.reconnects += 1
            if first is None:
                return self.fail("no data: line with content in the stream")
            if not done:
                return self.fail("the stream did not end with data: [DONE]")
            self.completed += 1
            return (first - t0) / 1000
        except (OSError, http.client.HTTPException) as e:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            self.reconnects += 1
            return self.fail(f"{type(e).__name__}: {e}")

    def fail(self, why):
        self.errors += 1
        self.last_error = why
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", nargs=3, action="append", metavar=("NAME", "URL", "KEY"), required=True,
                    help="a target; the first one is the baseline the others are compared to")
    ap.add_argument("--body-file", required=True, help="the JSON request body (with \"stream\": true)")
    ap.add_argument("--n", type=int, default=1000, help="measured requests per target per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=20, help="unrecorded requests per target per round")
    ap.add_argument("--timeout", type=float, default=10.0, help="socket timeout, seconds")
    ap.add_argument("--summary", help="write key=value results here")
    ap.add_argument("--markdown", help="write a markdown fragment here")
    a = ap.parse_args()
    if a.n < 1 or a.rounds < 1 or a.warmup < 0:
        ap.error("--n and --rounds must be at least 1, --warmup at least 0")
    with open(a.body_file, "rb") as f:
        body = f.read()
    targets = [Target(name, url, key, body, a.timeout) for name, url, key in a.target]

    for r in range(a.rounds):
        order = targets if r % 2 == 0 else list(reversed(targets))
        for t in order:
            for _ in range(a.warmup):
                t.one()
            times = []
            for _ in range(a.n):
                us = t.one()
                if us is not None:
                    times.append(us)
            t.rounds.append(sorted(times))
            t.samples.extend(times)
            print(f"  ttft round {r + 1}/{a.rounds} {t.name:<10} p50 {percentile(t.rounds[-1], 50):8.1f} us"
                  f"  p99 {percentile(t.rounds[-1], 99):8.1f} us  ({len(times)} ok, {t.errors} errors so far)",
                  flush=True)

    base = targets[0]
    out = {}
    for t in targets:
        s = sorted(t.samples)
        out[f"{t.name}.n"] = len(s)
        out[f"{t.name}.completed"] = t.completed
        out[f"{t.name}.errors"] = t.errors
        out[f"{t.name}.last_error"] = t.last_error.replace("\n", " ")
        out[f"{t.name}.reconnects"] = t.reconnects
        out[f"{t.name}.p50_us"] = f"{percentile(s, 50):.1f}"
        out[f"{t.name}.p99_us"] = f"{percentile(s, 99):.1f}"
    rows = []
    for t in targets[1:]:
        for p in (50, 99):
            pooled = percentile(sorted(t.samples), p) - percentile(sorted(base.samples), p)
            per_round = sorted(percentile(tr, p) - percentile(br, p) for tr, br in zip(t.rounds, base.rounds))
            out[f"{t.name}.diff_p{p}_us"] = f"{pooled:.1f}"
            out[f"{t.name}.round_diff_p{p}_us"] = (f"{per_round[0]:.1f}/{statistics.median(per_round):.1f}"
                                                    f"/{per_round[-1]:.1f}")
            rows.append((t.name, p, pooled, per_round))

    for k, v in out.items():
        print(f"  {k} = {v}")
    if a.summary:
        with open(a.summary, "w") as f:
            for k, v in out.items():
                f.write(f"{k}={v}\n")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(f"{a.rounds} rounds of {a.n} streamed requests per target (plus {a.warmup} unrecorded "
                    f"warm-up requests each), one keep-alive connection per target, order flipped every round; "
                    f"time from sending the request to reading the first `data:` line with content.\n\n")
            f.write("| target | requests | errors | p50 | p99 | " +
                    " | ".join(f"round {i + 1} p50 / p99" for i in range(a.rounds)) + " |\n")
            f.write("|---|---|---|---|---|" + "---|" * a.rounds + "\n")
            for t in targets:
                s = sorted(t.samples)
                per = " | ".join(f"{percentile(tr, 50):.0f} / {percentile(tr, 99):.0f} µs" for tr in t.rounds)
                f.write(f"| {t.name} | {len(s)} | {t.errors} | {percentile(s, 50):.1f} µs | "
                        f"{percentile(s, 99):.1f} µs | {per} |\n")
            f.write("\n")
            for name, p, pooled, per_round in rows:
                f.write(f"- {name} − {base.name}, p{p}: {pooled:+.1f} µs pooled; per round "
                        f"min {per_round[0]:+.1f} / median {statistics.median(per_round):+.1f} / "
                        f"max {per_round[-1]:+.1f} µs\n")
            for t in targets:
                if t.errors:
                    f.write(f"- {t.name}: {t.errors} failed requests, last: {t.last_error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
