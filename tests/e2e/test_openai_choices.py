"""``n`` answers (``n > 1``) through the real stack, read by the official ``openai`` SDK, streamed and not: native
on OpenAI (``n``) and Gemini (``candidateCount``), as ``n`` calls at once on Anthropic and echo. Each answer is
its own choice, with its index, its text and its finish reason; the usage covers them all."""

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.harness import token
from tests.stack import Stack

N = 3


def _marked(text: str) -> list[str]:
    """The fake's ``n`` answers: the first as is, the others marked ``[k] ``."""
    return [text, *(f"[{k}] {text}" for k in range(1, N))]


MODELS = {
    "openai": ("gpt-4o-mini", _marked("Hello from the fake openai!")),
    "gemini": ("gemini-2.5-flash", _marked("Hello from the fake gemini!")),
    "anthropic": ("claude-haiku-4-5", ["Hello from the fake anthropic!"] * N),  # n calls, each the same answer
}
MESSAGES: Any = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key=token("pro"), max_retries=0, timeout=30) as sdk:
        yield sdk


@pytest.mark.parametrize("provider", list(MODELS))
def test_n_answers_in_one_body(client: openai.OpenAI, stack: Stack, provider: str) -> None:
    model, texts = MODELS[provider]
    single = client.chat.completions.create(model=model, messages=MESSAGES)
    answer = client.chat.completions.create(model=model, messages=MESSAGES, n=N)
    assert [choice.index for choice in answer.choices] == list(range(N))
    assert [choice.message.content for choice in answer.choices] == texts
    assert {choice.finish_reason for choice in answer.choices} == {"stop"}
    assert answer.usage is not None and single.usage is not None
    assert answer.usage.completion_tokens >= N * single.usage.completion_tokens


@pytest.mark.parametrize("provider", list(MODELS))
def test_n_answers_streamed_with_their_indices(client: openai.OpenAI, provider: str) -> None:
    model, texts = MODELS[provider]
    stream = client.chat.completions.create(
        model=model, messages=MESSAGES, n=N, stream=True, stream_options={"include_usage": True}
    )
    content: dict[int, str] = {}
    finishes: dict[int, str] = {}
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            content[choice.index] = content.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert [content[index] for index in range(N)] == texts
    assert finishes == dict.fromkeys(range(N), "stop")
    assert usage is not None and usage.completion_tokens > 0


def test_echo_gives_n_answers_too(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="echo", messages=MESSAGES, n=2)
    assert [choice.message.content for choice in answer.choices] == ["Say hello", "Say hello"]


def test_more_than_eight_is_a_400_naming_n(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, n=9)
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "n"
