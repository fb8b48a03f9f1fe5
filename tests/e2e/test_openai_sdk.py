"""The official ``openai`` SDK, unchanged, with ``base_url`` pointed at Conduit."""

from collections.abc import Iterator

import openai
import pytest

from tests.fakes.upstream import DropAfter, Fail, Reply
from tests.harness import token
from tests.stack import Stack


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key=token("pro"), max_retries=0, timeout=30) as sdk:
        yield sdk


def test_chat_completion(client: openai.OpenAI, stack: Stack) -> None:
    stack.fake.push(Reply(text="Four."))
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "2+2?"}],
        temperature=0.2,
        max_tokens=20,
    )
    assert completion.choices[0].message.content == "Four."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 2  # the fake counts "Four" and "."
    sent = stack.fake.requests[-1].body
    assert sent["temperature"] == 0.2 and sent["max_completion_tokens"] == 20


def test_streaming_with_usage(client: openai.OpenAI, stack: Stack) -> None:
    stack.fake.push(Reply(tokens=["The", " answer", " is", " 4", "."], delay=0.01))
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "2+2?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == "The answer is 4."
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 5


def test_streaming_from_anthropic_and_gemini_through_the_openai_sdk(client: openai.OpenAI) -> None:
    for model, expected in (("claude-haiku-4-5", "anthropic"), ("gemini-2.5-flash", "gemini")):
        stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == f"Hello from the fake {expected}!"


def test_tool_calls_round_trip(client: openai.OpenAI, stack: Stack) -> None:
    stack.fake.push(Reply(tool_calls=[("get_weather", {"city": "Paris"})]))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    completion = client.chat.completions.create(
        model="claude-haiku-4-5",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=tools,  # type: ignore[arg-type]  # a plain dict, as users write it
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert call.function.arguments.replace(" ", "") == '{"city":"Paris"}'  # type: ignore[union-attr]
    assert stack.fake.requests[-1].body["tools"][0]["name"] == "get_weather"


def test_models(client: openai.OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert {"openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "echo/echo"} <= ids
    assert client.models.retrieve("echo").owned_by == "echo"
    assert client.models.retrieve("anthropic/claude-sonnet-4-5").owned_by == "anthropic"
    assert client.models.retrieve("gemini/gemini-2.5-flash").owned_by == "gemini"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_errors_map_to_the_sdk_exceptions(client: openai.OpenAI, stack: Stack) -> None:
    messages = [{"role": "user", "content": "hi"}]
    wrong = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="wrong", max_retries=0)
    with wrong, pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    free = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=token("free"), max_retries=0)
    with free, pytest.raises(openai.PermissionDeniedError, match="Pro or Enterprise"):
        free.chat.completions.create(model="echo", messages=messages)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="echo", messages=messages, temperature=3)  # type: ignore[arg-type]
    assert bad.value.param == "temperature"
    stack.fake.push(Fail(429, retry_after=30))  # longer than the worker waits: not retried
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    for _ in range(3):  # the first call and the worker's two retries
        stack.fake.push(Fail(503))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)  # type: ignore[arg-type]


def test_failure_mid_stream_raises_in_the_sdk(client: openai.OpenAI, stack: Stack) -> None:
    stack.fake.push(DropAfter(tokens=2))
    stream = client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received = ""
    with pytest.raises(openai.APIError, match="gemini"):
        for chunk in stream:
            received += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert received.startswith("Hello")
