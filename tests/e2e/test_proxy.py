"""The proxy endpoints through the real stack (an API, a worker, Redis), with the official SDKs as clients and
fake upstreams on loopback that this module's settings allow (``CONDUIT_PROXY_ALLOW``; nothing else does):
OpenAI-compatible chat completions with ``openai`` pointed at the proxy path, Gemini's own API with
``google-genai`` pointed at the Gemini proxy path, both streamed and not; Google's error shape; the client's
key refused upstream as its own 401; the tiers. The last test greps every log and all of Redis for the
canary keys the others sent."""

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest
import redis
from google import genai
from google.genai import types

from tests.fakes.upstream import Fail, FakeUpstream, Reply
from tests.fakes.upstream_formats import SOURCES
from tests.harness import auth, token
from tests.stack import Stack, own_stack

CANARY_OPENAI = f"sk-canary-{secrets.token_hex(8)}"
CANARY_GEMINI = f"AIzaCANARY{secrets.token_hex(8)}"
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


def enc(url: str) -> str:
    return quote(url, safe="")


class Proxied:
    def __init__(self, stack: Stack, fake: FakeUpstream, logs: Path) -> None:
        self.stack, self.fake, self.logs = stack, fake, logs
        self.url = stack.url
        self.openai_base = f"{self.url}/api/v1/proxy/{enc(fake.openai_base_url)}/{CANARY_OPENAI}"
        self.gemini_path = f"{self.url}/api/v1/proxy/{enc(fake.gemini_base_url)}"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    logs = tmp_path_factory.mktemp("proxy")
    with FakeUpstream(keys={"openai": CANARY_OPENAI, "anthropic": "sk-ant-x", "gemini": CANARY_GEMINI}) as fake:
        allow = {"CONDUIT_PROXY_ALLOW": f"127.0.0.1:{fake.port}"}
        with own_stack(logs, fake, worker_env=allow, api_env=allow) as stack:
            yield Proxied(stack, fake, logs)


def _sent(fake: FakeUpstream) -> Any:
    return fake.wait_for_requests(1)[-1]


