"""/api/ai/* over real HTTP: a real worker, Redis and the fake providers."""

import json
import time

import httpx
import pytest

from tests.fakes.upstream import DropAfter, Fail, Reply, Stall
from tests.harness import auth, sse_events, token
from tests.stack import Stack

CHAT = "/api/ai/chat"
COMPLETIONS = "/api/ai/completions"


def post(stack: Stack, path: str, body: object, tier: str = "pro", **kwargs: object) -> httpx.Response:
    return httpx.post(f"{stack.url}{path}", json=body, headers=auth(tier), timeout=30, **kwargs)  # type: ignore[arg-type]


def test_chat_echo_returns_content_model_and_usage(stack: Stack) -> None:
    body = {"messages": [{"role": "user", "content": "Count to five."}], "provider": "echo"}
    response = post(stack, CHAT, body)
    assert response.status_code == 200
    assert response.json() == {
        "content": "Count to five.",
        "model": "echo",
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
    }
    assert response.headers["x-request-id"].startswith("req_")


def test_chat_stream_sends_tokens_then_done(stack: Stack) -> None:
    body = {"messages": [{"role": "user", "content": "one two three four"}], "provider": "echo", "stream": True}
    response = post(stack, CHAT, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    assert "".join(json.loads(e)["token"] for e in events[:-1]) == "one two three four"


def test_chat_defaults_to_openai_with_temperature_and_max_tokens(stack: Stack) -> None:
    stack.fake.push(Reply(text="Paris is the capital."))
    body = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]}
    response = post(stack, CHAT, body)
    assert response.status_code == 200, response.text
    assert response.json()["content"] == "Paris is the capital."
    assert response.json()["model"] == "gpt-4o-mini-2024-07-18"  # the model that answered
    sent = stack.fake.requests[-1]
    assert sent.provider == "openai"
    assert sent.headers["authorization"] == f"Bearer {stack.fake.keys['openai']}"
    assert sent.body["temperature"] == 0.7
    assert sent.body["max_completion_tokens"] == 1000
    assert sent.body["stream"] is True
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]


@pytest.mark.parametrize(("provider", "model"), [("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-flash")])
def test_completions_reach_each_provider_with_the_system_prompt(stack: Stack, provider: str, model: str) -> None:
    body = {"prompt": "Say hi", "system_prompt": "You are terse.", "provider": provider, "max_tokens": 50}
    response = post(stack, COMPLETIONS, body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["completion"] == f"Hello from the fake {provider}!"
    assert result["model"] == model
    assert result["usage"]["total_tokens"] == result["usage"]["prompt_tokens"] + result["usage"]["completion_tokens"]
    sent = stack.fake.requests[-1]
    assert sent.provider == provider
    if provider == "anthropic":
        assert sent.body["system"] == "You are terse."
        assert sent.body["max_tokens"] == 50
        assert sent.body["messages"] == [{"role": "user", "content": "Say hi"}]
    else:
        assert sent.body["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
        assert sent.body["generationConfig"]["maxOutputTokens"] == 50
        assert "key" not in sent.query


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 2.5}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 16385}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({}, None),
        ({"messages": [{"role": "user", "content": "x"}], "provider": "mistral"}, "provider"),
    ],
)
def test_chat_rejects_bad_input_with_400(stack: Stack, body: dict[str, object], param: str | None) -> None:
    response = post(stack, CHAT, body)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid_request"
    assert error["detail"]
    assert error.get("param") == param


def test_completions_require_a_prompt(stack: Stack) -> None:
    for body in ({}, {"prompt": ""}):
        response = post(stack, COMPLETIONS, body)
        assert response.status_code == 400
        assert "prompt" in response.json()["detail"]


def test_malformed_json_is_a_400(stack: Stack) -> None:
    response = httpx.post(f"{stack.url}{CHAT}", content=b"{not json", headers=auth(), timeout=10)
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_auth_failures_are_401_and_free_tier_is_403(stack: Stack) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    cases = {
        "missing": {},
        "bad signature": {"authorization": f"Bearer {token()}x"},
        "expired": {"authorization": f"Bearer {token(ttl=-120)}"},
        "not a jwt": {"authorization": "Bearer nope"},
        "wrong scheme": {"authorization": f"Basic {token()}"},
    }
    for name, headers in cases.items():
        response = httpx.post(f"{stack.url}{CHAT}", json=body, headers=headers, timeout=10)
        assert response.status_code == 401, name
        assert response.json()["code"] == "authentication"
    for path in (CHAT, COMPLETIONS):
        response = post(stack, path, {**body, "prompt": "hi", "stream": True}, tier="free")
        assert response.status_code == 403
        assert "Pro or Enterprise" in response.json()["detail"]


def test_provider_failure_before_the_stream_keeps_its_status(stack: Stack) -> None:
    stack.fake.push(Fail(429, retry_after=30))  # longer than the worker waits: not retried
    body = {"messages": [{"role": "user", "content": "hi"}], "provider": "openai", "stream": True}
    response = post(stack, CHAT, body)
    assert response.status_code == 429
    assert response.json()["code"] == "upstream_rate_limited"
    assert "openai returned HTTP 429" in response.json()["detail"]
    assert stack.fake.keys["openai"] not in response.text


def test_provider_failure_during_the_stream_is_an_error_event_then_done(stack: Stack) -> None:
    stack.fake.push(DropAfter(tokens=2))
    body = {"messages": [{"role": "user", "content": "hi"}], "provider": "anthropic", "stream": True}
    response = post(stack, CHAT, body)
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "upstream_incomplete"
    assert "anthropic" in error["detail"]
    assert "".join(json.loads(e)["token"] for e in events[:-2]) == "Hello from"


def test_client_disconnect_closes_the_upstream_call(stack: Stack) -> None:
    stack.fake.push(Stall(after=1, seconds=20))
    body = {"messages": [{"role": "user", "content": "hi"}], "provider": "openai", "stream": True}
    with httpx.stream("POST", f"{stack.url}{CHAT}", json=body, headers=auth(), timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                break  # the first token arrived; now hang up
    hung_up = time.monotonic()
    disconnected = stack.fake.wait_for_disconnect(timeout=5)
    assert disconnected is not None, "the worker kept the upstream call open"
    assert disconnected - hung_up < 2.0


def test_client_disconnect_without_streaming_also_closes_the_upstream_call(stack: Stack) -> None:
    stack.fake.push(Stall(after=1, seconds=20))
    body = {"messages": [{"role": "user", "content": "hi"}], "provider": "gemini"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{stack.url}{CHAT}", json=body, headers=auth(), timeout=httpx.Timeout(10, read=1.0))
    hung_up = time.monotonic()
    disconnected = stack.fake.wait_for_disconnect(timeout=5)
    assert disconnected is not None, "the worker kept the upstream call open"
    assert disconnected - hung_up < 2.0


def test_client_disconnect_before_the_first_token_closes_the_upstream_call(stack: Stack) -> None:
    stack.fake.push(Stall(after=0, seconds=20))
    body = {"messages": [{"role": "user", "content": "hi"}], "provider": "anthropic", "stream": True}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{stack.url}{CHAT}", json=body, headers=auth(), timeout=httpx.Timeout(10, read=0.5))
    hung_up = time.monotonic()
    disconnected = stack.fake.wait_for_disconnect(timeout=5)
    assert disconnected is not None, "the worker kept the upstream call open"
    assert disconnected - hung_up < 1.0  # the status is held back for the first token: still watched
