"""Limits that hold across API replicas (one Lua admission per request), API keys, usage counters."""

import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared import keys
from tests.fakes.upstream import FakeUpstream, Reply
from tests.harness import ROOT, ApiProcess, auth, token
from tests.stack import Stack, two_api_stack
from tests.streams import watch

pytestmark = pytest.mark.anyio

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
LIMITS = {
    "CONDUIT_TIER_PRO_REQUESTS_PER_MINUTE": "10",
    "CONDUIT_TIER_PRO_TOKENS_PER_MINUTE": "0",
    "CONDUIT_TIER_PRO_CONCURRENT_STREAMS": "0",
    "CONDUIT_TIER_PRO_MAX_TOKENS": "0",
}


def _conduit(stack: Stack, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": stack.redis.url}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def two_apis(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[tuple[Stack, ApiProcess]]:
    logs: Path = tmp_path_factory.mktemp("limits")
    with two_api_stack(logs, fake, api_env=LIMITS) as pair:
        yield pair


async def test_two_api_processes_admit_exactly_the_limit_and_forwarded_for_changes_nothing(
    two_apis: tuple[Stack, ApiProcess],
) -> None:
    stack, second = two_apis
    urls = [stack.url, second.base_url] * 25
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    f"{url}/v1/chat/completions",
                    json=CHAT,
                    headers={**auth(user="limited"), "x-forwarded-for": f"10.0.{i}.{random.randint(1, 250)}"},
                )
                for i, url in enumerate(urls)
            )
        )
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 40
    for response in responses:
        assert response.headers["x-ratelimit-limit-requests"] == "10"
        assert int(response.headers["x-ratelimit-remaining-requests"]) >= 0
        assert response.headers["x-ratelimit-reset-requests"].endswith("s")
    refused = next(r for r in responses if r.status_code == 429)
    assert 1 <= int(refused.headers["retry-after"]) <= 6
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    served = {r.headers.get("x-conduit-job-id") for r in responses if r.status_code == 200}
    assert len(served) == 10
    async with httpx.AsyncClient(timeout=30) as client:
        other = await client.post(f"{second.base_url}/v1/chat/completions", json=CHAT, headers=auth(user="unrelated"))
    assert other.status_code == 200  # limits are per principal


ORPHAN_GRACE = 1.5


@pytest.fixture
def leased(tmp_path: Path, fake: FakeUpstream) -> Iterator[tuple[Stack, ApiProcess]]:
    env = {
        **LIMITS,
        "CONDUIT_TIER_PRO_REQUESTS_PER_MINUTE": "0",
        "CONDUIT_TIER_PRO_CONCURRENT_STREAMS": "2",
        "CONDUIT_TIER_PRO_TOKENS_PER_MINUTE": "1000",
        "CONDUIT_LEASE_TTL": "2",
        "CONDUIT_HEARTBEAT_INTERVAL": "0.5",
    }
    worker_env = {"CONDUIT_LEASE_TTL": "2", "CONDUIT_ORPHAN_GRACE": str(ORPHAN_GRACE)}
    with two_api_stack(tmp_path, fake, worker_env=worker_env, api_env=env) as pair:
        yield pair


def _slow(fake: FakeUpstream, count: int = 1, seconds: float = 2.0) -> None:
    for _ in range(count):
        fake.push(Reply(tokens=[f" s{i}" for i in range(10)], delay=seconds / 10))


async def test_a_concurrency_lease_is_released_at_the_end_on_disconnect_and_by_expiry(
    leased: tuple[Stack, ApiProcess],
) -> None:
    stack, second = leased
    url = f"{stack.url}/v1/chat/completions"
    body = {**CHAT, "stream": True, "max_tokens": 50}
    redis = stack.redis.client()
    async with httpx.AsyncClient(timeout=30) as client:
        _slow(stack.fake, 2)
        first, second_stream = (
            asyncio.create_task(watch(client, "POST", url, json_body=body, headers=auth())) for _ in range(2)
        )
        await asyncio.sleep(0.5)
        third = await client.post(url, json=body, headers=auth())
        assert third.status_code == 429
        assert "concurrent streams" in third.json()["error"]["message"]
        assert (await first).done and (await second_stream).done
        assert redis.zcard(keys.lease("user:tester")) == 0  # released at the end
        _slow(stack.fake, 1)
        left = await watch(client, "POST", url, json_body=body, headers=auth(), leave_after=0.5)
        assert left.closed_by_us is not None
        await asyncio.sleep(0.3)
        assert redis.zcard(keys.lease("user:tester")) == 0  # released on disconnect
    _slow(stack.fake, 1, seconds=10)
    with httpx.stream("POST", url, json=body, headers=auth(), timeout=30) as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # kept: a dropped line iterator closes the connection (a disconnect)
        next(lines)
        assert redis.zcard(keys.lease("user:tester")) == 1
        stack.api.kill()  # the job's relay is gone without a word: its worker stops it after the orphan grace
    killed = time.monotonic()
    while redis.zcard(keys.lease("user:tester")) and time.monotonic() - killed < 10:  # noqa: ASYNC110 - polls Redis
        await asyncio.sleep(0.05)
    expired_after = time.monotonic() - killed
    assert expired_after < ORPHAN_GRACE + 2.5  # the lease lives as long as its job, which ends nobody listening
    stack.fake.reset()
    _slow(stack.fake, 2, seconds=0.1)
    async with httpx.AsyncClient(timeout=30) as client:  # both stream slots are free again, on the other replica
        again = await asyncio.gather(
            *(client.post(f"{second.base_url}/v1/chat/completions", json=body, headers=auth()) for _ in range(2))
        )
    assert [response.status_code for response in again] == [200, 200]
    print(f"\nlease of a killed API process ran out after {expired_after:.1f} s (ttl 2 s)")


