"""The official OpenAI Python SDK against GammaInfra's `POST /v1/chat/completions`, once
per provider: Claude on Bedrock and on Anthropic, GPT-4o mini on OpenAI, each pinned
with `extra_body={"provider": {"only": [...]}}`.

Every assertion is exact: the simulated reply, the finish reason, the usage (with the
gateway's `cost_usd`), and the exception class the SDK raises.
Run by tests/sdk/run.sh (through suite.py).
"""

import json

import openai

from harness import (
    DEAR,
    KEY,
    NO_SUCH_REGION,
    PNG_B64,
    ROUTES,
    URL,
    CreditHeld,
    check,
    expect,
    input_tokens,
    only,
    output_tokens,
    reply,
)

# No retries: an error must surface at once, as the gateway sent it.
client = openai.OpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Looks it up",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


def catalog_id(model):
    """The OpenAI surface names models by their catalog IDs."""
    return model if "/" in model else "anthropic/" + model


def per_provider(provider, model):
    pin = only(provider)
    model = catalog_id(model)

    @check(f"openai[{provider}] chat.completions.create")
    def plain():
        text = "Hello SDK"
        raw = client.chat.completions.with_raw_response.create(
            model=model,
            max_tokens=50,
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
            extra_body=pin,
        )
        assert raw.headers["x-gammainfra-provider"] == provider, raw.headers
        r = raw.parse()
        assert r.object == "chat.completion", r
        # The SDK reads the request's ID from x-request-id.
        assert r._request_id == raw.headers["x-gammainfra-request-id"], (r._request_id, raw.headers)
        # Like OpenAI's own, the answer names the model that served it: the exact ID
        # the gateway sent upstream.
        assert r.model == raw.headers["x-gammainfra-upstream-model"], (r.model, raw.headers)
        assert len(r.choices) == 1, r.choices
        c = r.choices[0]
        assert c.message.role == "assistant" and c.message.content == reply(text), c
        assert c.finish_reason == "stop", c.finish_reason
        # Anthropic and Bedrock take the system prompt apart from the messages.
        system_messages = 1 if provider == "openai" else 0
        prompt = input_tokens("Be brief.", text, messages=1 + system_messages)
        assert r.usage.prompt_tokens == prompt, r.usage
        assert r.usage.completion_tokens == output_tokens(text), r.usage
        assert r.usage.total_tokens == prompt + output_tokens(text), r.usage
        cost = r.usage.model_extra["cost_usd"]
        assert float(cost) > 0 and raw.headers["x-gammainfra-cost-usd"] == cost, (cost, raw.headers)

    @check(f"openai[{provider}] max_tokens stop")
    def length():
        r = client.chat.completions.create(
            model=model,
            max_tokens=3,
            messages=[{"role": "user", "content": "one two three four"}],
            extra_body=pin,
        )
        assert r.choices[0].message.content == "Simulated reply to:", r.choices[0]
        assert r.choices[0].finish_reason == "length", r.choices[0]
        assert r.usage.completion_tokens == 3, r.usage

    @check(f"openai[{provider}] stream=True chunks")
    def stream():
        text = "Hello stream"
        chunks = list(
            client.chat.completions.create(
                model=model,
                max_tokens=50,
                messages=[{"role": "user", "content": text}],
                stream=True,
                stream_options={"include_usage": True},
                extra_body=pin,
            )
        )
        assert all(ch.object == "chat.completion.chunk" for ch in chunks), chunks
        content = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert content == reply(text), content
        finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
        assert finish == ["stop"], finish
        # The usage chunk comes last, with no choices.
        usage = chunks[-1].usage
        assert chunks[-1].choices == [] and usage is not None, chunks[-1]
        assert [ch for ch in chunks[:-1] if ch.usage] == [], "usage before the last chunk"
        assert usage.prompt_tokens == input_tokens(text), usage
        assert usage.completion_tokens == output_tokens(text), usage
        assert float(usage.model_extra["cost_usd"]) > 0, usage

    @check(f"openai[{provider}] chat.completions.stream helper")
    def stream_helper():
        text = "Hello stream helper"
        with client.chat.completions.stream(
            model=model,
            max_tokens=50,
            messages=[{"role": "user", "content": text}],
            stream_options={"include_usage": True},
            extra_body=pin,
        ) as s:
            deltas = [e.delta for e in s if e.type == "content.delta"]
            final = s.get_final_completion()
        assert "".join(deltas) == reply(text), deltas
        assert final.choices[0].message.content == reply(text), final
        assert final.choices[0].finish_reason == "stop", final
        assert final.usage.prompt_tokens == input_tokens(text), final.usage
        assert final.usage.completion_tokens == output_tokens(text), final.usage

    @check(f"openai[{provider}] tool round trip")
    def tools():
        ask = [{"role": "user", "content": "find cats"}]
        r = client.chat.completions.create(
            model=model, max_tokens=100, tools=TOOLS, tool_choice="required", messages=ask, extra_body=pin
        )
        c = r.choices[0]
        assert c.finish_reason == "tool_calls", c
        assert len(c.message.tool_calls) == 1, c.message
        call = c.message.tool_calls[0]
        assert call.type == "function" and call.function.name == "lookup", call
        assert json.loads(call.function.arguments) == {"query": "find cats"}, call
        # Streamed, the helper accumulates the call from the argument deltas.
        with client.chat.completions.stream(
            model=model, max_tokens=100, tools=TOOLS, tool_choice="required", messages=ask, extra_body=pin
        ) as s:
            done = [e for e in s if e.type == "tool_calls.function.arguments.done"]
            final = s.get_final_completion()
        assert [(e.name, json.loads(e.arguments)) for e in done] == [("lookup", {"query": "find cats"})], done
        assert final.choices[0].finish_reason == "tool_calls", final
        streamed = final.choices[0].message.tool_calls
        assert len(streamed) == 1 and streamed[0].function.name == "lookup", streamed
        assert json.loads(streamed[0].function.arguments) == {"query": "find cats"}, streamed
        answer = client.chat.completions.create(
            model=model,
            max_tokens=100,
            tools=TOOLS,
            messages=ask
            + [
                {"role": "assistant", "tool_calls": [call.model_dump(exclude_none=True)]},
                {"role": "tool", "tool_call_id": call.id, "content": "three cats"},
            ],
            extra_body=pin,
        )
        assert answer.choices[0].message.content == reply("three cats"), answer.choices[0]
        assert answer.choices[0].finish_reason == "stop", answer.choices[0]

    @check(f"openai[{provider}] image (base64 data URL)")
    def image():
        text = "What is this?"
        r = client.chat.completions.create(
            model=model,
            max_tokens=50,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG_B64}},
                        {"type": "text", "text": text},
                    ],
                }
            ],
            extra_body=pin,
        )
        assert r.choices[0].message.content == reply(text), r.choices[0]
        assert r.usage.prompt_tokens == input_tokens(text, images=1), r.usage
        assert r.usage.completion_tokens == output_tokens(text), r.usage

    @check(f"openai[{provider}] models.list")
    def models():
        ids = [m.id for m in client.models.list()]
        assert model in ids, ids
        assert client.models.retrieve(model).id == model

    @check(f"openai[{provider}] errors: 401 404 400")
    def errors():
        ask = dict(max_tokens=50, messages=[{"role": "user", "content": "hi"}], extra_body=pin)
        wrong = openai.OpenAI(base_url=URL + "/v1", api_key="gi-wrong", max_retries=0)
        expect(openai.AuthenticationError, lambda: wrong.chat.completions.create(model=model, **ask), 401)
        expect(
            openai.AuthenticationError,
            lambda: list(wrong.chat.completions.create(model=model, stream=True, **ask)),
            401,
        )
        expect(
            openai.NotFoundError,
            lambda: client.chat.completions.create(model="nope/model", **ask),
            404,
            "invalid_request_error",
        )
        expect(
            openai.BadRequestError,
            lambda: client.chat.completions.create(
                model=model, extra_headers={"X-GammaInfra-Region": NO_SUCH_REGION}, **ask
            ),
            400,
            "invalid_request_error",
        )

    @check(f"openai[{provider}] error: 402")
    def payment_required():
        with CreditHeld(seconds=2) as held:
            poor = openai.OpenAI(base_url=URL + "/v1", api_key=held.key, max_retries=0)
            # The OpenAI SDK has no class of its own for 402.
            e = expect(
                openai.APIStatusError,
                lambda: poor.chat.completions.create(
                    model=DEAR[provider],
                    max_tokens=128000,
                    messages=[{"role": "user", "content": "hi"}],
                    extra_body=pin,
                ),
                402,
                "insufficient_quota",
            )
            # The SDK's `body` is the error object.
            assert e.body["code"] == "insufficient_credits", e.body

    @check(f"openai[{provider}] error mid-stream")
    def midstream():
        def consume():
            for _ in client.chat.completions.create(
                model=model,
                max_tokens=50,
                messages=[{"role": "user", "content": "boom [[sim:midstream-error]]"}],
                stream=True,
                extra_body=pin,
            ):
                pass

        # An error object in a 200 stream: the SDK raises APIError, with that object
        # as its body.
        e = expect(openai.APIError, consume)
        assert e.body["type"] == "server_error" and e.body["code"] == "upstream_error", e.body
        assert e.body["provider"] == provider and e.body["request_id"].startswith("req_"), e.body


