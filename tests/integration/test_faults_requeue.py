"""A job no worker started is never lost, and no job runs twice (issue 12, item 3).

Worker A (2 slots) runs two slow streams, so the next Celery message it fetches (several of the 50 jobs sent
next) waits in it for a slot. A is then frozen (SIGSTOP) and worker B starts. The jobs A fetched but never
started run on B: all 50 get their answer, once each (the fake provider is called once per job); the two
streams A had started end ``worker_lost`` (at-most-once: never replayed). Then A is killed (SIGKILL), or
it comes back (SIGCONT) and must not run what it held, nor go on with the streams declared lost.
"""

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from redis import Redis

from shared.tasks import QueueName
from tests.fakes.upstream import FakeUpstream, Reply
from tests.harness import WorkerProcess, auth, provider_env
from tests.stack import own_stack
from tests.streams import watch

pytestmark = pytest.mark.anyio

JOBS = 50
API_ENV = {"CONDUIT_QUEUE_TIMEOUT": "20", "CONDUIT_IDLE_TIMEOUT": "20", "CONDUIT_HEARTBEAT_INTERVAL": "1"}


def _chat(stream: bool) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "go"}], "stream": stream}


def _queued_jobs(redis: Redis) -> int:
    """Jobs in the Celery messages waiting in the interactive queue (their ``argsrepr`` counts them)."""
    with redis:
        messages = redis.lrange(QueueName.INTERACTIVE.value, 0, -1)
    return sum(int(json.loads(m)["headers"]["argsrepr"].split("<", 1)[1].split(" ", 1)[0]) for m in messages)


def _upstream_calls(fake: FakeUpstream) -> int:
    return len([r for r in fake.requests if r.path == "/v1/chat/completions"])


@pytest.mark.timeout(90)
@pytest.mark.parametrize("then", ["killed", "resumed"])
async def test_jobs_fetched_by_a_frozen_worker_run_once_each_on_another_worker(
    tmp_path: Path, fake: FakeUpstream, then: str
) -> None:
    with own_stack(tmp_path, fake, worker_env={"CONDUIT_CONCURRENCY": "2"}, api_env=API_ENV) as stack:
        for _ in range(2):
            fake.push(Reply(tokens=[f" t{i}" for i in range(100)], delay=0.3))  # 30 s: they hold A's slots
        url = f"{stack.url}/v1/chat/completions"
        async with httpx.AsyncClient(timeout=60) as client:
            streams = [
                asyncio.create_task(watch(client, "POST", url, json_body=_chat(True), headers=auth(), timeout=40))
                for _ in range(2)
            ]
            while _upstream_calls(fake) < 2:  # noqa: ASYNC110 - polls the fake
                await asyncio.sleep(0.05)
            calls = [asyncio.create_task(client.post(url, json=_chat(False), headers=auth())) for _ in range(JOBS)]
            await asyncio.sleep(1.0)  # A fetched the first message of them; it waits for a slot there
            queued = _queued_jobs(stack.redis.client())
            stack.worker.pause()
            frozen = time.monotonic()
            other = WorkerProcess(tmp_path, stack.redis.url, provider_env(fake))
            try:
                responses = await asyncio.gather(*calls)
                answered = time.monotonic() - frozen
                started = await asyncio.gather(*streams)  # A is declared dead 3 s into its freeze
                if then == "killed":
                    stack.worker.kill()
                else:  # back from its freeze, A finds the jobs it held started elsewhere, and skips them
                    stack.worker.resume()
                await asyncio.sleep(1.0)
                calls_after = _upstream_calls(fake)
            finally:
                other.stop()
    print(f"\n{JOBS} jobs, {JOBS - queued} of them held by the frozen worker: all answered {answered:.2f} s after")
    assert 0 < queued < JOBS  # A held some of the jobs, the others were still queued
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * JOBS, [r.text for r in responses if r.status_code != 200][:3]
    assert {r.json()["choices"][0]["message"]["content"] for r in responses} == {"Hello from the fake openai!"}
    assert calls_after == JOBS + 2  # every job called the provider exactly once: none ran twice
    for seen in started:  # started on A: at most once, so they end with an error, never replayed
        seen.check()
        assert seen.error is not None and seen.error["code"] == "worker_lost"
