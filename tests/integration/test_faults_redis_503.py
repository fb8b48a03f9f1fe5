"""Redis frozen (SIGSTOP), killed (SIGKILL) or restarted: every endpoint that needs Redis answers a 503 with
``Retry-After``, in its own error shape, within 2 s, and none a 500; then all of them recover by themselves.

The endpoints are the app's own routes, enumerated: a new route fails ``test_every_route_is_exercised`` until
it has a call here (or is one that never touches Redis).
"""

import asyncio
import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
import pytest
import redis.asyncio as aioredis
from litestar.exceptions import LitestarDeprecationWarning

from services.api.app import create_app
from services.api.auth.keys import KeyStore
from services.api.settings import ApiSettings
from tests.fakes.upstream import DEFAULT_KEYS, FakeUpstream
from tests.harness import RedisServer, WorkerProcess, auth, provider_env
from tests.stack import Stack, own_stack

pytestmark = pytest.mark.anyio

API_ENV = {"CONDUIT_HEARTBEAT_INTERVAL": "1", "CONDUIT_COMMIT_TIMEOUT": "1"}
MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = {"model": "gpt-4o-mini", "messages": MESSAGES}
BATCH = {"endpoint": "/v1/chat/completions", "completion_window": "24h"}
BATCH_LINE = json.dumps({"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": CHAT}).encode()
#: routes that never touch Redis: they answer as usual whatever Redis does
#: routes that answer without Redis (``/metrics`` from memory, skipping its Redis samples when Redis is away)
REDIS_FREE = ("/healthz", "/docs", "/openapi", "/api/v1/personas", "/metrics")
#: what a client may be told while Redis is away: the gateway is unavailable, or (its workers unseen) has none
CODES = {"unavailable", "no_worker"}
WITHIN = 2.0
#: what a call that succeeds answers (a chat made is a 201)
OK = (200, 201)


def _from_memory(call: "Call") -> bool:
    """The model list with a JWT needs no Redis call while the worker directory is fresh (refreshed every
    2 s): right after Redis went away it may still be a 200; once the directory's refresh failed, a 503."""
    return call.path.startswith("/v1/models") and not call.key


class Call(NamedTuple):
    method: str
    path: str
    body: dict[str, Any] | None = None
    #: authenticate with an API key (looked up in Redis) rather than a JWT (checked without Redis)
    key: bool = False
    #: send a batch input file, multipart (``body`` unused)
    upload: bool = False


def _chat_calls(chat_id: str, message_id: str) -> dict[str, list[Call]]:
    """The chat API's (DELETE /api/v1/chat/{id} shares its route with PATCH, which stands for it: a chat deleted
    once would make every later call a 404)."""
    ask = {"chat_history": MESSAGES, "model": "echo"}
    chat = f"/api/v1/chat/{chat_id}"
    return {
        "/api/v1/chat/generate": [Call("POST", "/api/v1/chat/generate", ask, key=True)],
        "/api/v1/chat/generate/stream": [Call("POST", "/api/v1/chat/generate/stream", ask)],
        "/api/v1/chat": [Call("POST", "/api/v1/chat", ask)],
        "/api/v1/chat/history": [Call("GET", "/api/v1/chat/history"), Call("GET", "/api/v1/chat/history", key=True)],
        "/api/v1/chat/fetch/{chat_id:str}": [Call("GET", f"/api/v1/chat/fetch/{chat_id}")],
        "/api/v1/chat/fork": [Call("POST", "/api/v1/chat/fork", {"chatId": chat_id, "messageId": message_id})],
        "/api/v1/chat/{chat_id:str}/pin": [Call("PUT", f"{chat}/pin", {"pinned": True})],
        "/api/v1/chat/{chat_id:str}": [Call("PATCH", chat, {"title": "renamed"})],
        "/api/v1/chat/new": [Call("POST", "/api/v1/chat/new", {"messages": MESSAGES})],
    }


def _file_calls(file_id: str, batch_id: str) -> dict[str, list[Call]]:
    """The files and batches APIs' (DELETE /v1/files/{id} shares its route with the GET, which stands for it)."""
    return {
        "/v1/files": [Call("POST", "/v1/files", upload=True), Call("GET", "/v1/files", key=True)],
        "/v1/files/{file_id:str}": [Call("GET", f"/v1/files/{file_id}")],
        "/v1/files/{file_id:str}/content": [Call("GET", f"/v1/files/{file_id}/content")],
        "/v1/batches": [
            Call("POST", "/v1/batches", {"input_file_id": file_id, **BATCH}),
            Call("GET", "/v1/batches", key=True),
        ],
        "/v1/batches/{batch_id:str}": [Call("GET", f"/v1/batches/{batch_id}")],
        "/v1/batches/{batch_id:str}/cancel": [Call("POST", f"/v1/batches/{batch_id}/cancel")],
        "/v1/batches/{batch_id:str}/results": [Call("GET", f"/v1/batches/{batch_id}/results")],
    }


