"""The OpenAI dialect over raw HTTP: exact shapes, strictness and errors (the SDK tests are in e2e/)."""

import asyncio
import json

import httpx
import pytest

from tests.fakes.upstream import MidStreamError, Reply
from tests.harness import auth, sse_events
from tests.openai_schema import assert_valid
from tests.stack import Stack


def chat(stack: Stack, body: dict[str, object], **headers: str) -> httpx.Response:
    return httpx.post(f"{stack.url}/v1/chat/completions", json=body, headers={**auth(), **headers}, timeout=30)


def test_chat_completion_has_the_openai_shape(stack: Stack) -> None:
    response = chat(stack, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "gpt-4o-mini-2024-07-18"  # the upstream's resolved model, as OpenAI answers
    assert body["system_fingerprint"] == "fp_c0ndu1t0fake"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello from the fake openai!",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_stream_frames_are_role_content_finish_usage_done(stack: Stack) -> None:
    stack.fake.push(Reply(tokens=["Hel", "lo"]))
    body = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = chat(stack, body)
    assert response.status_code == 200
    assert "\r\n" not in response.text
    frames = sse_events(response.text)
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-4o-2024-08-06" for c in chunks)
    assert all(c["system_fingerprint"] == "fp_c0ndu1t0fake" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Hello"
    assert chunks[-2]["choices"][0]["delta"] == {} and chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2
    assert stack.fake.requests[-1].body["model"] == "gpt-4o"


def test_strict_types_unknown_fields_and_error_shape(stack: Stack) -> None:
    ok = chat(stack, {"model": "echo", "messages": [{"role": "user", "content": "x"}], "some_future_field": 1})
    assert ok.status_code == 200
    bad = chat(stack, {"model": "echo", "messages": [{"role": "user", "content": "x"}], "temperature": "0.5"})
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "temperature"
    too_hot = chat(stack, {"model": "echo", "messages": [{"role": "user", "content": "x"}], "temperature": 2.5})
    assert too_hot.status_code == 400
    assert too_hot.json()["error"]["param"] == "temperature"


def test_unknown_model_is_404_model_not_found(stack: Stack) -> None:
    response = chat(stack, {"model": "llama-nope", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_request_id_is_taken_from_the_client_and_sent_upstream(stack: Stack) -> None:
    response = chat(
        stack, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}, **{"x-request-id": "abc-123"}
    )
    assert response.headers["x-request-id"] == "abc-123"
    assert stack.fake.requests[-1].headers["x-request-id"] == "abc-123"


def test_midstream_error_is_an_error_frame_then_done(stack: Stack) -> None:
    stack.fake.push(MidStreamError(after=1, message="Overloaded"))
    response = chat(stack, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True})
    frames = sse_events(response.text)
    assert frames[-1] == "[DONE]"
    error = json.loads(frames[-2])["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Overloaded" in error["message"]


def test_legacy_completions(stack: Stack) -> None:
    body = {"model": "echo", "prompt": "alpha beta gamma", "max_tokens": 2}
    response = httpx.post(f"{stack.url}/v1/completions", json=body, headers=auth(), timeout=30)
    assert response.status_code == 200
    result = response.json()
    assert result["object"] == "text_completion" and result["id"].startswith("cmpl-")
    assert result["choices"][0]["text"] == "alpha beta"
    assert result["choices"][0]["finish_reason"] == "length"
    stream = httpx.post(f"{stack.url}/v1/completions", json={**body, "stream": True}, headers=auth(), timeout=30)
    frames = sse_events(stream.text)
    assert frames[-1] == "[DONE]"
    assert "".join(json.loads(f)["choices"][0]["text"] for f in frames[:-1]) == "alpha beta"


def test_models_list_the_names_to_use_and_every_accepted_name_is_retrievable(stack: Stack) -> None:
    listed = httpx.get(f"{stack.url}/v1/models", headers=auth("free"), timeout=10).json()
    assert_valid(listed, "ListModelsResponse")
    ids = {m["id"] for m in listed["data"]}
    assert {"openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash", "echo/echo"} <= ids
    for name in sorted(ids):  # each listed name is a model the chat endpoint serves
        answer = chat(stack, {"model": name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
        assert answer.status_code == 200, (name, answer.text)
    one = httpx.get(f"{stack.url}/v1/models/openai/gpt-4o-mini", headers=auth(), timeout=10)
    assert one.json() == {"id": "openai/gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "openai"}
    accepted = ["gpt-4o-mini", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash", "claude-opus-4-1", "o3"]
    for name in accepted:
        retrieved = httpx.get(f"{stack.url}/v1/models/{name}", headers=auth(), timeout=10)
        assert retrieved.status_code == 200, (name, retrieved.text)
        assert_valid(retrieved.json(), "Model")
        assert retrieved.json()["id"] == name
    for name in ("nope", "mistral/large", "llama-3-70b"):
        missing = httpx.get(f"{stack.url}/v1/models/{name}", headers=auth(), timeout=10)
        assert missing.status_code == 404, name
        assert_valid(missing.json(), "ErrorResponse")
        assert missing.json()["error"]["code"] == "model_not_found"
        refused = chat(stack, {"model": name, "messages": [{"role": "user", "content": "hi"}]})
        assert refused.status_code in {400, 404}, name  # the chat endpoint does not take it either


def test_health_readiness_and_docs(stack: Stack) -> None:
    assert httpx.get(f"{stack.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{stack.url}/readyz").json()
    assert ready["status"] == "ready" and ready["workers"] == 1
    assert set(ready["providers"]) == {"openai", "anthropic", "gemini", "echo"}
    docs = httpx.get(f"{stack.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = httpx.get(f"{stack.url}/openapi.json").json()
    assert {"/v1/chat/completions", "/api/ai/chat", "/api/ai/completions", "/v1/models"} <= set(spec["paths"])
    body_ref = spec["paths"]["/api/ai/chat"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref == "#/components/schemas/AiChatRequest"
    assert spec["components"]["schemas"]["AiChatRequest"]["properties"]["temperature"]["maximum"] == 2.0


@pytest.mark.anyio
async def test_a_burst_of_requests_each_gets_its_own_answer(stack: Stack) -> None:
    """Requests that arrive together are enqueued several per Celery message; every one still gets its own answer."""

    async def one(client: httpx.AsyncClient, index: int) -> tuple[int, str]:
        words = f"burst {index} says hi"
        body = {"model": "echo", "messages": [{"role": "user", "content": words}], "stream": index % 2 == 0}
        response = await client.post("/v1/chat/completions", json=body, headers=auth())
        assert response.status_code == 200, response.text
        if body["stream"]:
            chunks = [json.loads(f) for f in sse_events(response.text)[:-1]]
            return index, "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        return index, response.json()["choices"][0]["message"]["content"]

    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=stack.url, timeout=30, limits=limits) as client:
        answers = await asyncio.gather(*(one(client, i) for i in range(80)))
    assert answers == [(i, f"burst {i} says hi") for i in range(80)]
    assert stack.redis.client().llen("interactive") == 0
