"""The official Anthropic Python SDK against GammaInfra's `POST /v1/messages` and
`POST /v1/messages/count_tokens`, once per provider: Claude on Bedrock and on Anthropic
(the providers the catalog serves Claude models through), and GPT-4o mini on OpenAI,
each pinned with `extra_body={"provider": {"only": [...]}}`.

Every assertion is exact: the simulated reply, the stop reason, the usage the SDK
reads or accumulates from the events, and the exception class the SDK raises.
Run by tests/sdk/run.sh (through suite.py).
"""

import anthropic

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
    http,
    input_tokens,
    only,
    output_tokens,
    reply,
)

# No retries: an error must surface at once, as the gateway sent it.
client = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0)


TOOLS = [
    {
        "name": "lookup",
        "description": "Looks it up",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
    }
]


def per_provider(provider, model):
    pin = only(provider)

    @check(f"anthropic[{provider}] messages.create")
    def plain():
        text = "Hello SDK"
        raw = client.messages.with_raw_response.create(
            model=model,
            max_tokens=50,
            system="Be brief.",
            messages=[{"role": "user", "content": text}],
            extra_body=pin,
        )
        assert raw.headers["x-gammainfra-provider"] == provider, raw.headers
        m = raw.parse()
        assert m.type == "message" and m.role == "assistant", m
        assert m.id.startswith("msg_"), m.id
        # The SDK reads the request's ID from `request-id`.
        assert m._request_id == raw.headers["x-gammainfra-request-id"], (m._request_id, raw.headers)
        assert m.model == model, m.model
        assert len(m.content) == 1 and m.content[0].type == "text", m.content
        assert m.content[0].text == reply(text), m.content
        assert m.stop_reason == "end_turn", m.stop_reason
        assert m.stop_sequence is None, m.stop_sequence
        # OpenAI gets the system prompt as a message of its own (3 tokens more).
        system_messages = 1 if provider == "openai" else 0
        assert m.usage.input_tokens == input_tokens("Be brief.", text, messages=1 + system_messages), m.usage
        assert m.usage.output_tokens == output_tokens(text), m.usage
        assert m.usage.cache_creation_input_tokens == 0 and m.usage.cache_read_input_tokens == 0, m.usage
        assert float(raw.headers["x-gammainfra-cost-usd"]) > 0, raw.headers

    @check(f"anthropic[{provider}] max_tokens stop, bearer auth")
    def max_tokens():
        # `auth_token` sends `Authorization: Bearer` (what ANTHROPIC_AUTH_TOKEN sets).
        bearer = anthropic.Anthropic(base_url=URL, auth_token=KEY, max_retries=0)
        m = bearer.messages.create(
            model=model,
            max_tokens=3,
            messages=[{"role": "user", "content": "one two three four"}],
            extra_body=pin,
        )
        assert m.content[0].text == "Simulated reply to:", m.content
        assert m.stop_reason == "max_tokens", m.stop_reason
        assert m.usage.output_tokens == 3, m.usage

    @check(f"anthropic[{provider}] messages.stream helper")
    def stream_helper():
        text = "Hello stream helper"
        with client.messages.stream(
            model=model,
            max_tokens=50,
            messages=[{"role": "user", "content": text}],
            extra_body=pin,
        ) as s:
            streamed = "".join(s.text_stream)
            final = s.get_final_message()
        assert streamed == reply(text), streamed
        assert [b.type for b in final.content] == ["text"], final.content
        assert final.content[0].text == reply(text), final.content
        assert final.stop_reason == "end_turn", final.stop_reason
        assert final.usage.input_tokens == input_tokens(text), final.usage
        assert final.usage.output_tokens == output_tokens(text), final.usage

    @check(f"anthropic[{provider}] stream=True events")
    def raw_events():
        text = "Hello raw events"
        events = list(
            client.messages.create(
                model=model,
                max_tokens=50,
                messages=[{"role": "user", "content": text}],
                stream=True,
                extra_body=pin,
            )
        )
        n = len(reply(text).split())
        # The SDK drops `ping` events.
        assert [e.type for e in events] == (
            ["message_start", "content_block_start"]
            + ["content_block_delta"] * n
            + ["content_block_stop", "message_delta", "message_stop"]
        ), [e.type for e in events]
        start, delta = events[0], events[-2]
        assert start.message.role == "assistant" and start.message.id.startswith("msg_"), start
        assert events[1].index == 0 and events[1].content_block.type == "text", events[1]
        deltas = [e.delta.text for e in events if e.type == "content_block_delta"]
        assert "".join(deltas) == reply(text), deltas
        assert delta.delta.stop_reason == "end_turn", delta
        assert delta.usage.output_tokens == output_tokens(text), delta.usage
        # Usage on message_delta is cumulative; input_tokens there, when present,
        # overrides message_start's (as the SDK's accumulator does).
        got = delta.usage.input_tokens if delta.usage.input_tokens is not None else start.message.usage.input_tokens
        assert got == input_tokens(text), (start.message.usage, delta.usage)

    @check(f"anthropic[{provider}] tool round trip")
    def tools():
        ask = [{"role": "user", "content": "find cats"}]
        m = client.messages.create(
            model=model, max_tokens=100, tools=TOOLS, tool_choice={"type": "any"}, messages=ask, extra_body=pin
        )
        assert m.stop_reason == "tool_use", m
        calls = [b for b in m.content if b.type == "tool_use"]
        assert len(calls) == 1 and calls[0].name == "lookup", m.content
        assert calls[0].input == {"query": "find cats"}, calls[0]
        # Streamed, the SDK's accumulator builds the same block from input_json_delta.
        with client.messages.stream(
            model=model, max_tokens=100, tools=TOOLS, tool_choice={"type": "any"}, messages=ask, extra_body=pin
        ) as s:
            final = s.get_final_message()
        assert final.stop_reason == "tool_use", final
        streamed = [b for b in final.content if b.type == "tool_use"]
        assert len(streamed) == 1 and streamed[0].name == "lookup", final.content
        assert streamed[0].input == {"query": "find cats"}, streamed[0]
        assert final.usage.output_tokens == m.usage.output_tokens, (final.usage, m.usage)
        call = calls[0]
        answer = client.messages.create(
            model=model,
            max_tokens=100,
            tools=TOOLS,
            messages=ask
            + [
                {"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "three cats"}]},
            ],
            extra_body=pin,
        )
        assert answer.content[0].text == reply("three cats"), answer.content
        assert answer.stop_reason == "end_turn", answer.stop_reason

    @check(f"anthropic[{provider}] image (base64)")
    def image():
        text = "What is this?"
        m = client.messages.create(
            model=model,
            max_tokens=50,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                        {"type": "text", "text": text},
                    ],
                }
            ],
            extra_body=pin,
        )
        assert m.content[0].text == reply(text), m.content
        assert m.usage.input_tokens == input_tokens(text, images=1), m.usage
        assert m.usage.output_tokens == output_tokens(text), m.usage

    @check(f"anthropic[{provider}] messages.count_tokens")
    def count_tokens():
        ask = dict(
            model=model,
            system="Count me.",
            messages=[{"role": "user", "content": "one two three four"}],
            extra_body=pin,
        )
        before = http("GET", "/v1/credits")[1]
        try:
            r = client.messages.with_raw_response.count_tokens(**ask)
        except anthropic.NotFoundError as e:
            raise AssertionError(f"POST /v1/messages/count_tokens is not served: 404 {e.body}") from None
        counted = r.parse().input_tokens
        after = http("GET", "/v1/credits")[1]
        assert before["balance_usd"] == after["balance_usd"], ("not free", before, after)
        exact = input_tokens("Count me.", "one two three four")
        if provider == "openai":
            # OpenAI has no counting endpoint: the gateway's estimate, which errs high.
            assert r.headers["x-gammainfra-token-count"] == "estimate", r.headers
            assert counted >= exact, (counted, exact)
        else:
            assert r.headers["x-gammainfra-token-count"] == "exact", r.headers
            assert counted == exact, (counted, exact)
            # And it is what a request with that prompt is billed for.
            m = client.messages.create(max_tokens=50, **ask)
            assert m.usage.input_tokens == counted, (m.usage, counted)

    @check(f"anthropic[{provider}] errors: 401 404 400")
    def errors():
        ask = dict(max_tokens=50, messages=[{"role": "user", "content": "hi"}], extra_body=pin)
        wrong = anthropic.Anthropic(base_url=URL, api_key="gi-wrong", max_retries=0)
        e = expect(
            anthropic.AuthenticationError,
            lambda: wrong.messages.create(model=model, **ask),
            401,
            "authentication_error",
        )
        assert e.body["request_id"].startswith("req_"), e.body
        assert e.request_id == e.body["request_id"], (e.request_id, e.body)

        def streamed():
            with wrong.messages.stream(model=model, **ask) as s:
                s.get_final_message()

        expect(anthropic.AuthenticationError, streamed, 401, "authentication_error")
        expect(
            anthropic.NotFoundError,
            lambda: client.messages.create(model="claude-nonexistent-9", **ask),
            404,
            "not_found_error",
        )
        expect(
            anthropic.BadRequestError,
            lambda: client.messages.create(
                model=model, extra_headers={"X-GammaInfra-Region": NO_SUCH_REGION}, **ask
            ),
            400,
            "invalid_request_error",
        )

    @check(f"anthropic[{provider}] error: 402")
    def payment_required():
        with CreditHeld(seconds=2) as held:
            poor = anthropic.Anthropic(base_url=URL, api_key=held.key, max_retries=0)

            def dear():
                # Streamed: the SDK refuses a large max_tokens without streaming.
                with poor.messages.stream(
                    model=DEAR[provider],
                    max_tokens=128000,
                    messages=[{"role": "user", "content": "hi"}],
                    extra_body=pin,
                ) as s:
                    s.get_final_message()

            e = expect(anthropic.PaymentRequiredError, dear, 402, "billing_error")
            assert "Top up" in e.body["error"]["message"], e.body

    @check(f"anthropic[{provider}] error event mid-stream")
    def midstream():
        def consume():
            with client.messages.stream(
                model=model,
                max_tokens=50,
                messages=[{"role": "user", "content": "boom [[sim:midstream-error]]"}],
                extra_body=pin,
            ) as s:
                for _ in s.text_stream:
                    pass

        # An `error` event in a 200 stream: the SDK raises the base class.
        e = expect(anthropic.APIStatusError, consume)
        assert e.body["type"] == "error" and e.body["error"]["type"] in ("api_error", "overloaded_error"), e.body


for _provider, _model in ROUTES.items():
    per_provider(_provider, _model)