def _proxy_calls(upstream: str) -> dict[str, list[Call]]:
    """The proxy endpoints', to the fake upstream at ``upstream`` (which the stack allows): the OpenAI-compatible
    one with the fake's key, the Gemini one with the gateway's own (the fake is its configured Gemini URL)."""
    encoded = quote(upstream, safe="")
    openai = f"/api/v1/proxy/{quote(upstream + '/v1', safe='')}/{DEFAULT_KEYS['openai']}/chat/completions"
    gemini = f"/api/v1/proxy/{encoded}/v1beta/models/gemini-2.5-flash:generateContent"
    return {
        "/api/v1/proxy/{proxyUrl:str}/{OpenAIAPIKey:str}/chat/completions": [
            Call("POST", openai, {**CHAT, "model": "their-model"})
        ],
        "/api/v1/proxy/{geminiUrl:str}/{apiVersion:str}/models/{modelTask:str}": [
            Call("POST", gemini, {"contents": [{"parts": [{"text": "hi"}]}]}, key=True)
        ],
    }


def _calls(
    job_id: str,
    chat_id: str = "chat_x",
    message_id: str = "msg_x",
    file_id: str = "file-x",
    batch_id: str = "batch_x",
    upstream: str = "http://127.0.0.1:1",
) -> dict[str, list[Call]]:
    """Per route (as the app names it), requests that succeed while Redis is up."""
    return {
        **_chat_calls(chat_id, message_id),
        **_file_calls(file_id, batch_id),
        **_proxy_calls(upstream),
        "/v1/chat/completions": [
            Call("POST", "/v1/chat/completions", CHAT),
            Call("POST", "/v1/chat/completions", {**CHAT, "stream": True}),
            Call("POST", "/v1/chat/completions", CHAT, key=True),
        ],
        "/v1/completions": [
            Call("POST", "/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "hi", "stream": True})
        ],
        "/v1/models": [Call("GET", "/v1/models"), Call("GET", "/v1/models", key=True)],
        "/v1/models/{model_id:path}": [Call("GET", "/v1/models/openai/gpt-4o-mini")],
        "/api/ai/chat": [Call("POST", "/api/ai/chat", {"messages": MESSAGES, "stream": True})],
        "/api/ai/completions": [Call("POST", "/api/ai/completions", {"prompt": "hi"}, key=True)],
        "/v1/streams/{job_id:str}": [Call("GET", f"/v1/streams/{job_id}")],
        "/v1/usage": [Call("GET", "/v1/usage"), Call("GET", "/v1/usage", key=True)],
        "/readyz": [Call("GET", "/readyz")],
    }


class Outcome(NamedTuple):
    call: Call
    status: int
    body: Any
    retry_after: str | None
    seconds: float


class Gateway(NamedTuple):
    stack: Stack
    key: str
    job_id: str
    chat_id: str
    message_id: str
    file_id: str
    batch_id: str


async def _send(client: httpx.AsyncClient, url: str, call: Call, key: str) -> Outcome:
    headers = {"authorization": f"Bearer {key}"} if call.key else auth()
    started = time.monotonic()
    if call.upload:
        files, form = {"file": ("in.jsonl", BATCH_LINE)}, {"purpose": "batch"}
        response = await client.post(f"{url}{call.path}", files=files, data=form, headers=headers)
    else:
        response = await client.request(call.method, f"{url}{call.path}", json=call.body, headers=headers)
    seconds = time.monotonic() - started
    is_json = response.headers.get("content-type", "").startswith("application/json")
    body = response.json() if is_json else response.text
    return Outcome(call, response.status_code, body, response.headers.get("retry-after"), seconds)


async def _hit_all(gateway: Gateway) -> list[Outcome]:
    ids = (gateway.job_id, gateway.chat_id, gateway.message_id, gateway.file_id, gateway.batch_id)
    groups = _calls(*ids, upstream=gateway.stack.fake.url).values()
    calls = [call for group in groups for call in group]
    async with httpx.AsyncClient(timeout=30) as client:
        return list(await asyncio.gather(*(_send(client, gateway.stack.url, call, gateway.key) for call in calls)))


def _wrong(outcome: Outcome) -> str | None:
    """What is wrong with ``outcome``, if it is not a 503 with Retry-After in the endpoint's shape within 2 s."""
    call, body = outcome.call, outcome.body
    if outcome.status != 503:
        return f"{call}: {outcome.status} {body}"
    if outcome.retry_after is None or int(outcome.retry_after) < 1:
        return f"{call}: no Retry-After"
    if outcome.seconds >= WITHIN:
        return f"{call}: answered in {outcome.seconds:.2f} s"
    if call.path == "/readyz":
        shaped = body["status"] == "unavailable" and bool(body["reason"])
    elif call.path.startswith("/api/v1/proxy/") and "/models/" in call.path:  # Google's shape
        shaped = body["error"]["code"] == 503 and body["error"]["status"] == "UNAVAILABLE"
    elif call.path.startswith("/api/v1/proxy/"):  # OpenAI's
        shaped = body["error"]["code"] in CODES and body["error"]["type"] == "server_error"
    elif call.path.startswith("/api/v1/"):
        shaped = body["error"]["code"] in CODES and body["error"]["status"] == 503
    elif call.path.startswith("/api/ai/"):
        shaped = set(body) == {"detail", "code"} and body["code"] in CODES
    else:
        shaped = body["error"]["code"] in CODES and body["error"]["type"] == "server_error"
    return None if shaped else f"{call}: body {body}"


def _check_refused(outcomes: list[Outcome], *, at_once: bool = False) -> None:
    """``at_once``: sent as Redis went away, when the directory may still be fresh."""
    wrong = [
        problem
        for outcome in outcomes
        if not (at_once and outcome.status in OK and _from_memory(outcome.call)) and (problem := _wrong(outcome))
    ]
    assert not wrong, "\n".join(wrong)


async def _recovered(gateway: Gateway, within: float = 20.0) -> float:
    """Seconds until every call succeeds again, with no 500 in between (the worker's pooled connections from
    before a restart retry once, as the API's do)."""
    started = time.monotonic()
    while True:
        outcomes = await _hit_all(gateway)
        assert not [o for o in outcomes if o.status == 500], outcomes
        if all(o.status in OK for o in outcomes):
            return time.monotonic() - started
        assert time.monotonic() - started < within, [o for o in outcomes if o.status not in OK]
        await asyncio.sleep(0.5)


def _create_key(url: str) -> str:
    async def create() -> str:
        client = aioredis.Redis.from_url(url)
        try:
            secret, _ = await KeyStore(client).create("tester", "pro")
        finally:
            await client.aclose()
        return secret

    return asyncio.run(create())


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Gateway]:
    logs: Path = tmp_path_factory.mktemp("redis-503")
    allow = {"CONDUIT_PROXY_ALLOW": f"127.0.0.1:{fake.port}"}  # the proxy endpoints' upstream
    with own_stack(logs, fake, worker_env=allow, api_env={**API_ENV, **allow}) as stack:
        batches = WorkerProcess(logs, stack.redis.url, provider_env(fake), queues="batch")
        try:
            batches.wait_ready()
            response = httpx.post(f"{stack.url}/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth())
            assert response.status_code == 200
            saved = httpx.post(f"{stack.url}/api/v1/chat/new", json={"messages": MESSAGES}, headers=auth()).json()
            job_id = response.headers["x-conduit-job-id"]
            upload = {"file": ("in.jsonl", BATCH_LINE)}
            made = httpx.post(f"{stack.url}/v1/files", files=upload, data={"purpose": "batch"}, headers=auth()).json()
            batch = httpx.post(f"{stack.url}/v1/batches", json={"input_file_id": made["id"], **BATCH}, headers=auth())
            key = _create_key(stack.redis.url)
            yield Gateway(stack, key, job_id, saved["id"], saved["messages"][0]["id"], made["id"], batch.json()["id"])
        finally:
            batches.stop()
            stack.redis.stop()  # a test may have replaced it with a restarted one


def test_every_route_is_exercised() -> None:
    with warnings.catch_warnings():  # the handlers' inferred dependencies: not what this test is about
        warnings.simplefilter("ignore", LitestarDeprecationWarning)
        app = create_app(ApiSettings(jwt_secret="x" * 40))
    paths = {route.path for route in app.routes if not route.path.startswith(REDIS_FREE)}
    assert paths == set(_calls("job")), "a route without a call in this test (or a call for a route gone)"


async def test_with_redis_up_every_call_succeeds(gateway: Gateway) -> None:
    outcomes = await _hit_all(gateway)
    assert [o for o in outcomes if o.status not in OK] == []


async def test_a_frozen_redis_is_a_quick_503_everywhere_then_recovers(gateway: Gateway) -> None:
    gateway.stack.redis.pause()  # SIGSTOP: connections stay open, nothing answers
    try:
        first = await _hit_all(gateway)  # before the gateway has noticed anything
        await asyncio.sleep(4.0)
        later = await _hit_all(gateway)  # after its pub/sub connection gave up
    finally:
        gateway.stack.redis.resume()
    _check_refused(first, at_once=True)
    _check_refused(later)
    took = await _recovered(gateway)
    slowest = max(o.seconds for o in first + later)
    print(
        f"\nRedis SIGSTOP: {len(first + later)} calls, all 503 + Retry-After, slowest {slowest:.2f} s; "
        f"recovered in {took:.1f} s"
    )


async def test_a_killed_then_restarted_redis_is_a_quick_503_everywhere_then_recovers(gateway: Gateway) -> None:
    stack = gateway.stack
    stack.redis.client().save()  # the restarted server loads this: keys, records and logs survive
    stack.redis.kill()
    try:
        first = await _hit_all(gateway)
        await asyncio.sleep(4.0)
        later = await _hit_all(gateway)
    finally:
        stack.redis = RedisServer(stack.redis.log.parent, port=stack.redis.port)
    _check_refused(first, at_once=True)
    _check_refused(later)
    took = await _recovered(gateway)
    slowest = max(o.seconds for o in first + later)
    print(
        f"\nRedis SIGKILL: {len(first + later)} calls, all 503 + Retry-After, slowest {slowest:.2f} s; "
        f"recovered in {took:.1f} s after the restart"
    )
