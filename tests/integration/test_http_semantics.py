"""HTTP as browsers and proxies expect, over real HTTP: CORS (with ``CONDUIT_CORS_ORIGINS`` and without it),
``HEAD`` on every ``GET`` route, and gzip for JSON but never for SSE."""

import gzip
import json
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from litestar.exceptions import LitestarDeprecationWarning
from litestar.routes import HTTPRoute

from services.api.app import create_app
from services.api.cors import EXPOSE_HEADERS
from services.api.settings import ApiSettings
from shared import keys
from tests.fakes.upstream import FakeUpstream, Reply
from tests.harness import JWT_SECRET, FrameReader, auth
from tests.stack import Stack, own_stack

ORIGIN = "http://app.example"
CORS_ENV = {
    "CONDUIT_CORS_ORIGINS": f"{ORIGIN}, http://localhost:5173",
    "CONDUIT_TIER_ENTERPRISE_REQUESTS_PER_MINUTE": "2",
}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
PREFLIGHT = {
    "origin": ORIGIN,
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization, content-type, x-stainless-os",
}
#: a value for each path parameter of a GET route (a new one fails the HEAD test until it has one here)
SAMPLES = {
    "model_id": "openai/gpt-4o-mini",
    "path": "nope",
    "file_path": "swagger-ui-bundle.js",
    "chat_id": "chat_none",
    "batch_id": "batch_none",
}
#: headers that differ between any two responses, or that the server sets by itself for a body it sends
VOLATILE = re.compile(r"^(date|x-request-id|x-ratelimit-.*|transfer-encoding)$")


@pytest.fixture(scope="module")
def cors_stack(logs: Path, fake: FakeUpstream) -> Iterator[Stack]:
    with own_stack(logs, fake, api_env=CORS_ENV) as stack:
        yield stack


def _cors(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.startswith("access-control-")}


def _stream_job(stack: Stack) -> str:
    """The id of a finished streamed job of the default test user."""
    body = {**CHAT, "stream": True}
    response = httpx.post(f"{stack.url}/v1/chat/completions", json=body, headers=auth(), timeout=30)
    assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
    return response.headers["x-conduit-job-id"]


# --- CORS -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/streams/some-job", "/api/ai/chat", "/v1/no-such-route"])
def test_a_preflight_from_an_allowed_origin_is_a_204_without_auth(cors_stack: Stack, path: str) -> None:
    response = httpx.options(f"{cors_stack.url}{path}", headers=PREFLIGHT, timeout=10)

    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "Origin" in response.headers["vary"]
    assert "POST" in response.headers["access-control-allow-methods"].split(", ")
    allowed = set(response.headers["access-control-allow-headers"].split(", "))
    assert {"authorization", "content-type", "x-stainless-os", "last-event-id", "x-api-key"} <= allowed
    assert int(response.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in response.headers


def test_another_origin_gets_no_cors_headers(cors_stack: Stack) -> None:
    preflight = httpx.options(
        f"{cors_stack.url}/v1/chat/completions", headers={**PREFLIGHT, "origin": "http://evil.example"}, timeout=10
    )
    actual = httpx.get(f"{cors_stack.url}/v1/models", headers={**auth(), "origin": "http://evil.example"}, timeout=10)

    assert preflight.status_code == 403 and _cors(preflight) == {}
    assert actual.status_code == 200 and _cors(actual) == {}
    assert "Origin" in actual.headers["vary"]


def test_answers_errors_and_streams_carry_the_origin_and_expose_the_client_headers(cors_stack: Stack) -> None:
    url, browser = cors_stack.url, {"origin": ORIGIN, **auth("enterprise", "cors-browser")}
    answer = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=browser, timeout=30)
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json={**CHAT, "stream": True}, headers=browser, timeout=30
    ) as stream:
        stream_headers = stream.headers
        frames = FrameReader(stream).rest()
    limited = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=browser, timeout=30)
    unauthorised = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers={"origin": ORIGIN}, timeout=30)
    missing = httpx.get(f"{url}/v1/no-such-route", headers={"origin": ORIGIN}, timeout=10)

    assert [answer.status_code, limited.status_code, unauthorised.status_code, missing.status_code] == [
        200,
        429,
        401,
        404,
    ]
    assert stream_headers["content-type"].startswith("text/event-stream") and frames[-1][1] == "[DONE]"
    for headers in (answer.headers, stream_headers, limited.headers, unauthorised.headers, missing.headers):
        assert headers["access-control-allow-origin"] == ORIGIN
        assert "Origin" in headers["vary"]
        assert headers["access-control-expose-headers"].split(", ") == list(EXPOSE_HEADERS)
    # every header a page needs to read is in the exposed list
    needed = {name for name in [*answer.headers, *limited.headers] if name.startswith(("x-ratelimit-", "x-conduit-"))}
    assert {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-conduit-job-id"} <= needed
    assert needed | {"x-request-id", "retry-after"} <= set(EXPOSE_HEADERS)
    assert "retry-after" in limited.headers and "x-request-id" in answer.headers


def test_without_cors_origins_no_response_has_cors_headers(stack: Stack) -> None:
    preflight = httpx.options(f"{stack.url}/v1/chat/completions", headers=PREFLIGHT, timeout=10)
    actual = httpx.get(f"{stack.url}/v1/models", headers={**auth(), "origin": ORIGIN}, timeout=10)
    refused = httpx.get(f"{stack.url}/v1/models", headers={"origin": ORIGIN}, timeout=10)

    assert _cors(preflight) == {} and _cors(actual) == {} and _cors(refused) == {}
    assert actual.status_code == 200 and refused.status_code == 401


# --- HEAD -------------------------------------------------------------------------------------------


def _get_paths(job_id: str, file_id: str = "file-none") -> list[str]:
    """Every GET route of the app, its parameters filled in."""
    with warnings.catch_warnings():  # the handlers' own Litestar 3 deprecations are not what this test is about
        warnings.simplefilter("ignore", LitestarDeprecationWarning)
        app = create_app(ApiSettings(jwt_secret=JWT_SECRET))
    paths = []
    values = {**SAMPLES, "job_id": job_id, "file_id": file_id}
    for route in app.routes:
        if isinstance(route, HTTPRoute) and "GET" in route.methods:
            missing = [name for name in route.path_parameters if name not in values]
            assert not missing, f"add a sample value for {missing} (route {route.path}) to SAMPLES"
            paths.append(re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m[1]], route.path))
    assert {"/v1/models", "/healthz", "/readyz", "/openapi.json", "/docs", f"/v1/streams/{job_id}"} <= set(paths)
    return paths