async def test_tokens_per_minute_are_reserved_at_admission_and_settled_with_the_real_usage(
    leased: tuple[Stack, ApiProcess],
) -> None:
    stack, _ = leased
    url = f"{stack.url}/v1/chat/completions"
    async with httpx.AsyncClient(timeout=30) as client:
        _slow(stack.fake, 1, seconds=1.5)
        body = {**CHAT, "user": "x", "max_tokens": 600}
        running = asyncio.create_task(client.post(url, json=body, headers=auth(user="tpm")))
        await asyncio.sleep(0.4)
        refused = await client.post(url, json=body, headers=auth(user="tpm"))  # 600 more would pass 1000
        assert refused.status_code == 429
        assert "tokens per minute" in refused.json()["error"]["message"]
        first = await running
        assert first.status_code == 200
        assert first.headers["x-ratelimit-limit-tokens"] == "1000"
        reserved_left = int(first.headers["x-ratelimit-remaining-tokens"])
        assert reserved_left <= 1000 - 600
        await asyncio.sleep(0.8)  # the worker settles within its ledger interval (0.5 s)
        again = await client.post(url, json={**CHAT, "max_tokens": 600}, headers=auth(user="tpm"))
        assert again.status_code == 200  # the first job used ~15 tokens, not 600: the rest came back
        used = first.json()["usage"]["total_tokens"]
        left = int(again.headers["x-ratelimit-remaining-tokens"])
        assert 1000 - used - 605 - 30 <= left <= 1000 - 600  # refilled a little meanwhile
    async with httpx.AsyncClient(timeout=30) as client:
        too_big = await client.post(url, json={**CHAT, "max_tokens": 2000}, headers=auth(user="tpm"))
    assert too_big.status_code == 400
    assert too_big.json()["error"]["param"] == "max_tokens"


def test_api_keys_work_until_revoked_or_expired_on_every_replica(two_apis: tuple[Stack, ApiProcess]) -> None:
    stack, second = two_apis
    made = _conduit(stack, "keys", "create", "--user", "keyholder", "--tier", "pro", "--name", "ci")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("sk-conduit-")
    assert secret not in str(stack.redis.client().keys("*"))  # only its hash is stored
    for base in (stack.url, second.base_url):
        answered = httpx.post(
            f"{base}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {secret}"}, timeout=30
        )
        assert answered.status_code == 200, answered.text
    via_header = httpx.post(f"{stack.url}/v1/chat/completions", json=CHAT, headers={"x-api-key": secret}, timeout=30)
    assert via_header.status_code == 200
    listed = _conduit(stack, "keys", "list", "--user", "keyholder")
    row = listed.stdout.splitlines()[1]
    key_id = row.split()[0]
    assert row.count(" UTC") == 2  # created, and last used (it never expires)
    assert "active" in listed.stdout and "ci" in listed.stdout and secret not in listed.stdout
    assert _conduit(stack, "keys", "revoke", key_id).returncode == 0
    for base in (stack.url, second.base_url):
        refused = httpx.post(
            f"{base}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {secret}"}, timeout=30
        )
        assert refused.status_code == 401
        assert "revoked" in refused.json()["error"]["message"]
    assert "revoked" in _conduit(stack, "keys", "list").stdout
    short = _conduit(stack, "keys", "create", "--user", "keyholder", "--tier", "pro", "--expires", "1s").stdout.strip()
    time.sleep(1.2)
    expired = httpx.post(
        f"{stack.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {short}"}, timeout=30
    )
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]
    made_up = "sk-conduit-" + "x" * 43
    assert (
        httpx.get(f"{stack.url}/v1/models", headers={"authorization": f"Bearer {made_up}"}, timeout=30).status_code
        == 401
    )


