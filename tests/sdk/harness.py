"""What the SDK checks share: the gateway under test, a registry of named checks, the
simulated providers' deterministic answers, and a way to run out of credit.

The gateway is `gammainfra serve --demo` (tests/sdk/run.sh starts it), given by:

* GAMMAINFRA_URL: its root, `http://127.0.0.1:PORT` (no `/v1`);
* GAMMAINFRA_API_KEY: the demo account's API key;
* GAMMAINFRA_ADMIN_TOKEN: the demo's admin token (to make fresh accounts).

The simulated providers (crates/simulators/src/simulators.rs) reply "Simulated reply to: <last user text>"
and count one token per whitespace-separated word: input tokens are the words of every
text piece plus 3 per message plus 85 per image, output tokens the words of the reply
(of a tool call: the words of its JSON arguments).
"""

import base64
import json
import os
import struct
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
import zlib

URL = os.environ["GAMMAINFRA_URL"].rstrip("/")
KEY = os.environ["GAMMAINFRA_API_KEY"]
ADMIN_TOKEN = os.environ.get("GAMMAINFRA_ADMIN_TOKEN", "")

# How each provider serves a model: (provider, model). Claude models are served by
# Bedrock and Anthropic; the OpenAI provider serves OpenAI's models.
CLAUDE = "claude-haiku-4-5"
ROUTES = {
    "bedrock": CLAUDE,
    "anthropic": CLAUDE,
    "openai": "openai/gpt-4o-mini",
}
# The dearest model each provider serves, for running out of credit.
DEAR = {
    "bedrock": "anthropic/claude-opus-4-7",
    "anthropic": "anthropic/claude-opus-4-7",
    "openai": "openai/gpt-5",
}
# A region constraint that no endpoint of these models satisfies (400).
NO_SUCH_REGION = "eu-west-3"


def _png():
    """A 1x1 red PNG, made here rather than shipped."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00\xff"))
        + chunk(b"IEND", b"")
    )


PNG_B64 = base64.b64encode(_png()).decode()


def only(provider):
    """The body member that pins a request to one provider."""
    return {"provider": {"only": [provider]}}


def reply(text):
    """The simulated providers' reply to a last user text."""
    return "Simulated reply to: " + " ".join(text.split())


def words(*texts):
    return sum(len(t.split()) for t in texts)


def input_tokens(*texts, messages=1, images=0):
    """What the simulated providers count for a prompt made of these texts."""
    return words(*texts) + 3 * messages + 85 * images


def output_tokens(text):
    return words(reply(text))


# --- checks -----------------------------------------------------------------------------

CHECKS = []


def check(name):
    """Registers a check: a function that raises (AssertionError or the SDK's
    exception) when the SDK does not get what it should."""

    def register(f):
        CHECKS.append((name, f))
        return f

    return register


def expect(cls, f, status=None, error_type=None):
    """Calls f, which must raise exactly `cls` (not merely a subclass of a sibling);
    checks the HTTP status and the error body's `error.type`. Returns the exception."""
    try:
        f()
    except Exception as e:  # noqa: BLE001: the class is what is checked
        assert type(e) is cls, f"raised {type(e).__module__}.{type(e).__name__}, not {cls.__module__}.{cls.__name__}: {e}"
        if status is not None:
            assert e.status_code == status, f"status {e.status_code}, not {status}: {e}"
        if error_type is not None:
            body = e.body if isinstance(e.body, dict) else {}
            got = body.get("error", {}).get("type") if "error" in body else body.get("type")
            assert got == error_type, f"error type {got!r}, not {error_type!r}: {e.body}"
        return e
    raise AssertionError(f"no {cls.__name__} was raised")


def run(checks):
    """Runs the checks, each whatever the others did; prints one line each."""
    passed = failed = 0
    for name, f in checks:
        t = time.monotonic()
        try:
            f()
        except Exception as e:  # noqa: BLE001: a failed check is reported, not raised
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            print("     " + traceback.format_exc().replace("\n", "\n     ").rstrip(), flush=True)
        else:
            passed += 1
            print(f"ok   {name} ({time.monotonic() - t:.2f}s)", flush=True)
    return passed, failed


# --- the gateway's own API, without an SDK ---------------------------------------------


def http(method, path, body=None, token=None, timeout=60):
    req = urllib.request.Request(
        URL + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token or KEY}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def fresh_account():
    """A new account with the $3.00 trial; returns its API key."""
    assert ADMIN_TOKEN, "GAMMAINFRA_ADMIN_TOKEN is not set"
    status, acct = http(
        "POST", "/admin/v1/accounts", {"email": f"sdk-{uuid.uuid4().hex[:12]}@example.com"}, ADMIN_TOKEN
    )
    assert status in (200, 201), (status, acct)
    return acct["api_key"]


class CreditHeld:
    """A fresh account most of whose credit is held by a request in flight (a Claude
    Opus request with a large `max_tokens` that the simulated Anthropic answers after
    a few seconds), so that a request on any provider that may cost more than the rest
    is refused with 402 before anything is sent upstream.
    """

    def __init__(self, seconds=4):
        self.key = fresh_account()
        self.seconds = seconds
        self.result = None

    def __enter__(self):
        def hold():
            self.result = http(
                "POST",
                "/v1/chat/completions",
                {
                    "model": "anthropic/claude-opus-4-7",
                    "max_tokens": 100000,
                    "messages": [{"role": "user", "content": f"hold [[sim:slow {self.seconds * 1000}]]"}],
                    **only("anthropic"),
                },
                self.key,
            )

        self.thread = threading.Thread(target=hold, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            status, credits = http("GET", "/v1/credits", token=self.key)
            assert status == 200, credits
            if credits["reserved_usd"] != "0.00":
                self.available = credits["available_usd"]
                return self
            time.sleep(0.05)
        raise AssertionError("the holding request never reserved credit")

    def __exit__(self, *exc):
        self.thread.join(self.seconds + 30)
        assert self.result is not None and self.result[0] == 200, f"the holding request: {self.result}"
        return False
