"""The file stores: ``LocalFileStore`` on a real directory, ``RedisFileRecords`` against a real redis-server."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.stores.files import FileRecord, new_file_id
from services.stores.local_files import CHUNK, LocalFileStore
from services.stores.redis_files import RedisFileRecords
from shared import keys
from tests.harness import RedisServer

pytestmark = pytest.mark.anyio


def _left(directory: Path) -> list[Path]:
    return list(directory.iterdir())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    redis_server = RedisServer(tmp_path_factory.mktemp("redis-files"))
    yield redis_server
    redis_server.stop()


@pytest.fixture
async def records(server: RedisServer) -> AsyncIterator[RedisFileRecords]:
    client = aioredis.Redis.from_url(server.url, socket_timeout=5)
    await client.flushdb()
    store = RedisFileRecords(client)
    try:
        yield store
    finally:
        await store.aclose()
        await client.aclose()


async def _read(store: LocalFileStore, file_id: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(file_id)])


async def test_a_local_file_appears_whole_once_written_and_goes_when_deleted(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    data = bytes(range(256)) * (CHUNK // 100)  # a few chunks
    file_id = new_file_id()
    async with store.writer(file_id) as out:
        for start in range(0, len(data), 65_536):
            await out.write(data[start : start + 65_536])
        assert not (tmp_path / "files" / file_id).exists()  # not before the writer is left
    assert await _read(store, file_id) == data
    await store.delete(file_id)
    await store.delete(file_id)  # gone already: no error
    with pytest.raises(FileNotFoundError):
        await _read(store, file_id)


async def test_a_failed_write_leaves_no_file_and_a_crashed_one_is_cleared_at_start(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    with pytest.raises(RuntimeError):
        async with store.writer("file-x") as out:
            await out.write(b"half")
            raise RuntimeError("the upload broke")
    assert _left(tmp_path) == []
    (tmp_path / "file-y.1234.part").write_bytes(b"left by a crash")
    LocalFileStore(tmp_path)
    assert _left(tmp_path) == []


async def test_a_path_is_never_built_from_anything_but_an_id(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    for bad in ("../secret", "a/b", "", ".", "x" * 200, "file-\x00"):
        with pytest.raises(ValueError, match="not a file id"):
            store.writer(bad)
        with pytest.raises(ValueError, match="not a file id"):
            await store.delete(bad)


def _record(owner: str, purpose: str = "batch", expires: int | None = None, name: str = "in.jsonl") -> FileRecord:
    return FileRecord(
        id=new_file_id(),
        owner=owner,
        bytes=10,
        created_at=int(time.time()),
        filename=name,
        purpose=purpose,  # type: ignore[arg-type]
        expires_at=expires,
    )


async def test_records_are_their_owners_and_pages_follow_creation(records: RedisFileRecords) -> None:
    made = []
    for index in range(7):
        made.append(_record("ana", "batch_output" if index % 3 == 0 else "batch"))
        await records.add(made[-1])
        await asyncio.sleep(0.002)
    await records.add(_record("bob"))
    assert await records.get("ana", made[0].id) == made[0]
    assert await records.get("bob", made[0].id) is None
    first = await records.page("ana", limit=3, after=None, newest_first=True, purpose=None)
    assert first is not None and [f.id for f in first.files] == [f.id for f in made[::-1][:3]] and first.has_more
    rest = await records.page("ana", limit=10, after=first.files[-1].id, newest_first=True, purpose=None)
    assert rest is not None and [f.id for f in rest.files] == [f.id for f in made[::-1][3:]] and not rest.has_more
    oldest = await records.page("ana", limit=2, after=None, newest_first=False, purpose="batch_output")
    assert oldest is not None and [f.id for f in oldest.files] == [made[0].id, made[3].id] and oldest.has_more
    assert await records.page("ana", limit=2, after="file-nope", newest_first=True, purpose=None) is None
    assert await records.page("bob", limit=2, after=made[0].id, newest_first=True, purpose=None) is None
    assert not await records.delete("bob", made[1].id)
    assert await records.delete("ana", made[1].id)
    assert not await records.delete("ana", made[1].id)
    assert await records.get("ana", made[1].id) is None


async def test_an_expired_record_is_gone_and_leaves_the_list(records: RedisFileRecords, server: RedisServer) -> None:
    kept, brief = _record("ana"), _record("ana", expires=int(time.time()) + 2)
    await records.add(kept)
    await records.add(brief)
    client = aioredis.Redis.from_url(server.url)
    try:
        assert 0 < await client.pttl(keys.file(brief.id)) <= 2000  # it expires with the file (EXAT)
        assert await client.ttl(keys.file(kept.id)) == -1
        await asyncio.sleep(brief.expires_at + 0.1 - time.time())  # type: ignore[operator]
        assert await records.get("ana", brief.id) is None
        page = await records.page("ana", limit=10, after=None, newest_first=True, purpose=None)
        assert page is not None and [f.id for f in page.files] == [kept.id]
        assert await client.zrange(keys.user_files("ana"), 0, -1) == [kept.id.encode()]
    finally:
        await client.aclose()


async def test_the_bytes_of_files_whose_records_expired_are_swept(tmp_path: Path, server: RedisServer) -> None:
    import os

    from services.api.batches.keeper import BatchKeeper
    from services.api.deps import Files
    from services.stores.redis_batches import RedisBatchStore

    client = aioredis.Redis.from_url(server.url)
    records, batches = RedisFileRecords(client), RedisBatchStore(client)
    store = LocalFileStore(tmp_path)
    try:
        kept = _record("ana")
        await records.add(kept)
        for file_id in (kept.id, "file-gone", "file-gone-lines", "file-new"):
            async with store.writer(file_id) as out:
                await out.write(b"x")
        for file_id in (kept.id, "file-gone", "file-gone-lines"):
            os.utime(tmp_path / file_id, (time.time() - 7200, time.time() - 7200))
        keeper = BatchKeeper(client, batches, Files(store, records), broker=None)  # type: ignore[arg-type]
        assert await keeper.sweep_files(time.time() - 3600) == 2
        assert sorted(name for name, _ in await store.stored()) == sorted([kept.id, "file-new"])
    finally:
        await records.aclose()
        await batches.aclose()
        await client.aclose()


class _DiesBeforeTheEnd:
    """The batch store of an API process that dies after writing a batch's files, before the batch ends."""

    def __init__(self, store: object) -> None:
        self._store, self.died = store, False

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def end(self, *args: object) -> bool:
        if not self.died:
            self.died = True
            raise ConnectionError("the process died here")
        return bool(await self._store.end(*args))  # type: ignore[attr-defined]


