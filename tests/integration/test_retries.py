"""Upstream failures before the first token are retried (honouring Retry-After), then fall back; after it, never."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.upstream import DropAfter, Fail, FakeUpstream
from tests.harness import auth, sse_events
from tests.stack import Stack, own_stack

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def fallback_stack(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Stack]:
    logs: Path = tmp_path_factory.mktemp("fallbacks")
    catalog = logs / "providers.toml"
    text = Path("deploy/providers.toml").read_text()
    catalog.write_text(text.replace("[fallbacks]\n", '[fallbacks]\n"openai/*" = ["anthropic/claude-haiku-4-5"]\n'))
    env = {"CONDUIT_CATALOG_PATH": str(catalog), "CONDUIT_UPSTREAM_RETRIES": "1", "CONDUIT_RETRY_BASE_DELAY": "0.05"}
    with own_stack(logs, fake, worker_env=env) as stack:
        yield stack


def test_a_rate_limited_call_is_retried_after_retry_after_and_then_answers(stack: Stack) -> None:
    stack.fake.push(Fail(429, retry_after=1), provider="openai")
    stack.fake.push(Fail(429, retry_after=1), provider="openai")
    started = time.monotonic()
    response = httpx.post(f"{stack.url}/v1/chat/completions", json=CHAT, headers=auth(), timeout=30)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the fake openai!"
    calls = [r for r in stack.fake.requests if r.path == "/v1/chat/completions"]
    assert len(calls) == 3
    assert calls[1].started - calls[0].started >= 1.0
    assert calls[2].started - calls[1].started >= 1.0
    assert time.monotonic() - started < 10


def test_retries_are_bounded_and_the_status_reaches_the_client(stack: Stack) -> None:
    for _ in range(3):
        stack.fake.push(Fail(503), provider="openai")
    response = httpx.post(f"{stack.url}/v1/chat/completions", json=CHAT, headers=auth(), timeout=30)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_overloaded"
    assert len([r for r in stack.fake.requests if r.path == "/v1/chat/completions"]) == 3  # 1 + 2 retries


def test_a_failure_after_the_first_token_is_an_error_frame_and_never_a_second_call(stack: Stack) -> None:
    stack.fake.push(DropAfter(tokens=2), provider="openai")
    body = {**CHAT, "stream": True}
    response = httpx.post(f"{stack.url}/v1/chat/completions", json=body, headers=auth(), timeout=30)
    frames = sse_events(response.text)
    assert frames[-1] == "[DONE]"
    assert json.loads(frames[-2])["error"]["code"] == "upstream_incomplete"
    assert len([r for r in stack.fake.requests if r.path == "/v1/chat/completions"]) == 1


def test_a_model_that_keeps_failing_falls_back_to_the_next_in_the_chain(fallback_stack: Stack) -> None:
    fallback_stack.fake.push(Fail(500), provider="openai")
    fallback_stack.fake.push(Fail(500), provider="openai")
    body = {**CHAT, "stream": True}
    response = httpx.post(f"{fallback_stack.url}/v1/chat/completions", json=body, headers=auth(), timeout=30)
    assert response.status_code == 200
    chunks = [json.loads(frame) for frame in sse_events(response.text)[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello from the fake anthropic!"
    paths = [r.path for r in fallback_stack.fake.requests]
    assert paths == ["/v1/chat/completions", "/v1/chat/completions", "/v1/messages"]
    assert fallback_stack.fake.requests[-1].body["model"] == "claude-haiku-4-5"
