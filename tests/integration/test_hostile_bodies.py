"""Hostile request bodies over real HTTP (issue 12, items 1, 9 and 10): nesting too deep for the worker, bodies
that do not decode, HTTP the server itself refuses, and image URLs that are not images. Every one is a 400 in
the endpoint's error shape, never a 500; and a job the worker cannot decode fails alone, with its own error,
never taking the other jobs of its Celery message with it."""

import asyncio
import base64
import contextlib
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import redis.asyncio as aioredis

from services.api.enqueue import JobQueue, RedisListBroker, TaskMessage
from shared import keys
from shared.codec import decode_events, split_reply
from shared.events import Done, Failed
from shared.jobs import ChatMessage, GenerationJob, Principal, SamplingParams
from tests.fakes.upstream import FakeUpstream
from tests.harness import auth, token
from tests.stack import Stack, own_stack

MAX_IMAGE_BYTES = 3000
API_ENV = {"CONDUIT_MAX_IMAGE_BYTES": str(MAX_IMAGE_BYTES)}
MODEL = "gpt-4o-mini"
MESSAGES = '"messages":[{"role":"user","content":"hi"}]'
CHAT_PATHS = ("/v1/chat/completions", "/api/ai/chat")
POST_PATHS = ("/v1/chat/completions", "/v1/completions", "/api/ai/chat", "/api/ai/completions")
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Stack]:
    with own_stack(tmp_path_factory.mktemp("hostile"), fake, api_env=API_ENV) as stack:
        yield stack


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _prefix(path: str) -> str:
    """The fields that make a valid request to ``path`` (before any hostile one)."""
    if path in ("/v1/completions", "/api/ai/completions"):
        return f'"model":"{MODEL}","prompt":"hi"'
    return f'"model":"{MODEL}",{MESSAGES}'


def _post(stack: Stack, path: str, body: bytes, content_type: str = "application/json") -> httpx.Response:
    headers = {**auth(), "content-type": content_type}
    return httpx.post(f"{stack.url}{path}", content=body, headers=headers, timeout=30)


def _assert_invalid(response: httpx.Response, path: str, param: str | None = None) -> str:
    """A 400 in ``path``'s error shape; returns its message."""
    assert response.status_code == 400, response.text
    body = response.json()
    if path.startswith("/v1/"):
        error = body["error"]
        assert error["type"] == "invalid_request_error" and error["code"] == "invalid_request"
        if param is not None:
            assert error["param"] == param
        message: str = error["message"]
        return message
    assert body["code"] == "invalid_request" and set(body) <= {"detail", "code", "param"}
    detail: str = body["detail"]
    return detail


# --- item 1: nesting bounded at the API ---------------------------------------------------------------

DEEP_FIELDS = {
    "response_format": '"response_format":{"type":"json_schema","json_schema":%s}',
    "tool_choice": '"tool_choice":{"type":"function","function":%s}',
    "tool_parameters": '"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","x":%s}}}]',
    "unknown_field": '"x_vendor_extension":{"a":%s}',
}


@pytest.mark.parametrize("field", sorted(DEEP_FIELDS))
def test_a_body_nested_970_deep_in_any_field_is_refused_at_once(hostile: Stack, field: str) -> None:
    body = ("{" + _prefix("/v1/chat/completions") + "," + DEEP_FIELDS[field] % _deep(970) + "}").encode()
    started = time.monotonic()
    response = _post(hostile, "/v1/chat/completions", body)
    took = time.monotonic() - started

    message = _assert_invalid(response, "/v1/chat/completions")
    assert "nest" in message and "64" in message
    print(f"\n970 levels deep in {field}: 400 in {took * 1000:.0f} ms")
    assert took < 1.0, f"{took:.2f} s"


@pytest.mark.parametrize("path", POST_PATHS)
def test_nesting_is_bounded_on_every_endpoint_and_real_schemas_pass(hostile: Stack, path: str) -> None:
    too_deep = ("{" + _prefix(path) + ',"extra":' + _deep(65) + "}").encode()
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(20):  # a tool schema 20 objects deep: 40 JSON levels, and the request's own 5
        schema = {"type": "object", "properties": {"child": schema}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]

    _assert_invalid(_post(hostile, path, too_deep), path)
    if path == "/v1/chat/completions":
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "tools": tools}
        assert httpx.post(f"{hostile.url}{path}", json=body, headers=auth(), timeout=30).status_code == 200


# --- item 1: one undecodable job fails alone ------------------------------------------------------------