def _comparable(response: httpx.Response) -> list[tuple[str, str]]:
    return sorted((name, value) for name, value in response.headers.multi_items() if not VOLATILE.match(name))


def _without_length(response: httpx.Response) -> httpx.Response:
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-length"]
    return httpx.Response(response.status_code, headers=headers)


def test_head_answers_every_get_route_with_the_get_status_and_headers(stack: Stack) -> None:
    headers = {**auth(), "accept-encoding": "gzip"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as client:
        line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": CHAT}
        upload = client.post("/v1/files", files={"file": ("a.jsonl", json.dumps(line))}, data={"purpose": "batch"})
        for path in _get_paths(_stream_job(stack), upload.json()["id"]):
            before, head, after = client.get(path), client.head(path), client.get(path)

            assert head.status_code == before.status_code, path
            if path == "/metrics":  # its body changes with every request (it counts them): its length too
                before, after, head = (_without_length(r) for r in (before, after, head))
            assert _comparable(head) in (_comparable(before), _comparable(after)), path
            assert head.content == b"", path
            if path == "/openapi.json":
                assert head.headers["content-encoding"] == "gzip"
                assert int(head.headers["content-length"]) == before.num_bytes_downloaded


def test_head_on_a_live_stream_answers_at_once_and_starts_no_relay(stack: Stack) -> None:
    stack.fake.push(Reply(tokens=["one ", "two ", "three ", "four"], delay=0.5))
    body = {**CHAT, "stream": True}
    with httpx.stream("POST", f"{stack.url}/v1/chat/completions", json=body, headers=auth(), timeout=30) as stream:
        job_id = stream.headers["x-conduit-job-id"]
        started = time.monotonic()
        head = httpx.head(f"{stack.url}/v1/streams/{job_id}", headers=auth(), timeout=30)
        elapsed = time.monotonic() - started
        watched = stack.redis.client().exists(keys.job_watch(job_id))
        frames = FrameReader(stream).rest()

    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("text/event-stream")
    assert head.headers["x-conduit-job-id"] == job_id
    assert elapsed < 1.0  # a GET would relay until the job ends, 1.5 s later
    assert watched == 0  # a resume relay marks the job watched as soon as it reads
    text = "".join(
        json.loads(data)["choices"][0]["delta"].get("content") or ""
        for _, data in frames[:-1]
        if '"choices":[{' in data
    )
    assert text == "one two three four" and frames[-1][1] == "[DONE]"
    assert stack.fake.requests[-1].completed  # the job ran to its end: the HEAD cancelled nothing


# --- gzip -------------------------------------------------------------------------------------------


def test_a_json_answer_is_gzipped_only_when_the_client_accepts_it(stack: Stack) -> None:
    text = "a long answer " * 100
    url = f"{stack.url}/v1/chat/completions"
    stack.fake.push(Reply(text=text))
    with httpx.stream("POST", url, json=CHAT, headers={**auth(), "accept-encoding": "gzip"}, timeout=30) as response:
        raw = b"".join(response.iter_raw())
        headers = response.headers
    stack.fake.push(Reply(text=text))
    plain = httpx.post(url, json=CHAT, headers={**auth(), "accept-encoding": "identity"}, timeout=30)

    assert headers["content-encoding"] == "gzip" and "Accept-Encoding" in headers["vary"]
    assert raw[:2] == b"\x1f\x8b" and int(headers["content-length"]) == len(raw)
    assert json.loads(gzip.decompress(raw))["choices"][0]["message"]["content"] == text
    assert headers["x-conduit-job-id"]
    assert "content-encoding" not in plain.headers and "Accept-Encoding" in plain.headers["vary"]
    assert plain.json()["choices"][0]["message"]["content"] == text


def test_a_stream_is_never_gzipped_and_its_first_frame_comes_before_the_upstream_ends(stack: Stack) -> None:
    tokens = [f"token{n} " for n in range(6)]
    stack.fake.push(Reply(tokens=tokens, delay=0.3))
    body = {**CHAT, "stream": True}
    headers = {**auth(), "accept-encoding": "gzip"}
    with httpx.stream("POST", f"{stack.url}/v1/chat/completions", json=body, headers=headers, timeout=30) as stream:
        reader = FrameReader(stream)
        contents: list[str] = []
        upstream_done_at_first_token = None
        while (frame := reader.next()) is not None and frame[1] != "[DONE]":
            delta = (json.loads(frame[1])["choices"] or [{}])[0].get("delta", {}).get("content")
            if delta:
                if not contents:
                    upstream_done_at_first_token = stack.fake.requests[-1].completed
                contents.append(delta)
        assert "content-encoding" not in stream.headers

    assert "".join(contents) == "".join(tokens)
    assert upstream_done_at_first_token is False  # relayed frame by frame, not gathered
