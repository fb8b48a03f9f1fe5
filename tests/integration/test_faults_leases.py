"""Concurrent-stream leases live exactly as long as their jobs, and a dead worker is noticed through its
heartbeat (issue 12, items 2 and 7).

- A detached job whose client hung up keeps its lease while it runs (its worker renews it), so the cap
  holds, and so does one whose client hung up before it started; the lease goes with the job's end.
- A SIGKILLed worker's streams end with ``worker_lost`` within a few seconds (not the API's 30 s idle
  deadline), and the leases of its jobs are freed as soon as its death is noticed.

One private stack for the module: the production idle deadline (30 s) and a 3 s lease TTL.
"""

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from shared import keys
from tests.fakes.upstream import FakeUpstream, Reply
from tests.harness import auth
from tests.stack import Stack, own_stack
from tests.streams import Seen, watch

pytestmark = pytest.mark.anyio

LEASE_TTL = 3.0
CAP = 2
ENV = {"CONDUIT_LEASE_TTL": str(LEASE_TTL)}
API_ENV = {
    **ENV,
    "CONDUIT_TIER_PRO_CONCURRENT_STREAMS": str(CAP),
    "CONDUIT_IDLE_TIMEOUT": "30",  # the production default: a dead worker must be noticed sooner than this
    "CONDUIT_HEARTBEAT_INTERVAL": "1",
}
DETACH = {"x-conduit-on-disconnect": "detach"}


def _chat() -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "go"}], "stream": True}


def _first_content(seen: Seen) -> bool:
    return seen.first_content is not None


@pytest.fixture(scope="module")
def leased(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Stack]:
    with own_stack(tmp_path_factory.mktemp("leases"), fake, worker_env=ENV, api_env=API_ENV) as stack:
        yield stack


def _leases(stack: Stack, user: str) -> int:
    with stack.redis.client() as client:
        now_ms = time.time() * 1000
        return int(client.zcount(keys.lease(f"user:{user}"), now_ms, "+inf"))


async def test_detached_streams_keep_their_leases_while_they_run_and_free_them_when_they_end(
    leased: Stack,
) -> None:
    for _ in range(CAP):
        leased.fake.push(Reply(tokens=[f" t{i}" for i in range(40)], delay=0.2))  # ~8 s each
    headers = {**auth(user="detacher"), **DETACH}
    url = f"{leased.url}/v1/chat/completions"
    async with httpx.AsyncClient(timeout=30) as client:
        left = await asyncio.gather(
            *(watch(client, "POST", url, json_body=_chat(), headers=headers, stop=_first_content) for _ in range(CAP))
        )
        assert all(one.status == 200 and one.closed_by_us is not None for one in left)  # both hung up mid-answer
        await asyncio.sleep(LEASE_TTL + 1.5)  # past the lease TTL: only the worker can have kept the leases
        assert _leases(leased, "detacher") == CAP
        refused = await client.post(url, json=_chat(), headers=headers)
        assert refused.status_code == 429, refused.text
        assert "concurrent streams" in refused.json()["error"]["message"]
        deadline = time.monotonic() + 15
        while _leases(leased, "detacher") and time.monotonic() < deadline:  # noqa: ASYNC110 - polls Redis
            await asyncio.sleep(0.2)
        assert _leases(leased, "detacher") == 0
        admitted = await watch(client, "POST", url, json_body=_chat(), headers=headers)
    assert admitted.status == 200
    admitted.check()
    assert admitted.error is None


async def test_a_detached_stream_left_before_its_job_started_keeps_its_lease_until_the_job_ends(
    leased: Stack,
) -> None:
    leased.fake.push(Reply(tokens=[f" t{i}" for i in range(10)], delay=0.1))
    url = f"{leased.url}/v1/chat/completions"
    headers = {**auth(user="early"), **DETACH}
    leased.worker.pause()  # no worker starts the job while its client is there
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            seen = await watch(client, "POST", url, json_body=_chat(), headers=headers, leave_after=0.5)
        await asyncio.sleep(0.3)
        held = _leases(leased, "early")
    finally:
        leased.worker.resume()
    assert seen.closed_by_us is not None and seen.first_content is None
    assert held == 1  # the job will run: its lease stays
    deadline = time.monotonic() + 15
    while _leases(leased, "early") and time.monotonic() < deadline:  # noqa: ASYNC110 - polls Redis
        await asyncio.sleep(0.1)
    assert _leases(leased, "early") == 0
    assert [r.path for r in leased.fake.requests] == ["/v1/chat/completions"]  # it ran, once


async def test_a_sigkilled_worker_surfaces_as_worker_lost_within_5_s_and_its_leases_are_freed_at_once(
    leased: Stack,
) -> None:
    leased.fake.push(Reply(tokens=[f" t{i}" for i in range(100)], delay=0.1))  # 10 s
    url = f"{leased.url}/v1/chat/completions"
    async with httpx.AsyncClient(timeout=30) as client:
        task = asyncio.create_task(
            watch(client, "POST", url, json_body=_chat(), headers=auth(user="victim"), timeout=12)
        )
        while _leases(leased, "victim") == 0 or not leased.fake.requests:  # noqa: ASYNC110 - polls Redis
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # tokens flowing
        killed = time.monotonic()
        leased.worker.kill()  # the module's last test: the stack has no worker after it
        seen = await task
        leases_after = _leases(leased, "victim")
    took = (seen.ended or float("inf")) - killed
    print(f"\nworker SIGKILL -> worker_lost error frame after {took:.2f} s")
    seen.check()
    assert seen.error is not None and seen.error["code"] == "worker_lost", seen.frames[-3:]
    assert took < 5.0
    assert leases_after == 0
