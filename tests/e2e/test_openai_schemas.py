"""Conduit's OpenAI bodies and stream chunks against OpenAI's published schemas (tests/schemas), and what the SDK
reads from them: one model name and the upstream's system_fingerprint, stream or not."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.upstream import Fail, MidStreamError, Reply
from tests.harness import auth, sse_events, token
from tests.openai_schema import assert_valid
from tests.stack import Stack

MESSAGES: Any = [{"role": "user", "content": "Say hi"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}
#: (model the client names, `model` the upstream answers with, its system_fingerprint)
SERVED = [
    ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "fp_c0ndu1t0fake"),
    ("openai/gpt-4o", "gpt-4o-2024-08-06", "fp_c0ndu1t0fake"),
    ("anthropic/claude-haiku-4-5", "claude-haiku-4-5", None),
    ("gemini-2.5-flash", "gemini-2.5-flash", None),
    ("echo", "echo", None),
]


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key=token(), max_retries=0) as c:
        yield c


def _post(stack: Stack, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{stack.url}{path}", json=body, headers=auth(), timeout=30)


def _chunks(response: httpx.Response) -> list[dict[str, Any]]:
    events = sse_events(response.text)
    assert events[-1] == "[DONE]", events
    return [json.loads(event) for event in events[:-1]]


@pytest.mark.parametrize(("name", "model", "fingerprint"), SERVED)
def test_stream_and_body_name_the_same_model_and_pass_the_fingerprint_through(
    client: openai.OpenAI, name: str, model: str, fingerprint: str | None
) -> None:
    body = client.chat.completions.create(model=name, messages=MESSAGES)
    chunks = list(client.chat.completions.create(model=name, messages=MESSAGES, stream=True))
    assert body.model == model
    assert {chunk.model for chunk in chunks} == {model}
    assert body.system_fingerprint == fingerprint
    assert {chunk.system_fingerprint for chunk in chunks} == {fingerprint}


@pytest.mark.parametrize("name", [served[0] for served in SERVED])
def test_chat_bodies_and_chunks_match_openais_schemas(stack: Stack, name: str) -> None:
    body = {"model": name, "messages": MESSAGES}
    answer = _post(stack, "/v1/chat/completions", body)
    assert answer.status_code == 200, answer.text
    assert_valid(answer.json(), "CreateChatCompletionResponse")
    assert "null" not in answer.text.split('"system_fingerprint":', 1)[-1][:5]  # absent or a string, never null
    streamed = _post(stack, "/v1/chat/completions", body | {"stream": True, "stream_options": {"include_usage": True}})
    for chunk in _chunks(streamed):
        assert_valid(chunk, "CreateChatCompletionStreamResponse")
        assert chunk.get("system_fingerprint", "") is not None


def test_tool_calls_logprobs_and_usage_match_openais_schemas(stack: Stack) -> None:
    stack.fake.push(Reply(tool_calls=[("get_weather", {"city": "Paris"})]))
    stack.fake.push(Reply(tool_calls=[("get_weather", {"city": "Paris"})]))
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "tools": [TOOL]}
    answer = _post(stack, "/v1/chat/completions", body).json()
    assert_valid(answer, "CreateChatCompletionResponse")
    assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    for chunk in _chunks(_post(stack, "/v1/chat/completions", body | {"stream": True})):
        assert_valid(chunk, "CreateChatCompletionStreamResponse")
    asked = {"model": "gpt-4o-mini", "messages": MESSAGES, "logprobs": True, "top_logprobs": 2}
    answer = _post(stack, "/v1/chat/completions", asked).json()
    assert_valid(answer, "CreateChatCompletionResponse")
    tokens = [entry["token"] for entry in answer["choices"][0]["logprobs"]["content"]]
    assert tokens == ["Hello", " from", " the", " fake", " openai", "!"]
    chunks = _chunks(_post(stack, "/v1/chat/completions", asked | {"stream": True}))
    for chunk in chunks:
        assert_valid(chunk, "CreateChatCompletionStreamResponse")
    streamed = [
        e["token"]
        for c in chunks
        if c["choices"] and c["choices"][0]["logprobs"]
        for e in c["choices"][0]["logprobs"]["content"]
    ]
    assert streamed == tokens


@pytest.mark.parametrize("name", ["gpt-3.5-turbo-instruct", "anthropic/claude-haiku-4-5", "gemini-2.5-flash", "echo"])
def test_completions_match_openais_schemas(stack: Stack, name: str) -> None:
    body = {"model": name, "prompt": "Say hi", "max_tokens": 5}
    answer = _post(stack, "/v1/completions", body)
    assert answer.status_code == 200, answer.text
    assert_valid(answer.json(), "CreateCompletionResponse")
    for chunk in _chunks(_post(stack, "/v1/completions", body | {"stream": True})):
        # OpenAI streams completions as this same object, with `finish_reason: null` until the last choice (which
        # its schema does not allow, and its servers and SDKs do)
        choices = [c | {"finish_reason": c["finish_reason"] or "stop"} for c in chunk["choices"]]
        assert_valid(chunk | {"choices": choices}, "CreateCompletionResponse")


def test_legacy_completions_with_logprobs_come_from_the_upstreams_completions_endpoint(stack: Stack) -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 3, "logprobs": 2}
    answer = _post(stack, "/v1/completions", body).json()
    assert stack.fake.requests[-1].path == "/v1/completions"
    assert_valid(answer, "CreateCompletionResponse")
    assert answer["choices"][0]["text"] == "Hello from the"
    assert answer["choices"][0]["logprobs"]["tokens"] == ["Hello", " from", " the"]
    chunks = _chunks(_post(stack, "/v1/completions", body | {"stream": True}))
    assert [
        t for c in chunks if c["choices"] and c["choices"][0]["logprobs"] for t in c["choices"][0]["logprobs"]["tokens"]
    ] == ["Hello", " from", " the"]


def test_error_bodies_and_frames_match_openais_schema(stack: Stack) -> None:
    bad = _post(stack, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": "nope"})
    assert bad.status_code == 400
    assert_valid(bad.json(), "ErrorResponse")
    anonymous = httpx.post(f"{stack.url}/v1/chat/completions", json={"model": "echo", "messages": MESSAGES})
    assert anonymous.status_code == 401
    assert_valid(anonymous.json(), "ErrorResponse")
    stack.fake.push(Fail(400, message="Bad things"), provider="openai")
    upstream = _post(stack, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES})
    assert upstream.status_code == 400
    assert_valid(upstream.json(), "ErrorResponse")
    stack.fake.push(MidStreamError(after=2), provider="openai")
    events = sse_events(
        _post(stack, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}).text
    )
    assert_valid(json.loads(events[-2]), "ErrorResponse")
