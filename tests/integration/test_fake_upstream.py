"""The fake upstream speaks each provider's exact wire format, and each scripted behaviour does what it says."""

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from tests.fakes.upstream import (
    DropAfter,
    Fail,
    FakeUpstream,
    Garbage,
    MidStreamError,
    Provider,
    Reply,
    Stall,
    Truncate,
)
from tests.openai_schema import assert_valid

CREATED = 1700000000
PROVIDERS: list[Provider] = ["openai", "anthropic", "gemini"]
AUTH = {
    "openai": {"authorization": "Bearer sk-test-openai"},
    "anthropic": {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"},
    "gemini": {"x-goog-api-key": "AIza-test-gemini"},
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(created=CREATED) as fake:
        yield fake


@pytest.fixture
def fake(upstream: FakeUpstream) -> FakeUpstream:
    upstream.reset()
    return upstream


@pytest.fixture
def client(upstream: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=upstream.url, timeout=5.0) as c:
        yield c


def request(provider: Provider, stream: bool, limit: int | None = None, **extra: Any) -> dict[str, Any]:
    """httpx.Client.request/stream kwargs for a minimal generation request to `provider`."""
    body: dict[str, Any]
    if provider == "openai":
        url, body = (
            "/v1/chat/completions",
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi"}]},
        )
        body |= {"stream": stream} | ({"max_tokens": limit} if limit is not None else {})
    elif provider == "anthropic":
        url = "/v1/messages"
        body = {"model": "claude-haiku-4-5", "max_tokens": limit or 100, "stream": stream}
        body["messages"] = [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}]
    else:
        url = "/v1beta/models/gemini-2.5-flash:" + ("streamGenerateContent?alt=sse" if stream else "generateContent")
        body = {"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}]}
        body |= {"generationConfig": {"maxOutputTokens": limit}} if limit is not None else {}
    return {"method": "POST", "url": url, "headers": AUTH[provider], "json": body | extra}


def frames(raw: bytes) -> list[bytes]:
    """SSE events as raw text without the blank-line separator (LF for OpenAI/Anthropic, CRLF for Gemini)."""
    sep = b"\r\n\r\n" if b"\r\n" in raw else b"\n\n"
    parts = raw.split(sep)
    assert parts[-1] == b"", f"stream does not end on an event boundary: {raw[-40:]!r}"
    return parts[:-1]


def data(frame: bytes) -> Any:
    line = frame.split(b"\n")[-1]
    assert line.startswith(b"data: ")
    return msgspec.json.decode(line[6:])


# -- default replies ------------------------------------------------------------------------------------------------


def test_openai_stream_default_reply_is_byte_exact(fake: FakeUpstream, client: httpx.Client) -> None:
    response = client.request(**request("openai", stream=True))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["x-request-id"].startswith("req_")
    ident = data(frames(response.content)[0])["id"].removeprefix("chatcmpl-")
    head = (
        '{"id":"chatcmpl-'
        + ident
        + '","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18",'
        '"service_tier":"default","system_fingerprint":"fp_c0ndu1t0fake","choices":[{"index":0,"delta":'
    )
    deltas = [
        ('{"role":"assistant","content":"","refusal":null}', "null"),
        *((f'{{"content":"{t}"}}', "null") for t in ["Hello", " from", " the", " fake", " openai", "!"]),
        ("{}", '"stop"'),
    ]
    expected = "".join(f'data: {head}{d},"logprobs":null,"finish_reason":{f}}}]}}\n\n' for d, f in deltas)
    assert response.content == (expected + "data: [DONE]\n\n").encode()


def test_openai_stream_with_include_usage_ends_with_a_usage_chunk(fake: FakeUpstream, client: httpx.Client) -> None:
    response = client.request(**request("openai", stream=True, stream_options={"include_usage": True}))
    events = frames(response.content)
    assert events[-1] == b"data: [DONE]"
    chunks = [data(e) for e in events[:-1]]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 5  # "Say hi" = 2 words + 3
    assert chunks[-1]["usage"]["completion_tokens"] == 6
    assert chunks[-1]["usage"]["total_tokens"] == 11


def test_openai_non_stream_default_reply(fake: FakeUpstream, client: httpx.Client) -> None:
    body = client.request(**request("openai", stream=False)).json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-4o-mini-2024-07-18"  # OpenAI answers with the snapshot that served the alias
    assert body["created"] == CREATED
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
    assert body["usage"]["prompt_tokens"] == 5
    assert body["usage"]["completion_tokens"] == 6
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0


def test_openai_legacy_completions_stream_and_not(fake: FakeUpstream, client: httpx.Client) -> None:
    args: dict[str, Any] = {"method": "POST", "url": "/v1/completions", "headers": AUTH["openai"]}
    body = client.request(**args, json={"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 3}).json()
    assert body["object"] == "text_completion"
    assert body["choices"] == [{"text": "Hello from the", "index": 0, "logprobs": None, "finish_reason": "length"}]
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    raw = client.request(**args, json={"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "stream": True}).content
    events = frames(raw)
    assert events[-1] == b"data: [DONE]"
    chunks = [data(e) for e in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks) == "Hello from the fake openai!"
    assert [c["choices"][0]["finish_reason"] for c in chunks][-2:] == [None, "stop"]


def test_openai_logprobs_in_chat_and_legacy_completions_match_openais_schemas(
    fake: FakeUpstream, client: httpx.Client
) -> None:
    asked = {"logprobs": True, "top_logprobs": 2}
    body = client.request(**request("openai", stream=False, **asked)).json()
    assert_valid(body, "CreateChatCompletionResponse")
    content = body["choices"][0]["logprobs"]["content"]
    assert [entry["token"] for entry in content] == ["Hello", " from", " the", " fake", " openai", "!"]
    assert all(
        len(entry["top_logprobs"]) == 2 and entry["top_logprobs"][0]["token"] == entry["token"] for entry in content
    )
    chunks = [data(e) for e in frames(client.request(**request("openai", stream=True, **asked)).content)[:-1]]
    for chunk in chunks:
        assert_valid(chunk, "CreateChatCompletionStreamResponse")
    streamed = [c["choices"][0]["logprobs"] for c in chunks]
    assert [lp["content"][0] for lp in streamed if lp] == content
    args: dict[str, Any] = {"method": "POST", "url": "/v1/completions", "headers": AUTH["openai"]}
    legacy = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 2, "logprobs": 3}
    text = client.request(**args, json=legacy).json()
    assert_valid(text, "CreateCompletionResponse")
    assert text["choices"][0]["logprobs"]["tokens"] == ["Hello", " from"]
    assert text["choices"][0]["logprobs"]["text_offset"] == [6, 11]
    assert [len(top) for top in text["choices"][0]["logprobs"]["top_logprobs"]] == [3, 3]
    echoed = client.request(**args, json={**legacy, "logprobs": None, "echo": True}).json()
    assert echoed["choices"][0]["text"] == "Say hiHello from"


def test_openai_models_list(fake: FakeUpstream, client: httpx.Client) -> None:
    body = client.get("/v1/models", headers=AUTH["openai"]).json()
    assert body["object"] == "list"
    assert {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"} in body["data"]


def test_anthropic_stream_default_reply_is_byte_exact(fake: FakeUpstream, client: httpx.Client) -> None:
    response = client.request(**request("anthropic", stream=True))
    assert response.headers["request-id"].startswith("req_")
    ident = data(frames(response.content)[0])["message"]["id"].removeprefix("msg_")
    usage = '"usage":{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,'
    expected = (
        'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_' + ident + '","type":"message",'
        '"role":"assistant","model":"claude-haiku-4-5","content":[],"stop_reason":null,"stop_sequence":null,'
        + usage
        + '"service_tier":"standard"}}}\n\n'
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":'
        '{"type":"text","text":""}}\n\n'
        'event: ping\ndata: {"type": "ping"}\n\n'
    )
    for token in ["Hello", " from", " the", " fake", " anthropic", "!"]:
        expected += (
            'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            f'"delta":{{"type":"text_delta","text":"{token}"}}}}\n\n'
        )
    expected += (
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
        'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
        '"usage":{"output_tokens":6}}\n\n'
        'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    assert response.content == expected.encode()


def test_anthropic_non_stream_default_reply(fake: FakeUpstream, client: httpx.Client) -> None:
    body = client.request(**request("anthropic", stream=False)).json()
    assert body["id"].startswith("msg_")
    assert (body["type"], body["role"], body["model"]) == ("message", "assistant", "claude-haiku-4-5")
    assert body["content"] == [{"type": "text", "text": "Hello from the fake anthropic!"}]
    assert (body["stop_reason"], body["stop_sequence"]) == ("end_turn", None)
    assert body["usage"]["input_tokens"] == 5
    assert body["usage"]["output_tokens"] == 6


def test_gemini_stream_default_reply(fake: FakeUpstream, client: httpx.Client) -> None:
    response = client.request(**request("gemini", stream=True))
    assert response.headers["content-type"] == "text/event-stream"
    assert b"\n\n" not in response.content.replace(b"\r\n\r\n", b"")
    chunks = [data(e.replace(b"\r\n", b"\n")) for e in frames(response.content)]
    texts = [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks]
    assert texts == ["Hello", " from", " the", " fake", " gemini", "!"]
    assert all(c["candidates"][0]["content"]["role"] == "model" for c in chunks)
    assert all(c["modelVersion"] == "gemini-2.5-flash" for c in chunks)
    assert ["finishReason" in c["candidates"][0] for c in chunks] == [False] * 5 + [True]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    usage = chunks[-1]["usageMetadata"]
    assert (usage["promptTokenCount"], usage["candidatesTokenCount"], usage["totalTokenCount"]) == (5, 6, 11)
    assert "candidatesTokenCount" not in chunks[0]["usageMetadata"]


def test_gemini_non_stream_default_reply(fake: FakeUpstream, client: httpx.Client) -> None:
    body = client.request(**request("gemini", stream=False)).json()
    candidate = body["candidates"][0]
    assert candidate["content"] == {"parts": [{"text": "Hello from the fake gemini!"}], "role": "model"}
    assert candidate["finishReason"] == "STOP"
    assert body["usageMetadata"]["totalTokenCount"] == 11
    assert body["modelVersion"] == "gemini-2.5-flash"
    assert body["responseId"]


# -- recording and scripting ----------------------------------------------------------------------------------------


def test_requests_are_recorded_with_lowercase_headers_query_and_body(fake: FakeUpstream, client: httpx.Client) -> None:
    client.post(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        params={"key": "AIza-test-gemini"},
        headers={"X-Custom": "Yes"},
        json={"contents": [{"parts": [{"text": "hi"}]}]},
    )
    rec = fake.wait_for_requests(1)[0]
    assert (rec.provider, rec.method, rec.path) == ("gemini", "POST", "/v1beta/models/gemini-2.5-flash:generateContent")
    assert rec.query == {"key": "AIza-test-gemini"}
    assert rec.headers["x-custom"] == "Yes"
    assert rec.body == {"contents": [{"parts": [{"text": "hi"}]}]}
    assert rec.completed
    assert rec.disconnected is None
    assert rec.started <= time.monotonic()


def test_push_for_one_provider_skips_the_others(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.push(Fail(500), provider="anthropic")
    assert client.request(**request("openai", stream=False)).status_code == 200
    assert fake.pending == 1
    assert client.request(**request("anthropic", stream=False)).status_code == 500
    assert fake.pending == 0


def test_reply_with_custom_tokens_delay_and_prompt_tokens(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.push(Reply(tokens=["a", "b", "c"], delay=0.05, prompt_tokens=42))
    started = time.monotonic()
    body = client.request(**request("openai", stream=False)).json()
    assert time.monotonic() - started >= 0.15
    assert body["choices"][0]["message"]["content"] == "abc"
    assert body["usage"]["prompt_tokens"] == 42


def test_missing_required_field_is_a_400(fake: FakeUpstream, client: httpx.Client) -> None:
    args = request("anthropic", stream=False)
    del args["json"]["max_tokens"]
    response = client.request(**args)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_the_instance_is_an_asgi_app_without_sockets() -> None:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=FakeUpstream())
        async with httpx.AsyncClient(transport=transport, base_url="http://fake") as c:
            return await c.request(**request("anthropic", stream=True))

    response = asyncio.run(call())
    assert response.content.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


# -- finish reasons: max tokens, stop sequences, tool calls --------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "reason"), [("openai", "length"), ("anthropic", "max_tokens"), ("gemini", "MAX_TOKENS")]
)
def test_max_tokens_truncates_and_finishes_with_length(
    fake: FakeUpstream, client: httpx.Client, provider: Provider, reason: str
) -> None:
    body = client.request(**request(provider, stream=False, limit=2)).json()
    if provider == "openai":
        got = body["choices"][0]["message"]["content"], body["choices"][0]["finish_reason"]
    elif provider == "anthropic":
        got = body["content"][0]["text"], body["stop_reason"]
    else:
        got = body["candidates"][0]["content"]["parts"][0]["text"], body["candidates"][0]["finishReason"]
    assert got == ("Hello from", reason)


def test_stop_sequence_cuts_before_the_match(fake: FakeUpstream, client: httpx.Client) -> None:
    body = client.request(**request("openai", stream=False, stop=["ake"])).json()
    assert body["choices"][0]["message"]["content"] == "Hello from the f"
    assert body["choices"][0]["finish_reason"] == "stop"
    fake.push(Reply(text="one two three"))
    body = client.request(**request("anthropic", stream=False, stop_sequences=["two"])).json()
    assert (body["content"][0]["text"], body["stop_reason"], body["stop_sequence"]) == ("one ", "stop_sequence", "two")


def test_openai_tool_call_stream(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.push(Reply(tool_calls=[("get_weather", {"city": "Paris"})]))
    chunks = [data(e) for e in frames(client.request(**request("openai", stream=True)).content)[:-1]]
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant"
    assert first["content"] is None
    call = first["tool_calls"][0]
    assert (call["index"], call["type"], call["function"]) == (0, "function", {"name": "get_weather", "arguments": ""})
    assert call["id"].startswith("call_")
    args = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[1:-1])
    assert msgspec.json.decode(args) == {"city": "Paris"}
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}


def test_anthropic_tool_use_stream_after_text(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.push(Reply(text="Checking.", tool_calls=[("get_weather", {"city": "Paris"})]))
    events = [data(e) for e in frames(client.request(**request("anthropic", stream=True)).content)]
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts[0] == {"type": "text", "text": ""}
    assert (starts[1]["type"], starts[1]["name"], starts[1]["input"]) == ("tool_use", "get_weather", {})
    partial = [e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta" and e["index"] == 1]
    assert msgspec.json.decode("".join(partial)) == {"city": "Paris"}
    assert [e["index"] for e in events if e["type"] == "content_block_stop"] == [0, 1]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_gemini_function_call_arrives_whole(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.push(Reply(tool_calls=[("get_weather", {"city": "Paris"})]))
    raw = client.request(**request("gemini", stream=True)).content
    chunks = [data(e.replace(b"\r\n", b"\n")) for e in frames(raw)]
    assert len(chunks) == 1
    candidate = chunks[0]["candidates"][0]
    assert candidate["content"]["parts"] == [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]
    assert candidate["finishReason"] == "STOP"


# -- errors ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "headers", "status", "expected"),
    [
        ("openai", {}, 401, {"type": "invalid_request_error", "code": None, "param": None}),
        (
            "openai",
            {"authorization": "Bearer sk-wrong"},
            401,
            {"type": "invalid_request_error", "code": "invalid_api_key"},
        ),
        ("anthropic", {"x-api-key": "nope", "anthropic-version": "2023-06-01"}, 401, {"type": "authentication_error"}),
        ("anthropic", {"x-api-key": "sk-ant-test"}, 400, {"type": "invalid_request_error"}),
        ("gemini", {"x-goog-api-key": "nope"}, 400, {"code": 400, "status": "INVALID_ARGUMENT"}),
        ("gemini", {}, 403, {"code": 403, "status": "PERMISSION_DENIED"}),
    ],
)
def test_bad_credentials_get_the_providers_auth_error(
    fake: FakeUpstream,
    client: httpx.Client,
    provider: Provider,
    headers: dict[str, str],
    status: int,
    expected: dict[str, Any],
) -> None:
    fake.push(Reply(text="unused"))
    response = client.request(**request(provider, stream=False) | {"headers": headers})
    assert response.status_code == status
    body = response.json()
    error = body["error"]
    assert expected.items() <= error.items()
    if provider == "anthropic":
        assert body["type"] == "error"
        assert body["request_id"] == response.headers["request-id"]
    if provider == "gemini" and status == 400:
        assert error["details"][0]["reason"] == "API_KEY_INVALID"
    assert fake.pending == 1  # a rejected request does not consume the script


def test_openai_fail_429_has_exact_body_and_retry_after(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.push(Fail(429, message="Rate limit reached for requests", retry_after=2))
    response = client.request(**request("openai", stream=True))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["content-type"] == "application/json"
    assert response.content == (
        b'{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,'
        b'"code":"rate_limit_exceeded"}}'
    )


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (404, "not_found_error"), (504, "timeout_error"), (529, "overloaded_error")],
)
def test_anthropic_fail_uses_the_status_error_type(
    fake: FakeUpstream, client: httpx.Client, status: int, kind: str
) -> None:
    fake.push(Fail(status, message="boom"))
    response = client.request(**request("anthropic", stream=True))
    assert response.status_code == status
    rid = response.headers["request-id"]
    assert response.content == (
        b'{"type":"error","error":{"type":"'
        + kind.encode()
        + b'","message":"boom"},"request_id":"'
        + rid.encode()
        + b'"}'
    )


def test_gemini_fail_429_carries_retry_info(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.push(Fail(429, retry_after=34))
    response = client.request(**request("gemini", stream=True))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "34"
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert error["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"}]


@pytest.mark.parametrize(
    ("provider", "path"), [("openai", "/v1/nope"), ("anthropic", "/v1/nope"), ("gemini", "/v1beta/nope")]
)
def test_unknown_path_is_a_404_in_the_providers_shape(
    fake: FakeUpstream, client: httpx.Client, provider: Provider, path: str
) -> None:
    response = client.post(path, headers=AUTH[provider], json={})
    assert response.status_code == 404
    body = response.json()
    if provider == "openai":
        assert body["error"]["message"] == "Invalid URL (POST /v1/nope)"
    elif provider == "anthropic":
        assert body["error"]["type"] == "not_found_error"
    else:
        assert body["error"]["status"] == "NOT_FOUND"


# -- stream faults ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_drop_after_aborts_the_connection_mid_body(
    fake: FakeUpstream, client: httpx.Client, provider: Provider
) -> None:
    fake.push(DropAfter(2))
    received = b""
    with pytest.raises(httpx.RemoteProtocolError), client.stream(**request(provider, stream=True)) as response:
        for chunk in response.iter_bytes():
            received += chunk
    assert b" from" in received  # "Hello", " from" made it out, " the" did not
    assert b" the" not in received
    assert not fake.requests[-1].completed


def test_drop_after_on_a_non_streaming_request_cuts_the_body(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.push(DropAfter(0))
    with pytest.raises(httpx.RemoteProtocolError):
        client.request(**request("anthropic", stream=False))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_client_hanging_up_during_a_stall_is_recorded(
    fake: FakeUpstream, client: httpx.Client, provider: Provider
) -> None:
    fake.push(Stall(after=2, seconds=30))
    started = time.monotonic()
    with client.stream(**request(provider, stream=True)) as response:
        seen = b""
        for chunk in response.iter_bytes():
            seen += chunk
            if seen.count(b" from") == 1:
                break
    disconnected = fake.wait_for_disconnect(timeout=5)
    assert disconnected is not None
    assert disconnected - started < 5
    assert not fake.requests[-1].completed


def test_stall_then_finishes_normally(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.push(Stall(after=1, seconds=0.2))
    started = time.monotonic()
    raw = client.request(**request("openai", stream=True)).content
    assert time.monotonic() - started >= 0.2
    assert raw.endswith(b"data: [DONE]\n\n")
    assert fake.requests[-1].completed
    assert fake.wait_for_disconnect(timeout=0.05) is None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_garbage_frame_after_n_tokens(fake: FakeUpstream, client: httpx.Client, provider: Provider) -> None:
    fake.push(Garbage(after=1))
    events = frames(client.request(**request(provider, stream=True)).content)
    assert events[-1].endswith(b"data: {not json")
    assert b"Hello" in events[-2]
    assert fake.requests[-1].completed


@pytest.mark.parametrize("provider", PROVIDERS)
def test_truncate_ends_cleanly_without_end_markers(
    fake: FakeUpstream, client: httpx.Client, provider: Provider
) -> None:
    fake.push(Truncate(after=2))
    raw = client.request(**request(provider, stream=True)).content
    for marker in [b"[DONE]", b'"finish_reason":"', b"message_delta", b"message_stop", b"finishReason"]:
        assert marker not in raw
    assert b" from" in raw
    assert b" the" not in raw


@pytest.mark.parametrize(
    ("provider", "tail"),
    [
        ("openai", b'data: {"error":{"message":"Overloaded","type":"server_error","param":null,"code":null}}\n\n'),
        (
            "anthropic",
            b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
        ),
        ("gemini", b'data: {"error":{"code":503,"message":"Overloaded","status":"UNAVAILABLE"}}\r\n\r\n'),
    ],
)
def test_mid_stream_error_frame(fake: FakeUpstream, client: httpx.Client, provider: Provider, tail: bytes) -> None:
    fake.push(MidStreamError(after=1))
    response = client.request(**request(provider, stream=True))
    assert response.status_code == 200
    assert response.content.endswith(tail)
    assert b" from" not in response.content


def test_mid_stream_error_on_a_non_streaming_request_is_an_overloaded_status(
    fake: FakeUpstream, client: httpx.Client
) -> None:
    fake.push(MidStreamError())
    response = client.request(**request("anthropic", stream=False))
    assert response.status_code == 529
    assert response.json()["error"] == {"type": "overloaded_error", "message": "Overloaded"}
