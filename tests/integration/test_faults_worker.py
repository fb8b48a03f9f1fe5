"""Workers that die, freeze or stop, and providers that stall or garble: every stream still ends with exactly
one terminal frame, soon (rows F-01 to F-04, F-10 and F-11 of the reliability matrix)."""

import asyncio
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.upstream import DropAfter, FakeUpstream, Garbage, Reply, SplitUtf8, Stall, Truncate
from tests.harness import WorkerProcess, auth, provider_env
from tests.stack import Stack, own_stack
from tests.streams import openai_text, watch

pytestmark = pytest.mark.anyio

IDLE = 3.0
API_ENV = {"CONDUIT_IDLE_TIMEOUT": str(IDLE), "CONDUIT_HEARTBEAT_INTERVAL": "1", "CONDUIT_COMMIT_TIMEOUT": "1"}
WORKER_ENV = {"CONDUIT_READ_TIMEOUT": "2", "CONDUIT_SHUTDOWN_GRACE": "2", "CONDUIT_ORPHAN_GRACE": "2"}
TOKENS = [f" t{i}" for i in range(100)]


def _chat(stream: bool = True) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "go"}], "stream": stream}


@pytest.fixture
def faulty(tmp_path: Path, fake: FakeUpstream) -> Iterator[Stack]:
    with own_stack(tmp_path, fake, worker_env=WORKER_ENV, api_env=API_ENV) as stack:
        yield stack


async def test_a_worker_killed_mid_stream_ends_every_stream_with_one_error_within_the_idle_deadline(
    faulty: Stack,
) -> None:
    for _ in range(10):
        faulty.fake.push(Reply(tokens=TOKENS, delay=0.05))  # 5 s each
    async with httpx.AsyncClient(timeout=30) as client:
        tasks = [
            asyncio.create_task(
                watch(client, "POST", f"{faulty.url}/v1/chat/completions", json_body=_chat(), headers=auth())
            )
            for _ in range(10)
        ]
        await asyncio.sleep(1.5)  # every stream has text by now
        killed = time.monotonic()
        faulty.worker.kill()
        seen = await asyncio.gather(*tasks)
    for one in seen:
        one.check()
        assert one.first_content is not None and one.first_content < killed
        assert one.error is not None and one.error["code"] == "worker_lost"
    took = [one.ended - killed for one in seen if one.ended is not None]
    print(f"\nworker SIGKILL -> error event: p50 {statistics.median(took):.2f} s, max {max(took):.2f} s")
    assert max(took) <= IDLE + 2.0


async def test_jobs_queued_while_no_worker_runs_are_answered_once_one_starts(faulty: Stack, tmp_path: Path) -> None:
    faulty.worker.kill()
    async with httpx.AsyncClient(timeout=30) as client:
        calls = [client.post(f"{faulty.url}/v1/chat/completions", json=_chat(False), headers=auth()) for _ in range(5)]
        pending = asyncio.gather(*calls)
        await asyncio.sleep(1.0)
        replacement = WorkerProcess(tmp_path, faulty.redis.url, {**provider_env(faulty.fake), **WORKER_ENV})
        try:
            responses = await pending
        finally:
            replacement.stop()
    assert [r.status_code for r in responses] == [200] * 5
    assert {r.json()["choices"][0]["message"]["content"] for r in responses} == {"Hello from the fake openai!"}


async def test_a_worker_stopped_with_sigterm_finishes_or_fails_each_job_exactly_once(faulty: Stack) -> None:
    for index in range(12):  # half finish within the 2 s grace, half do not
        faulty.fake.push(Reply(tokens=TOKENS[:20], delay=0.05 if index % 2 else 0.3))
    async with httpx.AsyncClient(timeout=30) as client:
        tasks = [
            asyncio.create_task(
                watch(client, "POST", f"{faulty.url}/v1/chat/completions", json_body=_chat(), headers=auth())
            )
            for _ in range(12)
        ]
        await asyncio.sleep(0.8)
        stopping = time.monotonic()
        assert faulty.worker.proc is not None
        faulty.worker.proc.terminate()
        seen = await asyncio.gather(*tasks)
    finished = [one for one in seen if one.error is None]
    lost = [one for one in seen if one.error is not None]
    for one in seen:
        one.check()
    assert all(openai_text(one) == "".join(TOKENS[:20]) for one in finished)
    assert all(one.error is not None and one.error["code"] == "worker_lost" for one in lost)
    assert len(finished) == 6 and len(lost) == 6
    assert all(one.ended is not None and one.ended - stopping < 2.0 + 2.0 for one in lost)
    assert faulty.worker.proc.wait(timeout=10) == 0


async def test_a_stalled_provider_fails_the_stream_after_the_read_timeout_and_is_hung_up_on(faulty: Stack) -> None:
    faulty.fake.push(Stall(after=2, seconds=30))
    async with httpx.AsyncClient(timeout=30) as client:
        seen = await watch(client, "POST", f"{faulty.url}/v1/chat/completions", json_body=_chat(), headers=auth())
    seen.check()
    assert seen.error is not None and seen.error["code"] == "upstream_timeout"
    assert seen.first_content is not None and seen.ended is not None
    assert 1.5 < seen.ended - seen.first_content < 2.0 + 1.5  # read timeout 2 s
    assert faulty.fake.wait_for_disconnect() is not None


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        (Truncate(after=3), "upstream_incomplete"),
        (Garbage(after=3), "upstream_error"),
        (DropAfter(tokens=3), "upstream_incomplete"),
    ],
    ids=["no-end-marker", "bad-json", "connection-reset"],
)
async def test_a_broken_upstream_stream_is_reported_incomplete_never_as_a_clean_finish(
    stack: Stack, behaviour: Truncate | Garbage | DropAfter, code: str
) -> None:
    stack.fake.push(behaviour)
    async with httpx.AsyncClient(timeout=30) as client:
        seen = await watch(client, "POST", f"{stack.url}/v1/chat/completions", json_body=_chat(), headers=auth())
    seen.check()
    assert seen.error is not None and seen.error["code"] == code
    assert not [data for _, data in seen.frames if '"finish_reason":"stop"' in data]
    assert openai_text(seen)  # the text before the break was relayed
    assert len([r for r in stack.fake.requests if r.path == "/v1/chat/completions"]) == 1  # never retried


async def test_a_character_split_across_reads_arrives_whole(stack: Stack) -> None:
    text = "héllo wörld ☕ 日本語 ok"
    stack.fake.push(SplitUtf8(Reply(text=text)))
    async with httpx.AsyncClient(timeout=30) as client:
        seen = await watch(client, "POST", f"{stack.url}/v1/chat/completions", json_body=_chat(), headers=auth())
    seen.check()
    assert seen.error is None
    assert openai_text(seen) == text
