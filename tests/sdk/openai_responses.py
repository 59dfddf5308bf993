"""The official OpenAI Python SDK against GammaInfra's `POST /v1/responses` (stateless),
once per provider: Claude on Bedrock and on Anthropic, GPT-4o mini on OpenAI, each
pinned with `extra_body={"provider": {"only": [...]}}`.

`responses.create`, `responses.stream` with its event helpers and final-response
accumulator, a function-tool round trip, and the 400 for what needs stored state.
Run by tests/sdk/run.sh (through suite.py).
"""

import json

import openai

from harness import KEY, ROUTES, URL, check, expect, input_tokens, only, output_tokens, reply

client = openai.OpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0)

TOOLS = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Looks it up",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        "strict": False,
    }
]


def catalog_id(model):
    return model if "/" in model else "anthropic/" + model


def per_provider(provider, model):
    pin = only(provider)
    model = catalog_id(model)

    @check(f"openai[{provider}] responses.create")
    def plain():
        text = "Hello responses"
        raw = client.responses.with_raw_response.create(
            model=model,
            instructions="Be brief.",
            input=text,
            max_output_tokens=50,
            metadata={"ticket": "7"},
            extra_body=pin,
        )
        assert raw.headers["x-gammainfra-provider"] == provider, raw.headers
        r = raw.parse()
        assert r.object == "response" and r.status == "completed", r
        assert r.id.startswith("resp_"), r.id
        assert r.output_text == reply(text), r.output_text
        # Like chat completions, the answer names the model that served it.
        assert r.model == raw.headers["x-gammainfra-upstream-model"] and r.store is False, r
        assert r.metadata == {"ticket": "7"}, r.metadata
        # The instructions are a system prompt: Anthropic and Bedrock take it apart.
        system_messages = 1 if provider == "openai" else 0
        assert r.usage.input_tokens == input_tokens("Be brief.", text, messages=1 + system_messages), r.usage
        assert r.usage.output_tokens == output_tokens(text), r.usage
        assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens, r.usage
        assert float(r.usage.model_extra["cost_usd"]) > 0, r.usage

    @check(f"openai[{provider}] responses.stream helper")
    def stream_helper():
        text = "Hello stream of responses"
        with client.responses.stream(
            model=model,
            input=[{"role": "user", "content": [{"type": "input_text", "text": text}]}],
            max_output_tokens=50,
            extra_body=pin,
        ) as s:
            kinds = []
            deltas = []
            for e in s:
                kinds.append(e.type)
                if e.type == "response.output_text.delta":
                    deltas.append(e.delta)
            final = s.get_final_response()
        assert kinds[:2] == ["response.created", "response.in_progress"], kinds
        assert kinds[-1] == "response.completed", kinds
        assert "".join(deltas) == reply(text), deltas
        assert final.output_text == reply(text), final
        assert final.usage.output_tokens == output_tokens(text), final.usage
        assert float(final.usage.model_extra["cost_usd"]) > 0, final.usage

    @check(f"openai[{provider}] responses function tool round trip")
    def tools():
        ask = [{"role": "user", "content": "find cats"}]
        r = client.responses.create(
            model=model, input=ask, tools=TOOLS, tool_choice="required", max_output_tokens=100, extra_body=pin
        )
        calls = [o for o in r.output if o.type == "function_call"]
        assert len(calls) == 1, r.output
        call = calls[0]
        assert call.name == "lookup" and json.loads(call.arguments) == {"query": "find cats"}, call
        # Streamed, the SDK accumulates the call from the argument deltas.
        with client.responses.stream(
            model=model, input=ask, tools=TOOLS, tool_choice="required", max_output_tokens=100, extra_body=pin
        ) as s:
            done = [e for e in s if e.type == "response.function_call_arguments.done"]
            final = s.get_final_response()
        assert [json.loads(e.arguments) for e in done] == [{"query": "find cats"}], done
        streamed = [o for o in final.output if o.type == "function_call"]
        assert len(streamed) == 1 and streamed[0].name == "lookup", final.output
        answer = client.responses.create(
            model=model,
            tools=TOOLS,
            max_output_tokens=100,
            input=ask
            + [
                call.model_dump(exclude_none=True),
                {"type": "function_call_output", "call_id": call.call_id, "output": "three cats"},
            ],
            extra_body=pin,
        )
        assert answer.output_text == reply("three cats"), answer.output

    @check(f"openai[{provider}] responses: stored state is a 400")
    def stateful():
        e = expect(
            openai.BadRequestError,
            lambda: client.responses.create(model=model, input="hi", previous_response_id="resp_1", extra_body=pin),
            400,
            "invalid_request_error",
        )
        assert e.body["param"] == "previous_response_id", e.body


for _provider, _model in ROUTES.items():
    per_provider(_provider, _model)
