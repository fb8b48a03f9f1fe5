"""Nothing a client sends is dropped: every field of OpenAI's chat and completions requests (read from OpenAI's
published schema in tests/schemas) reaches an OpenAI-compatible upstream as sent; Anthropic and Gemini get the
documented mapping or a 400 naming the field and the provider.

The requests go through the openai SDK, as clients send them (fields the SDK has no argument for go in
``extra_body``, as its documentation says)."""

import inspect
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.upstream import Recorded
from tests.harness import token
from tests.openai_schema import request_fields
from tests.stack import Stack

TOOL: Any = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a word up",
        "parameters": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
    },
}

#: a non-default value of every chat field (the gateway's own fields, below, aside)
CHAT_VALUES: dict[str, Any] = {
    "audio": {"voice": "alloy", "format": "wav"},
    "frequency_penalty": 0.5,
    "function_call": "auto",
    "functions": [TOOL["function"]],
    "logit_bias": {"50256": -100},
    "logprobs": True,
    "metadata": {"team": "eval", "run": "7"},
    "modalities": ["text", "audio"],
    "moderation": {"model": "omni-moderation-latest"},
    "n": 1,
    "parallel_tool_calls": False,
    "prediction": {"type": "content", "content": "Hello"},
    "presence_penalty": 0.25,
    "prompt_cache_key": "conduit-tests",
    "prompt_cache_options": {"mode": "implicit"},
    "prompt_cache_retention": "24h",
    "reasoning_effort": "low",
    "response_format": {"type": "json_object"},
    "safety_identifier": "user-7f3a",
    "seed": 7,
    "service_tier": "flex",
    "stop": ["\n\n", "END"],
    "store": True,
    "temperature": 0.3,
    "tool_choice": "auto",
    "tools": [TOOL],
    "top_logprobs": 2,
    "top_p": 0.9,
    "user": "user-7f3a",
    "verbosity": "low",
    "web_search_options": {"search_context_size": "medium"},
}
#: the gateway's own: the model is resolved, messages are translated, the upstream is always streamed with
#: usage, and the token cap is the tier's (named as the provider wants it); each is checked on its own below
GATEWAY_OWN = {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "prompt"}

COMPLETION_VALUES: dict[str, Any] = {
    "best_of": 2,
    "echo": True,
    "frequency_penalty": 0.5,
    "logit_bias": {"50256": -100},
    "logprobs": 2,
    "n": 1,
    "presence_penalty": 0.25,
    "seed": 7,
    "stop": ["\n\n"],
    "suffix": " and so on",
    "temperature": 0.3,
    "top_p": 0.9,
    "user": "user-7f3a",
}


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key=token("enterprise"), max_retries=0) as c:
        yield c


