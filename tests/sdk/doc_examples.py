"""Runs the examples of docs/clients.md, straight from the document, so that they
cannot drift from what the gateway does.

In docs/clients.md, a fenced block right after a `<!-- test: NAME -->` line is an
example: a `python` block runs with this suite's Python (the pinned SDKs installed), a
`sh` block with `bash -euo pipefail` (with that Python first on PATH). Both get only
GAMMAINFRA_URL and GAMMAINFRA_API_KEY to find the gateway: the SDKs' own variables
(ANTHROPIC_BASE_URL, OPENAI_API_KEY, ...) are removed from their environment. A fenced
block right after `<!-- output -->` is what the example before it must print, line by
line: `…` in a line stands for any text, a line that is only `…` for any lines.

Every example in EXPECTED must be there, and no other: removing an example from the
document, or adding one, is a change to this list too.
"""

import os
import pathlib
import re
import subprocess
import sys

from harness import KEY, URL, check

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "clients.md"

EXPECTED = [
    "curl-chat",
    "curl-messages",
    "curl-messages-stream",
    "curl-count-tokens",
    "openai-python",
    "openai-python-stream",
    "openai-python-embeddings",
    "openai-env",
    "openai-responses",
    "anthropic-python",
    "anthropic-python-stream",
    "anthropic-routing",
    "anthropic-count-tokens",
    "anthropic-errors",
    "anthropic-env",
    "langchain-openai",
    "langchain-anthropic",
]

FENCE = re.compile(r"^(`{3,})(\S*)\s*$")


def examples(text):
    """[(name, language, code, expected output or None)] in document order."""
    found = []
    lines = text.splitlines()
    i = 0
    pending = None  # "test NAME" or "output" awaiting its block
    while i < len(lines):
        line = lines[i].strip()
        m = re.fullmatch(r"<!-- test: (\S+) -->", line)
        if m:
            pending = ("test", m.group(1))
        elif line == "<!-- output -->":
            assert found, "an output block before any example"
            pending = ("output", None)
        else:
            f = FENCE.match(lines[i])
            if f:
                fence, lang = f.group(1), f.group(2)
                j = i + 1
                while j < len(lines) and lines[j].rstrip() != fence:
                    j += 1
                assert j < len(lines), f"docs/clients.md:{i + 1}: unclosed code block"
                body = "\n".join(lines[i + 1 : j]) + "\n"
                if pending and pending[0] == "test":
                    found.append([pending[1], lang, body, None, i + 1])
                elif pending and pending[0] == "output":
                    assert found[-1][3] is None, f"docs/clients.md:{i + 1}: two outputs for {found[-1][0]}"
                    found[-1][3] = body
                pending = None
                i = j
            elif line and pending:
                raise AssertionError(f"docs/clients.md:{i + 1}: {pending} is not followed by a code block")
        i += 1
    return found


def pattern(expected):
    """The regular expression an example's output must match in full."""
    parts = []
    for line in expected.rstrip("\n").split("\n"):
        if line.strip() == "…":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append("[^\n]*?".join(re.escape(p) for p in line.rstrip().split("…")) + "\n")
    return "".join(parts)


def runner(name, lang, code, expected, line):
    def run():
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
        env.update(GAMMAINFRA_URL=URL, GAMMAINFRA_API_KEY=KEY)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        if lang == "python":
            cmd = [sys.executable, "-c", code]
        elif lang == "sh":
            cmd = ["bash", "-euo", "pipefail", "-c", code]
        else:
            raise AssertionError(f"docs/clients.md:{line}: {name} is a `{lang}` block, not python or sh")
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"docs/clients.md:{line}: {name} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
        if expected is not None:
            out = "".join(l.rstrip() + "\n" for l in p.stdout.rstrip("\n").split("\n"))
            assert re.fullmatch(pattern(expected), out), (
                f"docs/clients.md:{line}: {name} printed\n{out}\nnot what the document shows:\n{expected}"
            )

    return run


_found = examples(DOC.read_text(encoding="utf-8"))


@check("docs/clients.md: every example is there")
def complete():
    names = [f[0] for f in _found]
    assert names == EXPECTED, f"examples {names}, expected {EXPECTED}"
    missing = [f[0] for f in _found if f[3] is None]
    assert not missing, f"examples without an output block: {missing}"


for _name, _lang, _code, _expected, _line in _found:
    check(f"docs/clients.md: {_name}")(runner(_name, _lang, _code, _expected, _line))
