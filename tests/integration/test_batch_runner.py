"""The batch runner (``services.worker.batches``) against a real redis-server and a real directory, its lines
answered by an upstream speaking OpenAI's wire format: every line once, a taken-over batch going on where its
runner stopped, a cancel and an expiry stopping the lines not yet handed out, the owner's pace kept, and a
result Redis refused to record kept later or run again, never a batch finished with a line missing."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from services.stores.batches import BatchRecord, LineResult, new_batch_id
from services.stores.local_files import LocalFileStore
from services.stores.redis_batches import RedisBatchStore
from services.worker import batches as runner_module
from services.worker.batch_lines import CollectingSink
from services.worker.batches import BatchRunner, Pacer, UnrecordedError
from services.worker.generate import PipelineContext
from services.worker.providers.registry import build_streamers
from services.worker.settings import Credentials, WorkerSettings
from shared.batches import BatchLine, encode_line, lines_file_id
from shared.catalog import load_catalog
from shared.jobs import ChatMessage
from tests.harness import RedisServer

pytestmark = pytest.mark.anyio
TEXT_SSE = (Path(__file__).resolve().parents[1] / "golden" / "upstream" / "openai" / "text.sse").read_bytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    redis_server = RedisServer(tmp_path_factory.mktemp("redis-batch-runner"))
    yield redis_server
    redis_server.stop()


@pytest.fixture
async def store(server: RedisServer) -> AsyncIterator[RedisBatchStore]:
    client = aioredis.Redis.from_url(server.url, socket_timeout=5)
    await client.flushdb()
    batches = RedisBatchStore(client)
    try:
        yield batches
    finally:
        await batches.aclose()
        await client.aclose()


class Upstream:
    """OpenAI's chat completions stream for every request, after ``delay`` seconds; counts them by user text."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.asked: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request.content.decode())
        await asyncio.sleep(self.delay)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=TEXT_SSE)


def _line(index: int) -> BatchLine:
    return BatchLine(
        custom_id=f"q{index}",
        provider="openai",
        model="gpt-4o-mini",
        messages=[ChatMessage(role="user", content=f"question {index}")],
        dialect="openai.chat",
        id_prefix="chatcmpl-",
        model_named="gpt-4o-mini",
    )


async def _batch(store: RedisBatchStore, files: LocalFileStore, count: int, **changes: object) -> BatchRecord:
    file_id = f"file-{new_batch_id()[6:]}"
    async with files.writer(lines_file_id(file_id)) as out:
        for index in range(count):
            await out.write(encode_line(_line(index)))
    now = int(time.time())
    fields = {
        "id": new_batch_id(),
        "owner": "ana",
        "endpoint": "/v1/chat/completions",
        "input_file_id": file_id,
        "completion_window": "24h",
        "status": "validating",
        "created_at": now,
        "expires_at": now + 86400,
        "lines_file_id": lines_file_id(file_id),
        "total": count,
        "tier": "pro",
        **changes,
    }
    record = BatchRecord(**fields)  # type: ignore[arg-type]
    await store.add(record)
    return record


async def _run(
    store: RedisBatchStore, files: LocalFileStore, batch_id: str, upstream: Upstream, **options: object
) -> None:
    settings = WorkerSettings(
        name="test-worker:1",
        credentials={"openai": Credentials(api_key="sk-test", base_url="https://api.openai.test/v1")},
    )
    sink = CollectingSink()
    async with httpx.AsyncClient(transport=httpx.MockTransport(upstream)) as client:
        ctx = PipelineContext(settings, load_catalog(), client, sink, build_streamers(0.0))
        await BatchRunner(store, files, ctx, sink, name="worker-1", concurrency=8, **options).run(batch_id)  # type: ignore[arg-type]


async def test_every_line_runs_once_and_the_batch_is_left_finalizing(store: RedisBatchStore, tmp_path: Path) -> None:
    files = LocalFileStore(tmp_path)
    record, upstream = await _batch(store, files, 300), Upstream()
    await _run(store, files, record.id, upstream)
    assert len(upstream.asked) == 300
    done = await store.get("ana", record.id)
    assert done is not None and (done.status, done.ends_as, done.completed, done.failed) == (
        "finalizing",
        "completed",
        300,
        0,
    )
    assert done.in_progress_at is not None and done.input_tokens > 0
    assert await store.recorded(record.id, [f"q{i}" for i in range(300)]) == {f"q{i}" for i in range(300)}


async def test_a_batch_taken_over_goes_on_where_its_runner_stopped(store: RedisBatchStore, tmp_path: Path) -> None:
    files = LocalFileStore(tmp_path)
    record, upstream = await _batch(store, files, 20, status="in_progress"), Upstream()
    for index in range(0, 20, 2):  # what the runner that died had recorded
        result = LineResult(custom_id=f"q{index}", job_id="j", events=b"\x90", ok=True)
        await store.record(record, result, "openai", "gpt-4o-mini", "2026-12-03")
    await _run(store, files, record.id, upstream)
    asked = sorted(int(json.loads(body)["messages"][0]["content"].split()[1]) for body in upstream.asked)
    assert asked == list(range(1, 20, 2))
    done = await store.get("ana", record.id)
    assert done is not None and done.completed == 20 and done.status == "finalizing"