def test_a_key_with_limits_of_its_own_and_a_free_key(two_apis: tuple[Stack, ApiProcess]) -> None:
    stack, _ = two_apis
    own = _conduit(stack, "keys", "create", "--user", "batcher", "--tier", "pro", "--rpm", "2").stdout.strip()
    statuses = [
        httpx.post(
            f"{stack.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {own}"}, timeout=30
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    free = _conduit(stack, "keys", "create", "--user", "tryout", "--tier", "free").stdout.strip()
    headers = {"authorization": f"Bearer {free}"}
    assert httpx.get(f"{stack.url}/v1/models", headers=headers, timeout=30).status_code == 200
    assert httpx.post(f"{stack.url}/v1/chat/completions", json=CHAT, headers=headers, timeout=30).status_code == 403


def test_usage_is_counted_per_user_day_and_model(two_apis: tuple[Stack, ApiProcess]) -> None:
    stack, second = two_apis
    answers = []
    for base in (stack.url, second.base_url, stack.url):
        response = httpx.post(f"{base}/v1/chat/completions", json=CHAT, headers=auth(user="counted"), timeout=30)
        assert response.status_code == 200
        answers.append(response.json()["usage"])
    time.sleep(0.8)  # the worker writes its ledger every 0.5 s
    report = httpx.get(f"{second.base_url}/v1/usage", headers=auth(user="counted"), timeout=30).json()
    today = report["days"][0]
    assert report["user"] == "counted"
    assert today["requests"] == 3
    assert (today["models"][0]["provider"], today["models"][0]["model"]) == ("openai", "gpt-4o-mini")
    assert today["prompt_tokens"] == sum(usage["prompt_tokens"] for usage in answers) > 0
    assert today["completion_tokens"] == sum(usage["completion_tokens"] for usage in answers) > 0
    nobody = httpx.get(f"{stack.url}/v1/usage", headers=auth(user="nobody"), timeout=30).json()
    assert nobody["days"][0]["requests"] == 0
    printed = _conduit(stack, "usage", "--user", "counted", "--days", "1").stdout
    assert "openai/gpt-4o-mini" in printed and " 3 " in printed


def test_redis_unreachable_refuses_generation_within_two_seconds(two_apis: tuple[Stack, ApiProcess]) -> None:
    stack, _ = two_apis
    stack.redis.pause()
    try:
        started = time.monotonic()
        response = httpx.post(f"{stack.url}/v1/chat/completions", json=CHAT, headers=auth(user="outage"), timeout=30)
        took = time.monotonic() - started
    finally:
        stack.redis.resume()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert took < 2.5


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_free_tier_gets_403_on_every_generation_endpoint_and_may_list_models(stack: Stack, stream: bool) -> None:
    bodies = {
        "/v1/chat/completions": {**CHAT, "stream": stream},
        "/v1/completions": {"model": "gpt-3.5-turbo-instruct", "prompt": "hi", "stream": stream},
        "/api/ai/chat": {"messages": CHAT["messages"], "stream": stream},
        "/api/ai/completions": {"prompt": "hi", "stream": stream},
    }
    for path, body in bodies.items():
        response = httpx.post(f"{stack.url}{path}", json=body, headers=auth("free"), timeout=30)
        assert response.status_code == 403, path
        assert "Pro or Enterprise" in response.text
    assert httpx.get(f"{stack.url}/v1/models", headers=auth("free"), timeout=30).status_code == 200


def test_the_principal_reaches_the_job_and_the_logs_but_never_the_credential(
    two_apis: tuple[Stack, ApiProcess],
) -> None:
    stack, second = two_apis
    secret = _conduit(stack, "keys", "create", "--user", "logged", "--tier", "pro").stdout.strip()
    bearer = token(user="logged-jwt")
    for credential in (secret, bearer):
        answered = httpx.post(
            f"{stack.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {credential}"}, timeout=30
        )
        assert answered.status_code == 200
    time.sleep(0.8)  # the worker writes its ledger every 0.5 s
    key_id = next(
        line.split()[0] for line in _conduit(stack, "keys", "list", "--user", "logged").stdout.splitlines()[1:]
    )
    worker_log = stack.worker.log.read_text()
    assert f"user logged, tier pro, key {key_id}" in worker_log
    assert "user logged-jwt, tier pro, key -" in worker_log
    redis = stack.redis.client()
    stored = b"".join((redis.dump(name) or b"") for name in redis.scan_iter("*") if redis.type(name) != b"none")
    for place, text in {
        "worker log": worker_log,
        "API log": stack.api.log.read_text() + second.log.read_text(),
    }.items():
        assert secret not in text and bearer not in text, place
    assert secret.encode() not in stored and bearer.encode() not in stored