class _CountingBroker(RedisListBroker):
    def __init__(self, client: "aioredis.Redis") -> None:
        super().__init__(client)
        self.sent: list[TaskMessage] = []

    async def send(self, messages: list[TaskMessage]) -> None:
        self.sent.extend(messages)
        await super().send(messages)


def _job(reply_to: str, index: int, extra: dict[str, Any] | None = None) -> GenerationJob:
    return GenerationJob(
        id=f"hostile-{index}-{uuid.uuid4().hex}",
        request_id=uuid.uuid4().hex,
        principal=Principal(user_id=f"user-{index}", tier="pro"),
        provider="echo",
        model="echo",
        messages=[ChatMessage(role="user", content=f"job {index}")],
        params=SamplingParams(extra=extra or {}),
        reply_to=reply_to,
    )


def _nested(depth: int) -> dict[str, Any]:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return {"deep": value}


async def _outcomes(pubsub: Any, expected: int, timeout: float) -> dict[str, tuple[Done | Failed, float]]:
    """Each job's terminal event, and when it arrived (monotonic)."""
    ended: dict[str, tuple[Done | Failed, float]] = {}
    deadline = time.monotonic() + timeout
    while len(ended) < expected and time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is None:
            continue
        job_id, payload = split_reply(message["data"])
        for event in decode_events(payload):
            if isinstance(event, Done | Failed):
                ended[job_id.decode()] = (event, time.monotonic())
    return ended


@pytest.mark.anyio
async def test_a_job_the_worker_cannot_decode_fails_alone_and_its_message_mates_complete(hostile: Stack) -> None:
    channel = keys.replies(f"hostile-test-{uuid.uuid4().hex}")
    good = [_job(channel, index) for index in range(5)]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # to encode it here as an API would have (before its own nesting bound)
    try:
        client = aioredis.Redis.from_url(hostile.redis.url)
        pubsub = client.pubsub()
        await pubsub.subscribe(channel)
        bad = _job(channel, 99, _nested(2000))
        broker = _CountingBroker(client)
        queue = JobQueue(broker)
        jobs = [*good[:2], bad, *good[2:]]
        sent = time.monotonic()
        await asyncio.gather(*(queue.put(job) for job in jobs))
    finally:
        sys.setrecursionlimit(limit)
    try:
        assert len(broker.sent) == 1  # the six jobs went in one Celery message
        ended = await _outcomes(pubsub, len(jobs), timeout=15)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()

    assert set(ended) == {job.id for job in jobs}
    for job in good:
        assert isinstance(ended[job.id][0], Done), ended[job.id]
    failure, failed_at = ended[bad.id]
    assert isinstance(failure, Failed) and failure.code == "invalid_request" and not failure.retryable
    assert "could not be decoded" in failure.message
    print(f"\nundecodable job: its own error {(failed_at - sent) * 1000:.0f} ms after enqueue; 5 others done")
    assert failed_at - sent < 5.0


# --- item 9: malformed bodies are a 400, never a 500 ----------------------------------------------------


def _malformed(path: str) -> dict[str, bytes]:
    prefix = _prefix(path).encode()
    cases = {
        "invalid_utf8_in_known_field": b'{"model":"\xff\xfe",' + prefix.split(b",", 1)[1] + b"}",
        "invalid_utf8_in_unknown_field": b"{" + prefix + b',"x_note":"caf\xe9"}',
        "deep_100000_unknown_field": b"{" + prefix + b',"x_extra":' + _deep(100_000).encode() + b"}",
        "deep_5000_tool_choice": b"{" + prefix + b',"tool_choice":{"a":' + _deep(5000).encode() + b"}}",
        "truncated": b"{" + prefix + b',"temperature":',
        "nan": b"{" + prefix + b',"temperature":NaN}',
        "infinity": b"{" + prefix + b',"temperature":-Infinity}',
        "lone_surrogate": b"{" + prefix + b',"user":"\\ud800"}',
        "lone_surrogate_unknown": b"{" + prefix + b',"x_note":"\\udfff"}',
        "bom": b"\xef\xbb\xbf{" + prefix + b"}",
        "top_level_array": b"[{" + prefix + b"}]",
        "top_level_string": b'"hello"',
        "top_level_number": b"42",
        "null": b"null",
        "empty": b"",
        "nul_bytes": b"{" + prefix + b"}\x00",
        "trailing_garbage": b"{" + prefix + b"} {}",
        "not_json": b"model=gpt-4o-mini&prompt=hi",
    }
    if path.startswith("/v1/"):  # fields OpenAI's API has, or unknown ones it passes upstream as sent
        cases |= {
            "huge_integer_unknown_field": b"{" + prefix + b',"x_big":1' + b"0" * 5000 + b"}",
            "huge_float_unknown_field": b"{" + prefix + b',"x_big":1e999}',
            "huge_integer_seed": b"{" + prefix + b',"seed":' + b"9" * 40 + b"}",
            "huge_max_tokens": b"{" + prefix + b',"max_tokens":' + b"9" * 30 + b"}",
        }
    return cases