for _provider, _model in ROUTES.items():
    per_provider(_provider, _model)


def embeddings(model, upstream_tokens):
    """`client.embeddings.create` (the SDK asks for base64 and decodes it) and the float
    format, which must give the same numbers; usage with the gateway's `cost_usd`."""

    @check(f"openai embeddings.create {model}")
    def create():
        texts = ["Hello there", "General Kenobi"]
        r = client.embeddings.create(model=model, input=texts, dimensions=256)
        assert r.model == model, r.model
        assert [d.index for d in r.data] == [0, 1], r.data
        assert all(len(d.embedding) == 256 for d in r.data)
        assert r.usage.prompt_tokens == upstream_tokens, r.usage
        assert r.usage.total_tokens == upstream_tokens, r.usage
        assert r.usage.model_extra["cost_usd"].startswith("0.0"), r.usage
        floats = client.embeddings.create(
            model=model, input=texts, dimensions=256, encoding_format="float"
        )
        for a, b in zip(r.data, floats.data):
            assert a.embedding == b.embedding, (a.embedding[:3], b.embedding[:3])
        raw = client.embeddings.with_raw_response.create(model=model, input="hi")
        assert raw.headers["x-gammainfra-cost-usd"] == raw.parse().usage.model_extra["cost_usd"]

    @check(f"openai embeddings errors {model}: 400 for a chat model and empty input")
    def errors():
        expect(
            openai.BadRequestError,
            lambda: client.embeddings.create(model="openai/gpt-4o-mini", input="hi"),
            400,
            "invalid_request_error",
        )
        expect(
            openai.BadRequestError,
            lambda: client.embeddings.create(model=model, input=[]),
            400,
            "invalid_request_error",
        )


# The simulators count one token per word: 2 + 2.
embeddings("openai/text-embedding-3-small", 4)
embeddings("amazon/titan-embed-text-v2", 4)
