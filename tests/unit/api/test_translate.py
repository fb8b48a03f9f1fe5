import types
from typing import Any

import msgspec
import pytest

from services.api.answer import Answer
from services.api.dialects.ai import translate as ai
from services.api.dialects.ai.schemas import AiChatRequest, AiCompletionRequest, AiMessage
from services.api.dialects.openai import translate as oa
from services.api.dialects.openai.schemas import ChatCompletionRequest, CompletionRequest
from shared.catalog import Catalog, load_catalog
from shared.errors import ErrorCode, InvalidRequestError
from shared.events import Usage
from shared.jobs import ChatMessage, ImagePart, SamplingParams, TextPart, ToolCall, ToolSpec

CREATED = 1_700_000_000
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _chat(**fields: Any) -> ChatCompletionRequest:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **fields}
    return msgspec.convert(body, ChatCompletionRequest)


def _completion(**fields: Any) -> CompletionRequest:
    return msgspec.convert({"model": "gpt-3.5-turbo-instruct", "prompt": "Say", **fields}, CompletionRequest)


# --- OpenAI: messages ------------------------------------------------------------------------------


def test_to_messages_maps_developer_role_to_system():
    body = _chat(messages=[{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "hi"}])

    assert oa.to_messages(body.messages) == [
        ChatMessage(role="system", content="Be terse."),
        ChatMessage(role="user", content="hi"),
    ]


def test_to_messages_converts_text_image_and_refusal_parts():
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    assistant = [{"type": "refusal", "refusal": "I can't."}]
    body = _chat(messages=[{"role": "user", "content": content}, {"role": "assistant", "content": assistant}])

    assert oa.to_messages(body.messages) == [
        ChatMessage(
            role="user",
            content=[
                TextPart(text="What is this?"),
                ImagePart(url="https://x.test/a.png", detail="high"),
                ImagePart(url="data:image/png;base64,AAAA"),
            ],
        ),
        ChatMessage(role="assistant", content=[TextPart(text="I can't.")]),
    ]


def test_to_messages_keeps_tool_calls_and_tool_results():
    messages = [
        {"role": "user", "content": "Weather?", "name": "alice"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"P"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "21 C"},
    ]

    assert oa.to_messages(_chat(messages=messages).messages) == [
        ChatMessage(role="user", content="Weather?", name="alice"),
        ChatMessage(
            role="assistant",
            content=None,
            tool_calls=[
                ToolCall(id="call_1", name="get_weather", arguments='{"city":"P"}'),
                ToolCall(id="call_2", name="get_time", arguments=""),
            ],
        ),
        ChatMessage(role="tool", content="21 C", tool_call_id="call_1"),
    ]


def test_to_messages_rejects_tool_message_without_call_id():
    body = _chat(messages=[{"role": "user", "content": "a"}, {"role": "tool", "content": "21 C"}])

    with pytest.raises(InvalidRequestError) as info:
        oa.to_messages(body.messages)

    assert info.value.param == "messages.[1].tool_call_id"
    assert info.value.code == ErrorCode.INVALID_REQUEST


def test_to_messages_rejects_user_message_without_content():
    body = _chat(messages=[{"role": "user"}])

    with pytest.raises(InvalidRequestError) as info:
        oa.to_messages(body.messages)

    assert info.value.param == "messages.[0].content"


# --- OpenAI: params --------------------------------------------------------------------------------


def test_to_params_maps_every_chat_field():
    body = _chat(
        temperature=0.3,
        top_p=0.8,
        max_tokens=100,
        stop=["END", "STOP"],
        seed=11,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        tools=[{"type": "function", "function": {"name": "get_weather", "description": "W", "parameters": SCHEMA}}],
        tool_choice="required",
        response_format={"type": "json_object"},
    )

    assert oa.to_params(body) == SamplingParams(
        temperature=0.3,
        top_p=0.8,
        max_tokens=100,
        stop=["END", "STOP"],
        seed=11,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        tools=[ToolSpec(name="get_weather", description="W", parameters=SCHEMA)],
        tool_choice="required",
        response_format={"type": "json_object"},
    )