async def test_files_written_again_after_a_keeper_died_leave_nothing_behind(
    tmp_path: Path, server: RedisServer
) -> None:
    from services.api.batches.keeper import BatchKeeper
    from services.api.deps import Files
    from services.stores.batches import BatchRecord, new_batch_id
    from services.stores.redis_batches import RedisBatchStore
    from shared.batches import BatchLine, encode_line, lines_file_id
    from shared.jobs import ChatMessage

    client = aioredis.Redis.from_url(server.url)
    records, batches = RedisFileRecords(client), RedisBatchStore(client)
    store = LocalFileStore(tmp_path)
    try:
        async with store.writer(lines_file_id("file-in")) as out:
            for index in range(3):
                line = BatchLine(
                    custom_id=f"q{index}",
                    provider="openai",
                    model="gpt-4o-mini",
                    messages=[ChatMessage(role="user", content="hi")],
                    dialect="openai.chat",
                    id_prefix="chatcmpl-",
                    model_named="gpt-4o-mini",
                )
                await out.write(encode_line(line))
        now = int(time.time())
        batch = BatchRecord(
            id=new_batch_id(),
            owner="ana",
            endpoint="/v1/chat/completions",
            input_file_id="file-in",
            completion_window="24h",
            status="finalizing",
            ends_as="expired",  # no line ran: the three go to the error file
            created_at=now,
            expires_at=now,
            lines_file_id=lines_file_id("file-in"),
            total=3,
        )
        await batches.add(batch)
        dying = _DiesBeforeTheEnd(batches)
        keeper = BatchKeeper(client, dying, Files(store, records), broker=None)  # type: ignore[arg-type]
        with pytest.raises(ConnectionError):
            await keeper.tend()
        await client.delete(keys.batch_keeper(batch.id))  # its write hold ran out
        await keeper.tend()
        ended = await batches.get("ana", batch.id)
        assert ended is not None and ended.status == "expired" and ended.output_file_id is None
        listed = await records.page("ana", limit=100, after=None, newest_first=True, purpose="batch_output")
        assert listed is not None and [record.id for record in listed.files] == [ended.error_file_id]
        assert [name for name, _ in await store.stored() if name != lines_file_id("file-in")] == [ended.error_file_id]
    finally:
        await records.aclose()
        await batches.aclose()
        await client.aclose()