def test_the_openai_sdk_through_the_proxy_path_stream_and_not(proxied: Proxied) -> None:
    client = openai.OpenAI(base_url=proxied.openai_base, api_key=token(), max_retries=0)
    proxied.fake.push(Reply(text="Hi from your upstream"), provider="openai")
    answer = client.chat.completions.create(model="my-own-model", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Hi from your upstream"
    sent = _sent(proxied.fake)
    assert sent.headers["authorization"] == f"Bearer {CANARY_OPENAI}" and sent.body["model"] == "my-own-model"

    proxied.fake.push(Reply(tokens=["one ", "two ", "three"]), provider="openai")
    stream = client.chat.completions.create(
        model="my-own-model", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "one two three"


def test_an_upstream_failing_before_its_first_token_is_retried_on_itself_only(proxied: Proxied) -> None:
    client = openai.OpenAI(base_url=proxied.openai_base, api_key=token(), max_retries=0)
    before = len(proxied.fake.requests)
    proxied.fake.push(Fail(503, retry_after=0), provider="openai")
    proxied.fake.push(Reply(text="second time lucky"), provider="openai")
    answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "second time lucky"
    assert len(proxied.fake.requests) - before == 2  # the same upstream twice; no fallback to another provider


def test_a_key_the_upstream_refuses_is_the_clients_401_with_the_key_redacted(proxied: Proxied) -> None:
    wrong = f"sk-wrong-{secrets.token_hex(8)}"
    base = proxied.openai_base.replace(CANARY_OPENAI, wrong)
    client = openai.OpenAI(base_url=base, api_key=token(), max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 401
    assert wrong not in str(refused.value.body) and wrong[:12] not in str(refused.value.body)


def test_google_genai_through_the_gemini_proxy_path_stream_and_not(proxied: Proxied) -> None:
    options = types.HttpOptions(base_url=proxied.gemini_path, headers={"authorization": f"Bearer {token()}"})
    client = genai.Client(api_key=CANARY_GEMINI, http_options=options)
    proxied.fake.push(Reply(text="Bonjour"), provider="gemini")
    answer = client.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert answer.text == "Bonjour"
    assert _sent(proxied.fake).headers["x-goog-api-key"] == CANARY_GEMINI

    proxied.fake.push(Reply(tokens=["Un ", "deux ", "trois"]), provider="gemini")
    pieces = [chunk.text for chunk in client.models.generate_content_stream(model="gemini-2.5-flash", contents="x")]
    assert "".join(p or "" for p in pieces) == "Un deux trois"


def test_google_genai_parses_the_fakes_candidates_and_grounding(proxied: Proxied) -> None:
    """The fake's Gemini frames (several candidates, Google Search grounding) as Google's own SDK reads them:
    the shapes the gateway's Gemini adapter is tested against are Gemini's."""
    options = types.HttpOptions(base_url=proxied.gemini_path, headers={"authorization": f"Bearer {token()}"})
    client = genai.Client(api_key=CANARY_GEMINI, http_options=options)
    config = types.GenerateContentConfig(candidate_count=2, tools=[types.Tool(google_search=types.GoogleSearch())])
    for stream in (False, True):
        proxied.fake.push(Reply(tokens=["Orléans ", "est ", "ensoleillée."]), provider="gemini")
        if stream:
            chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="x", config=config))
            answer = chunks[-1]
        else:
            answer = client.models.generate_content(model="gemini-2.5-flash", contents="x", config=config)
        candidates = answer.candidates or []
        assert [c.index for c in candidates] == [0, 1]
        grounding = candidates[0].grounding_metadata
        assert grounding is not None and grounding.grounding_chunks and grounding.grounding_supports
        assert [c.web.uri for c in grounding.grounding_chunks if c.web] == [url for url, _ in SOURCES]
        segment = grounding.grounding_supports[0].segment
        assert segment is not None and segment.text == "Orléans "


def test_geminis_answer_and_stream_come_back_as_gemini_sent_them(proxied: Proxied) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
    headers = {**auth(), "x-goog-api-key": CANARY_GEMINI}
    direct_headers = {"x-goog-api-key": CANARY_GEMINI}
    model = "/v1beta/models/gemini-2.5-flash"
    for path, query in ((":generateContent", ""), (":streamGenerateContent", "?alt=sse")):
        proxied.fake.push(Reply(tokens=["a", "b"]), provider="gemini")
        through = httpx.post(f"{proxied.gemini_path}{model}{path}{query}", json=body, headers=headers, timeout=10)
        proxied.fake.push(Reply(tokens=["a", "b"]), provider="gemini")
        direct = httpx.post(f"{proxied.fake.gemini_base_url}{model}{path}{query}", json=body, headers=direct_headers)
        assert through.status_code == direct.status_code == 200
        assert through.headers["content-type"].split(";")[0] == direct.headers["content-type"].split(";")[0]
        if query:
            assert _frames(through.content) == _frames(direct.content)
            assert b"id:" not in through.content and b": ping" not in through.content
        else:
            assert _unvarying(through.json()) == _unvarying(direct.json())


def _frames(raw: bytes) -> list[Any]:
    return [_unvarying(json.loads(f[len(b"data: ") :])) for f in raw.split(b"\r\n\r\n") if f.startswith(b"data: ")]


def _unvarying(frame: Any) -> Any:
    frame.pop("responseId", None)
    return frame


@pytest.mark.parametrize(
    ("body", "status", "google_status", "says"),
    [
        (b"{", 400, "INVALID_ARGUMENT", "Invalid JSON payload received."),
        (b'{"contents": []}', 400, "INVALID_ARGUMENT", "contents is not specified"),
        (b'{"contents": [{"parts": [{"text": "x"}]}], "bogus": 1}', 400, "INVALID_ARGUMENT", 'Unknown name "bogus"'),
        (
            b'{"contents": [{"parts": [{"text": "x"}]}], "safetySettings": [{"category": "NOPE", "threshold": "OFF"}]}',
            400,
            "INVALID_ARGUMENT",
            "Invalid value at 'safety_settings[0].category'",
        ),
    ],
)
def test_a_request_gemini_would_refuse_gets_googles_error(
    proxied: Proxied, body: bytes, status: int, google_status: str, says: str
) -> None:
    headers = {**auth(), "x-goog-api-key": CANARY_GEMINI, "content-type": "application/json"}
    answer = httpx.post(f"{proxied.gemini_path}{GENERATE}", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == status and error["status"] == google_status and says in error["message"]


def test_without_a_key_the_gateways_own_is_used_for_its_own_gemini_url_only(proxied: Proxied) -> None:
    body = {"contents": [{"parts": [{"text": "hello"}]}]}
    proxied.fake.push(Reply(text="with the gateway's key"), provider="gemini")
    own = httpx.post(f"{proxied.gemini_path}{GENERATE}", json=body, headers=auth())
    assert own.status_code == 200, own.text
    other = (
        f"{proxied.url}/api/v1/proxy/{enc(proxied.fake.url + '/other')}/v1beta/models/gemini-2.5-flash:generateContent"
    )
    refused = httpx.post(other, json=body, headers=auth())
    assert refused.status_code == 401 and refused.json()["error"]["status"] == "UNAUTHENTICATED", refused.text


def test_the_free_tier_gets_a_403_on_both(proxied: Proxied) -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    openai_answer = httpx.post(f"{proxied.openai_base}/chat/completions", json=chat, headers=auth("free"))
    assert openai_answer.status_code == 403 and "error" in openai_answer.json()
    gemini = httpx.post(
        f"{proxied.gemini_path}{GENERATE}",
        json={"contents": [{"parts": [{"text": "x"}]}]},
        headers={**auth("free"), "x-goog-api-key": CANARY_GEMINI},
    )
    assert gemini.status_code == 403 and gemini.json()["error"]["status"] == "PERMISSION_DENIED", gemini.text


def test_usage_is_counted_per_user_under_the_upstreams_host(proxied: Proxied) -> None:
    client = openai.OpenAI(base_url=proxied.openai_base, api_key=token(user="proxy-usage"), max_retries=0)
    proxied.fake.push(Reply(text="counted"), provider="openai")
    client.chat.completions.create(model="their-model", messages=[{"role": "user", "content": "hi"}])
    headers = {**auth(user="proxy-usage"), "x-goog-api-key": CANARY_GEMINI}
    proxied.fake.push(Reply(text="counted too"), provider="gemini")
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    assert httpx.post(f"{proxied.gemini_path}{GENERATE}", json=body, headers=headers).status_code == 200
    host = f"127.0.0.1:{proxied.fake.port}"
    wanted = {(host, "their-model"): 1, (host, "gemini-2.5-flash"): 1}
    deadline = time.monotonic() + 5  # the worker writes usage every half second
    while True:
        today = httpx.get(f"{proxied.url}/v1/usage", headers=auth(user="proxy-usage")).json()["days"][0]
        rows = {(row["provider"], row["model"]): row["requests"] for row in today["models"]}
        if rows == wanted or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows == wanted


def _resumed(proxied: Proxied, url: str, body: dict[str, Any], headers: dict[str, str], keep: int) -> bytes:
    """A stream read for ``keep`` frames then dropped (its job detached: it runs on), and its resume after them:
    all its bytes."""
    got = b""
    headers = {**headers, "x-conduit-on-disconnect": "detach"}
    with httpx.stream("POST", url, json=body, headers=headers, timeout=10) as response:
        assert response.status_code == 200
        job = response.headers["x-conduit-job-id"]
        for chunk in response.iter_raw():
            got += chunk
            if got.count(b"data: ") >= keep:
                break
    frames = got.replace(b"\r\n", b"\n").split(b"\n\n")[:keep]
    got = b"\n\n".join(frames) + b"\n\n"
    last = [line for line in frames[-1].split(b"\n") if line.startswith(b"id: ")]
    resume_from = last[0][4:].decode() if last else str(keep)
    rest = httpx.get(f"{proxied.url}/v1/streams/{job}", headers={**headers, "last-event-id": resume_from}, timeout=10)
    assert rest.status_code == 200, rest.text
    return got + rest.content.replace(b"\r\n", b"\n")


def test_both_streams_resume_with_last_event_id(proxied: Proxied) -> None:
    words = [f"w{i} " for i in range(8)]
    proxied.fake.push(Reply(tokens=words, delay=0.05), provider="openai")
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    whole = _resumed(proxied, f"{proxied.openai_base}/chat/completions", chat, auth(), keep=3)
    texts = [json.loads(f[6:]) for f in whole.split(b"\n\n") for f in f.split(b"\n") if f.startswith(b"data: {")]
    assert all("choices" in t for t in texts), whole
    assert "".join(t["choices"][0]["delta"].get("content") or "" for t in texts if t["choices"]) == "".join(words)

    proxied.fake.push(Reply(tokens=words, delay=0.05), provider="gemini")
    url = f"{proxied.gemini_path}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    whole = _resumed(proxied, url, body, {**auth(), "x-goog-api-key": CANARY_GEMINI}, keep=3)
    frames = [json.loads(f[6:]) for f in whole.split(b"\n\n") if f.startswith(b"data: ")]
    text = "".join(p.get("text", "") for f in frames for c in f["candidates"] for p in c["content"]["parts"])
    assert text == "".join(words)


def test_a_client_that_leaves_gets_the_upstream_call_closed(proxied: Proxied) -> None:
    gemini = f"{proxied.gemini_path}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("openai", f"{proxied.openai_base}/chat/completions", chat),
        ("gemini", gemini, {"contents": [{"parts": [{"text": "hi"}]}]}),
    ]
    for provider, url, body in calls:
        proxied.fake.push(Reply(tokens=[f"t{i} " for i in range(100)], delay=0.1), provider=provider)  # type: ignore[arg-type]
        headers = {**auth(), "x-goog-api-key": CANARY_GEMINI}
        with httpx.stream("POST", url, json=body, headers=headers, timeout=10) as response:
            assert response.status_code == 200
            next(response.iter_raw())
        assert proxied.fake.wait_for_disconnect(timeout=5) is not None, provider


def _value(client: Any, key: bytes) -> bytes:
    """Everything a key holds, as bytes (not its DUMP: that may be compressed)."""
    kind = client.type(key).decode()
    parts: list[bytes] = []
    if kind == "string":
        parts = [client.get(key) or b""]
    elif kind == "hash":
        parts = [b for pair in client.hgetall(key).items() for b in pair]
    elif kind in ("list", "zset"):
        parts = client.lrange(key, 0, -1) if kind == "list" else client.zrange(key, 0, -1)
    elif kind == "set":
        parts = list(client.smembers(key))
    elif kind == "stream":
        parts = [b for _, fields in client.xrange(key) for pair in fields.items() for b in pair]
    return b"".join(parts)


def test_zz_no_log_line_and_nothing_in_redis_holds_a_clients_key(proxied: Proxied) -> None:
    """Run last (by name, in this module): every test above sent the canary keys."""
    found = []
    for path in proxied.logs.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            found += [f"{path.name}: {canary}" for canary in (CANARY_OPENAI, CANARY_GEMINI) if canary.encode() in text]
    client = redis.Redis.from_url(proxied.stack.redis.url)
    try:
        for key in client.scan_iter(count=1000):
            held = key + _value(client, key)
            found += [f"redis {key!r}" for canary in (CANARY_OPENAI, CANARY_GEMINI) if canary.encode() in held]
    finally:
        client.close()
    assert found == []