def test_to_params_defaults_for_minimal_chat():
    assert oa.to_params(_chat()) == SamplingParams()


def test_to_params_max_completion_tokens_wins_over_max_tokens():
    assert oa.to_params(_chat(max_tokens=100, max_completion_tokens=50)).max_tokens == 50
    assert oa.to_params(_chat(max_completion_tokens=70)).max_tokens == 70
    assert oa.to_params(_chat(max_tokens=100)).max_tokens == 100


def test_to_params_stop_string_becomes_list():
    assert oa.to_params(_chat(stop="\n\n")).stop == ["\n\n"]
    assert oa.to_params(_completion(stop="END")).stop == ["END"]


@pytest.mark.parametrize("n", [9, 128])
def test_to_params_rejects_n_above_eight(n):
    with pytest.raises(InvalidRequestError) as info:
        oa.to_params(_chat(n=n))

    assert info.value.param == "n"
    assert info.value.code == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize("n", [1, 2, 8])
def test_to_params_accepts_n_up_to_eight(n):
    assert oa.to_params(_chat(n=n)).n == n


def test_to_params_legacy_completion_defaults_max_tokens_to_16():
    params = oa.to_params(_completion(temperature=1.0))

    assert params == SamplingParams(temperature=1.0, max_tokens=16)


def test_to_params_legacy_completion_keeps_explicit_max_tokens():
    assert oa.to_params(_completion(max_tokens=5)).max_tokens == 5


def test_to_params_legacy_completion_takes_n_up_to_eight():
    assert oa.to_params(_completion(n=3)).n == 3
    with pytest.raises(InvalidRequestError):
        oa.to_params(_completion(n=9))


def test_usage_object_with_and_without_usage():
    usage = Usage(seq=1, prompt_tokens=10, completion_tokens=4, cached_tokens=2, reasoning_tokens=1)

    assert oa.usage_object(usage) == {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 1},
    }
    assert oa.usage_object(None) == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


# --- OpenAI: response bodies -----------------------------------------------------------------------


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oa, "time", types.SimpleNamespace(time=lambda: CREATED + 0.9))


USAGE = Usage(seq=3, prompt_tokens=5, completion_tokens=2)
USAGE_JSON = {
    "prompt_tokens": 5,
    "completion_tokens": 2,
    "total_tokens": 7,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


@pytest.mark.usefixtures("fixed_clock")
def test_chat_body_text_answer_shape():
    answer = Answer(text="Hi!", usage=USAGE, finish_reason="stop", model="gpt-4o-2024-08-06")

    assert msgspec.json.decode(oa.chat_body("chatcmpl-1", "gpt-4o", answer)) == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": CREATED,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi!", "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE_JSON,
    }  # no system_fingerprint without an upstream's (OpenAI's schema has no null for it)


@pytest.mark.usefixtures("fixed_clock")
def test_chat_body_tool_call_answer_has_null_content():
    answer = Answer(
        tool_calls=[ToolCall(id="call_1", name="get_weather", arguments='{"city":"P"}')],
        finish_reason="tool_calls",
    )

    body = msgspec.json.decode(oa.chat_body("chatcmpl-2", "gpt-4o", answer))

    assert body["model"] == "gpt-4o"
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "annotations": [],
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"P"}'}}
        ],
    }
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


@pytest.mark.usefixtures("fixed_clock")
def test_chat_body_empty_answer_has_empty_string_content():
    body = msgspec.json.decode(oa.chat_body("chatcmpl-3", "m", Answer()))

    assert body["choices"][0]["message"]["content"] == ""


@pytest.mark.usefixtures("fixed_clock")
def test_chat_body_includes_reasoning_content():
    body = msgspec.json.decode(oa.chat_body("chatcmpl-4", "m", Answer(text="42", reasoning="think")))

    assert body["choices"][0]["message"]["reasoning_content"] == "think"
    assert body["choices"][0]["message"]["content"] == "42"


