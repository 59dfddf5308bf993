"""The official OpenAI Python SDK against a running GammaInfra demo gateway.

Run with tests/sdk/run.sh (it starts `gammainfra serve --demo` and a virtualenv).
Every check raises on a wrong answer, so a zero exit status means the SDK works.
"""
import os, sys
import openai
from openai import OpenAI
c = OpenAI(base_url=os.environ["BASE"] + "/v1", api_key=os.environ["KEY"])
r = c.chat.completions.create(model="anthropic/claude-sonnet-4-6", messages=[{"role": "user", "content": "Hello SDK"}])
assert r.choices[0].message.content == "Simulated reply to: Hello SDK", r
assert r.usage.model_extra["cost_usd"], r.usage
print("non-stream:", r.choices[0].message.content, r.usage)
text = ""
usage = None
for ch in c.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hello stream"}], stream=True, stream_options={"include_usage": True}):
    if ch.choices:
        text += ch.choices[0].delta.content or ""
    if ch.usage:
        usage = ch.usage
assert text == "Simulated reply to: Hello stream", text
assert usage is not None and usage.model_extra["cost_usd"], usage
print("stream:", text, usage)
text = ""
for ch in c.chat.completions.create(model="claude-sonnet-4-6", messages=[{"role": "user", "content": "Hello anthropic stream"}], stream=True):
    if ch.choices:
        text += ch.choices[0].delta.content or ""
assert text == "Simulated reply to: Hello anthropic stream", text
print("anthropic stream:", text)
tools=[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"query":{"type":"string"}}}}}]
r = c.chat.completions.create(model="anthropic/claude-haiku-4-5", messages=[{"role": "user", "content": "weather"}], tools=tools)
assert r.choices[0].finish_reason == "tool_calls"
assert r.choices[0].message.tool_calls[0].function.name == "lookup"
print("tools:", r.choices[0].message.tool_calls[0].function)
print("models:", len(c.models.list().data))
try:
    c.chat.completions.create(model="nope/model", messages=[{"role": "user", "content": "x"}])
    sys.exit("unknown model was accepted")
except openai.NotFoundError as e:
    print("error:", type(e).__name__, str(e)[:150])
try:
    for ch in c.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "[[sim:midstream-error]]"}], stream=True):
        pass
    sys.exit("mid-stream error was not raised")
except openai.APIError as e:
    print("midstream error:", type(e).__name__, str(e)[:150])
print("OpenAI SDK: all checks passed")
