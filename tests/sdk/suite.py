"""Runs the SDK checks of the modules named on the command line (default: all) against
the gateway given by GAMMAINFRA_URL and GAMMAINFRA_API_KEY, one line per check, and
closes with `sdk: N passed, N failed`. Exit status 1 if any failed or none ran.
"""

import importlib
import sys

import harness

MODULES = ["anthropic_sdk", "openai_sdk", "openai_responses", "doc_examples"]

for name in sys.argv[1:] or MODULES:
    importlib.import_module(name)
passed, failed = harness.run(harness.CHECKS)
print(f"sdk: {passed} passed, {failed} failed", flush=True)
sys.exit(1 if failed or not passed else 0)