@pytest.mark.parametrize("path", POST_PATHS)
def test_malformed_bodies_are_a_400_in_the_endpoint_shape(hostile: Stack, path: str) -> None:
    failures = []
    for name, body in _malformed(path).items():
        response = _post(hostile, path, body)
        try:
            assert "missing required field" not in _assert_invalid(response, path)  # refused for what it is
        except (AssertionError, ValueError, KeyError):
            failures.append(f"{name}: {response.status_code} {response.text[:160]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("path", POST_PATHS)
def test_odd_but_valid_bodies_are_answered(hostile: Stack, path: str) -> None:
    prefix = _prefix(path)
    duplicate = ("{" + prefix + f',"model":"{MODEL}"' + "}").encode()  # the last one wins, as in most parsers
    big_string = ("{" + prefix + ',"x_note":"' + "a" * 3_000_000 + '"}').encode()
    for body, content_type in ((duplicate, "application/json"), (big_string, "text/plain")):
        response = _post(hostile, path, body, content_type)
        assert response.status_code == 200, (content_type, len(body), response.text[:300])


def test_a_body_over_the_size_bound_is_a_413_in_the_endpoint_shape(hostile: Stack) -> None:
    body = ('{"model":"gpt-4o-mini",' + MESSAGES + ',"x":"' + "a" * 4_100_000 + '"}').encode()
    for path in CHAT_PATHS:
        response = _post(hostile, path, body)
        assert response.status_code == 413, response.text[:300]
        assert ("error" in response.json()) == path.startswith("/v1/")


# --- item 9: HTTP the server refuses before Conduit sees it ---------------------------------------------


def _raw(stack: Stack, request: bytes, *, half_close: bool = True) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` bytes on a fresh connection; the status, headers and body of what comes back.

    ``half_close``: then shut the connection's sending side (for what the parser refuses). A request the app is
    to answer is sent without: uvicorn takes a half-closed connection for a client that left, and drops an
    answer not started by then."""
    port = int(stack.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        if half_close:
            with contextlib.suppress(ConnectionResetError):
                sock.shutdown(socket.SHUT_WR)
        received = b""
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while chunk := sock.recv(65536):
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return status, {name.lower(): value for name, value in headers.items()}, body


def _request(path: str = "/v1/chat/completions", headers: str = "", body: bytes = b"{}") -> bytes:
    base = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token()}\r\n"
    if "transfer-encoding" not in headers.lower():
        base += f"Content-Length: {len(body)}\r\n"
    return (base + headers + "Content-Type: application/json\r\nConnection: close\r\n\r\n").encode() + body


HTTP_ERRORS = {
    "bare_cr_in_header": _request(headers="X-Note: a\rb\r\n"),
    "folded_header": _request(headers="X-Note: a\r\n  folded\r\n"),
    "space_before_colon": _request(headers="X-Note : a\r\n"),
    "bad_chunked_encoding": _request(headers="Transfer-Encoding: chunked\r\n", body=b"zz\r\n{}\r\n0\r\n\r\n"),
    "chunked_and_content_length": _request(headers="Transfer-Encoding: chunked\r\nContent-Length: 2\r\n"),
    "bad_method": b"P@ST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_version": b"POST /v1/chat/completions HTTP/9.9\r\nHost: x\r\n\r\n",
    "nul_in_path": b"GET /v1/mo\x00dels HTTP/1.1\r\nHost: x\r\n\r\n",
    "http2_preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "tls_client_hello": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(40),
}


@pytest.mark.parametrize("case", sorted(HTTP_ERRORS))
def test_requests_the_http_parser_refuses_get_a_json_400(hostile: Stack, case: str) -> None:
    status, headers, body = _raw(hostile, HTTP_ERRORS[case])

    assert status == 400, body
    assert headers["content-type"] == "application/json"
    error = httpx.Response(200, content=body).json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_request"
    assert headers["connection"] == "close"


def test_an_over_long_request_line_or_headers_get_a_json_414_or_431(hostile: Stack) -> None:
    cases = {
        "long_path": (_request(path="/v1/chat/completions?" + "a" * 100_000), 414),
        "long_ai_path": (_request(path="/api/ai/chat?" + "a" * 100_000), 414),
        "long_header": (_request(headers="X-Note: " + "a" * 100_000 + "\r\n"), 431),
        "many_headers": (_request(headers="".join(f"X-H{i}: v\r\n" for i in range(10_000))), 431),
    }
    for name, (request, expected) in cases.items():
        status, headers, body = _raw(hostile, request)
        assert status == expected, (name, body[:200])
        assert headers["content-type"] == "application/json"
        decoded = httpx.Response(200, content=body).json()
        if name == "long_ai_path":
            assert decoded["code"] == "request_too_large"
        else:
            assert decoded["error"]["code"] == "request_too_large"


def test_a_websocket_upgrade_is_answered_as_plain_http_in_json(hostile: Stack) -> None:
    upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    request = f"GET /v1/no-such-route HTTP/1.1\r\nHost: 127.0.0.1\r\n{upgrade}Sec-WebSocket-Version: 13\r\n\r\n"
    status, headers, body = _raw(hostile, request.encode())

    assert status == 404 and headers["content-type"] == "application/json", body
    assert httpx.Response(200, content=body).json()["error"]["code"] == "not_found"


def test_headers_within_the_bound_are_served(hostile: Stack) -> None:
    request = _request(path="/v1/chat/completions?" + "a" * 8000, headers="X-Note: " + "b" * 30_000 + "\r\n")
    status, _, body = _raw(hostile, request, half_close=False)
    assert status == 400 and b"invalid_request" in body  # the app answered (no model), not the parser


# --- item 10: image URLs --------------------------------------------------------------------------------


def _image_chat(url: str) -> dict[str, Any]:
    parts = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}]
    return {"model": MODEL, "messages": [{"role": "user", "content": parts}]}


REFUSED_IMAGES = {
    "file": "file:///etc/passwd",
    "ftp": "ftp://example.com/a.png",
    "gopher": "gopher://127.0.0.1:6379/_INFO",
    "javascript": "javascript:alert(1)",
    "no_scheme": "/etc/passwd",
    "empty": "",
    "http_without_host": "http:///a.png",
    "data_not_image": "data:text/html;base64,PGgxPmhpPC9oMT4=",
    "data_not_base64": "data:image/png,rawbytes",
    "data_bad_base64": "data:image/png;base64,!!!notbase64!!!",
    "data_too_big": "data:image/png;base64," + base64.b64encode(bytes(MAX_IMAGE_BYTES + 1)).decode(),
}


@pytest.mark.parametrize("case", sorted(REFUSED_IMAGES))
def test_an_image_url_that_is_not_an_http_or_data_image_is_a_400_naming_it(hostile: Stack, case: str) -> None:
    url = f"{hostile.url}/v1/chat/completions"
    response = httpx.post(url, json=_image_chat(REFUSED_IMAGES[case]), headers=auth(), timeout=30)

    message = _assert_invalid(response, "/v1/chat/completions", "messages.[0].content.[1].image_url.url")
    assert "image" in message


def test_the_openai_sdk_gets_a_bad_request_error_naming_the_image_param(hostile: Stack) -> None:
    with openai.OpenAI(base_url=f"{hostile.url}/v1", api_key=token(), max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(**_image_chat("file:///etc/shadow"))
        accepted = client.chat.completions.create(**_image_chat("https://images.example/cat.png"))

    assert info.value.status_code == 400 and info.value.param == "messages.[0].content.[1].image_url.url"
    assert accepted.choices[0].message.content


@pytest.mark.parametrize(
    "url", ["https://images.example/cat.png", "http://images.example/a?b=1", "HTTPS://X.EXAMPLE/A"]
)
def test_http_image_urls_are_accepted(hostile: Stack, url: str) -> None:
    response = httpx.post(f"{hostile.url}/v1/chat/completions", json=_image_chat(url), headers=auth(), timeout=30)
    assert response.status_code == 200, response.text


def test_a_data_image_within_the_bound_is_accepted(hostile: Stack) -> None:
    url = f"data:image/png;base64,{PNG}"
    response = httpx.post(f"{hostile.url}/v1/chat/completions", json=_image_chat(url), headers=auth(), timeout=30)
    assert response.status_code == 200, response.text