@pytest.mark.usefixtures("fixed_clock")
def test_completion_body_shape():
    answer = Answer(text="\n\nThis is a test", usage=USAGE, finish_reason="length")

    assert msgspec.json.decode(oa.completion_body("cmpl-1", "gpt-3.5-turbo-instruct", answer)) == {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": CREATED,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"text": "\n\nThis is a test", "index": 0, "logprobs": None, "finish_reason": "length"}],
        "usage": USAGE_JSON,
    }


# --- AI dialect ------------------------------------------------------------------------------------


def _ai_chat(**fields: Any) -> AiChatRequest:
    return AiChatRequest(messages=[AiMessage(role="user", content="hi")], **fields)


def test_choose_model_defaults_to_openai_when_available(catalog):
    assert ai.choose_model(catalog, frozenset({"openai", "echo"}), _ai_chat()) == ("openai", "gpt-4o-mini")


def test_choose_model_defaults_to_echo_without_openai(catalog):
    assert ai.choose_model(catalog, frozenset({"anthropic", "echo"}), _ai_chat()) == ("echo", "echo")


@pytest.mark.parametrize(
    ("provider", "model"),
    [("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-flash"), ("echo", "echo"), ("openai", "gpt-4o-mini")],
)
def test_choose_model_explicit_provider_uses_its_default_model(catalog, provider, model):
    body = _ai_chat(provider=provider)

    assert ai.choose_model(catalog, frozenset({"openai", "echo"}), body) == (provider, model)


def test_choose_model_strips_provider_prefix(catalog):
    body = _ai_chat(model="openai/gpt-4o")

    assert ai.choose_model(catalog, frozenset({"openai"}), body) == ("openai", "gpt-4o")


def test_choose_model_keeps_bare_model_and_blank_means_default(catalog):
    providers = frozenset({"openai"})

    assert ai.choose_model(catalog, providers, _ai_chat(provider="anthropic", model="claude-x")) == (
        "anthropic",
        "claude-x",
    )
    assert ai.choose_model(catalog, providers, _ai_chat(provider="gemini", model="  ")) == (
        "gemini",
        "gemini-2.5-flash",
    )


def test_ai_to_messages_for_chat_keeps_roles():
    body = AiChatRequest(
        messages=[
            AiMessage(role="system", content="sys"),
            AiMessage(role="user", content="u"),
            AiMessage(role="assistant", content="a"),
        ]
    )

    assert ai.to_messages(body) == [
        ChatMessage(role="system", content="sys"),
        ChatMessage(role="user", content="u"),
        ChatMessage(role="assistant", content="a"),
    ]


def test_ai_to_messages_for_completion_puts_system_prompt_first():
    body = AiCompletionRequest(prompt="Write a haiku", system_prompt="You are a poet.")

    assert ai.to_messages(body) == [
        ChatMessage(role="system", content="You are a poet."),
        ChatMessage(role="user", content="Write a haiku"),
    ]


@pytest.mark.parametrize("system_prompt", [None, ""])
def test_ai_to_messages_for_completion_without_system_prompt(system_prompt):
    body = AiCompletionRequest(prompt="Write a haiku", system_prompt=system_prompt)

    assert ai.to_messages(body) == [ChatMessage(role="user", content="Write a haiku")]


def test_ai_to_params_uses_defaults_and_explicit_values():
    assert ai.to_params(_ai_chat()) == SamplingParams(temperature=0.7, max_tokens=1000)
    assert ai.to_params(AiCompletionRequest(prompt="p", temperature=0.0, max_tokens=5)) == SamplingParams(
        temperature=0.0, max_tokens=5
    )


def test_ai_answer_body_shape():
    answer = Answer(text="Hello", usage=Usage(seq=1, prompt_tokens=3, completion_tokens=1), model="echo")

    assert msgspec.json.decode(ai.answer_body("content", "fallback", answer)) == {
        "content": "Hello",
        "model": "echo",
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    assert msgspec.json.decode(ai.answer_body("completion", "fallback", Answer())) == {
        "completion": "",
        "model": "fallback",
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