async def test_a_batch_another_runner_holds_is_left_to_it(store: RedisBatchStore, tmp_path: Path) -> None:
    files = LocalFileStore(tmp_path)
    record, upstream = await _batch(store, files, 5), Upstream()
    assert await store.take(record.id, "worker-0", 5.0)
    await _run(store, files, record.id, upstream)
    assert upstream.asked == [] and await store.status(record.id) == "validating"


async def test_a_cancel_stops_the_lines_not_yet_handed_out(store: RedisBatchStore, tmp_path: Path) -> None:
    files = LocalFileStore(tmp_path)
    record, upstream = await _batch(store, files, 200), Upstream(delay=0.2)
    running = asyncio.create_task(_run(store, files, record.id, upstream))
    await asyncio.sleep(0.5)
    await store.cancel("ana", record.id, int(time.time()))
    started = time.monotonic()
    await running
    assert time.monotonic() - started < 5.0  # the lines in flight end (0.2 s each), no more are started
    done = await store.get("ana", record.id)
    assert done is not None and (done.status, done.ends_as) == ("finalizing", "cancelled")
    assert 0 < done.completed == len(upstream.asked) < 100  # the lines in flight ended and were kept


class Interactive:
    """What ``InteractiveWatch`` would say: interactive jobs run, or not."""

    def __init__(self, busy: bool) -> None:
        self._busy = busy

    async def busy(self) -> bool:
        return self._busy


async def test_while_interactive_jobs_run_a_batch_gives_way(store: RedisBatchStore, tmp_path: Path) -> None:
    files = LocalFileStore(tmp_path)
    record, upstream = await _batch(store, files, 8), Upstream()
    started = time.monotonic()
    await _run(store, files, record.id, upstream, interactive=Interactive(busy=True), give_way=0.1)
    assert time.monotonic() - started >= 0.8  # a line every 0.1 s at most
    record, upstream = await _batch(store, files, 8), Upstream()
    started = time.monotonic()
    await _run(store, files, record.id, upstream, interactive=Interactive(busy=False), give_way=0.1)
    assert time.monotonic() - started < 0.8
    assert len(upstream.asked) == 8


class Refusing:
    """The store, its ``record`` failing as a Redis away would: ``times`` times for each line in ``lines``."""

    def __init__(self, store: RedisBatchStore, lines: set[str], times: int) -> None:
        self._store, self._left = store, dict.fromkeys(lines, times)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def record(self, record: BatchRecord, result: LineResult, *args: str) -> bool:
        if self._left.get(result.custom_id, 0) > 0:
            self._left[result.custom_id] -= 1
            raise ConnectionError("Connection refused")
        return await self._store.record(record, result, *args)


async def test_a_result_redis_refused_is_recorded_once_it_is_back(
    store: RedisBatchStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "RECORD_PAUSES", (0.01, 0.01))
    files = LocalFileStore(tmp_path)
    record, upstream = await _batch(store, files, 20), Upstream()
    refusing = Refusing(store, {"q3", "q7"}, times=2)  # kept at the third try
    await _run(refusing, files, record.id, upstream)  # type: ignore[arg-type]
    done = await store.get("ana", record.id)
    assert done is not None and (done.status, done.completed, len(upstream.asked)) == ("finalizing", 20, 20)


async def test_a_line_left_without_a_result_runs_again_and_never_goes_missing(
    store: RedisBatchStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "RECORD_PAUSES", (0.01,))
    files = LocalFileStore(tmp_path)
    record, upstream = await _batch(store, files, 20), Upstream()
    refusing = Refusing(store, {"q5"}, times=2)  # the first pass gives up on it; the second keeps it
    await _run(refusing, files, record.id, upstream)  # type: ignore[arg-type]
    done = await store.get("ana", record.id)
    assert done is not None and (done.status, done.completed, len(upstream.asked)) == ("finalizing", 20, 21)

    record, upstream = await _batch(store, files, 10), Upstream()
    refusing = Refusing(store, {"q5"}, times=100)  # never kept: the batch is not finished, the next runner goes on
    with pytest.raises(UnrecordedError):
        await _run(refusing, files, record.id, upstream)  # type: ignore[arg-type]
    left = await store.get("ana", record.id)
    assert left is not None and (left.status, left.completed) == ("in_progress", 9)
    await _run(store, files, record.id, upstream)
    done = await store.get("ana", record.id)
    assert done is not None and (done.status, done.completed) == ("finalizing", 10)


async def test_an_expired_batch_hands_out_nothing(store: RedisBatchStore, tmp_path: Path) -> None:
    files = LocalFileStore(tmp_path)
    record, upstream = await _batch(store, files, 5, expires_at=int(time.time()) - 1), Upstream()
    await _run(store, files, record.id, upstream)
    done = await store.get("ana", record.id)
    assert upstream.asked == [] and done is not None and (done.status, done.ends_as) == ("finalizing", "expired")


async def test_the_pacer_keeps_to_the_requests_and_tokens_per_minute() -> None:
    started = time.monotonic()
    requests = Pacer(requests_per_minute=60, tokens_per_minute=0)
    for _ in range(61):  # a minute's 60 at once, the 61st a second later
        await requests.wait(10)
    assert 0.9 < time.monotonic() - started < 3.0  # a second, give or take a loaded machine
    tokens = Pacer(requests_per_minute=0, tokens_per_minute=6000)  # 100 tokens a second
    await tokens.wait(3000)
    await tokens.wait(3000)  # a minute's tokens at once
    with pytest.raises(TimeoutError):  # the next half a minute later
        await asyncio.wait_for(tokens.wait(3000), 0.3)