def _split(method: Any, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as SDK keyword arguments: the ones the SDK knows by name, the rest in ``extra_body``."""
    known = set(inspect.signature(method).parameters)
    extra = {name: value for name, value in values.items() if name not in known}
    return {name: value for name, value in values.items() if name in known} | {"extra_body": extra}


def _last_request(stack: Stack, path: str) -> Recorded:
    found = [r for r in stack.fake.requests if r.path == path]
    assert found, f"no request reached the fake at {path}"
    return found[-1]


def test_the_value_tables_cover_every_field_of_openais_requests() -> None:
    """A newer schema file with a new field fails here until the field is passed (and added above)."""
    assert set(request_fields("CreateChatCompletionRequest")) - GATEWAY_OWN == set(CHAT_VALUES)
    assert set(request_fields("CreateCompletionRequest")) - GATEWAY_OWN == set(COMPLETION_VALUES)


def test_every_chat_field_reaches_an_openai_compatible_upstream_unchanged(client: openai.OpenAI, stack: Stack) -> None:
    messages: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]
    for stream in (False, True):
        args = _split(client.chat.completions.create, CHAT_VALUES)
        answer = client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=messages, max_completion_tokens=40, stream=stream, **args
        )
        if stream:
            list(answer)
        sent = _last_request(stack, "/v1/chat/completions").body
        assert {name: sent.get(name) for name in CHAT_VALUES} == CHAT_VALUES
        assert sent["model"] == "gpt-4o-mini"
        assert sent["messages"] == messages
        assert sent["max_completion_tokens"] == 40
        assert (sent["stream"], sent["stream_options"]) == (True, {"include_usage": True})


def test_every_completion_field_reaches_the_upstreams_completions_endpoint(client: openai.OpenAI, stack: Stack) -> None:
    args = _split(client.completions.create, COMPLETION_VALUES)
    answer = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", max_tokens=5, **args)
    sent = _last_request(stack, "/v1/completions").body
    assert {name: sent.get(name) for name in COMPLETION_VALUES} == COMPLETION_VALUES
    assert (sent["model"], sent["prompt"], sent["max_tokens"]) == ("gpt-3.5-turbo-instruct", "Say hi", 5)
    assert answer.choices[0].text == "Say hiHello from the fake openai"  # echo: the prompt, then 5 tokens
    assert answer.choices[0].logprobs is not None
    assert answer.choices[0].logprobs.tokens == ["Hello", " from", " the", " fake", " openai"]


def test_a_field_the_gateway_does_not_know_still_reaches_the_upstream(client: openai.OpenAI, stack: Stack) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"vendor_knob": {"depth": 3}, "chat_template_kwargs": {"enable_thinking": False}},
    )
    sent = _last_request(stack, "/v1/chat/completions").body
    assert sent["vendor_knob"] == {"depth": 3}
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}


# field -> (what Anthropic's request body holds, what Gemini's holds); None: refused with a 400
MAPPINGS: dict[str, tuple[Any, Any]] = {
    "temperature": ({"temperature": 0.3}, {"generationConfig": {"temperature": 0.3}}),
    "top_p": ({"top_p": 0.9}, {"generationConfig": {"topP": 0.9}}),
    "stop": ({"stop_sequences": ["\n\n", "END"]}, {"generationConfig": {"stopSequences": ["\n\n", "END"]}}),
    "seed": (None, {"generationConfig": {"seed": 7}}),
    "presence_penalty": (None, {"generationConfig": {"presencePenalty": 0.25}}),
    "frequency_penalty": (None, {"generationConfig": {"frequencyPenalty": 0.5}}),
    "response_format": (
        {"tool_choice": {"type": "tool", "name": "conduit_structured_answer"}},
        {"generationConfig": {"responseMimeType": "application/json"}},
    ),
    "reasoning_effort": (
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}}},
    ),
    "user": ({"metadata": {"user_id": "user-7f3a"}}, None),
    "logprobs": (None, {"generationConfig": {"responseLogprobs": True}}),
    "n": ({}, {}),  # 1 is OpenAI's default: it asks for nothing
    "web_search_options": (
        {"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]},
        {"tools": [{"googleSearch": {}}]},
    ),
}
REFUSED_BY_BOTH = set(CHAT_VALUES) - set(MAPPINGS) - {"tools", "tool_choice", "parallel_tool_calls"}


def _contains(body: dict[str, Any], part: dict[str, Any]) -> bool:
    return all(
        _contains(body.get(key) or {}, value) if isinstance(value, dict) else body.get(key) == value
        for key, value in part.items()
    )


@pytest.mark.parametrize(
    ("provider", "model", "column"), [("anthropic", "claude-haiku-4-5", 0), ("gemini", "gemini-2.5-flash", 1)]
)
def test_anthropic_and_gemini_map_each_field_or_refuse_it_by_name(
    client: openai.OpenAI, stack: Stack, provider: str, model: str, column: int
) -> None:
    messages: Any = [{"role": "user", "content": "Say hi"}]
    expected = {field: mapping[column] for field, mapping in MAPPINGS.items()} | dict.fromkeys(REFUSED_BY_BOTH)
    for field, upstream in expected.items():
        before = len(stack.fake.requests)
        call = _split(client.chat.completions.create, {field: CHAT_VALUES[field]})
        if upstream is None:
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model=f"{provider}/{model}", messages=messages, **call)
            error = refused.value.body
            assert isinstance(error, dict), field
            assert (error["param"], error["code"]) == (field, "unsupported_parameter"), error
            assert f"'{field}'" in error["message"] and provider in error["message"], error
            assert len(stack.fake.requests) == before, f"{field} reached {provider}"
        else:
            client.chat.completions.create(model=f"{provider}/{model}", messages=messages, **call)
            sent = stack.fake.requests[-1].body
            assert _contains(sent, upstream), (field, sent)


def test_tools_and_their_options_map_to_anthropic_and_gemini(client: openai.OpenAI, stack: Stack) -> None:
    messages: Any = [{"role": "user", "content": "Look up 'gateway'"}]
    client.chat.completions.create(
        model="claude-haiku-4-5", messages=messages, tools=[TOOL], tool_choice="required", parallel_tool_calls=False
    )
    sent = stack.fake.requests[-1].body
    assert sent["tools"][0]["name"] == "lookup"
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    client.chat.completions.create(model="gemini-2.5-flash", messages=messages, tools=[TOOL], tool_choice="required")
    sent = stack.fake.requests[-1].body
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "lookup"
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    # Gemini has no such switch: the request goes as it is, the answer keeps its first call (test_openai_features)
    client.chat.completions.create(model="gemini-2.5-flash", messages=messages, tools=[TOOL], parallel_tool_calls=False)
    assert "parallel_tool_calls" not in json.dumps(stack.fake.requests[-1].body)


def test_a_refusal_in_a_stream_is_a_400_before_any_frame(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}], stream=True, logit_bias={"1": 5}
        )
    assert refused.value.body["param"] == "logit_bias"  # type: ignore[index]
