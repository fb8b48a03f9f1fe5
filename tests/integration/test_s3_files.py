"""``S3FileStore`` against a real S3 API: moto's standalone server, a subprocess on loopback, with its IAM
authentication switched on, so every request the store makes has its signature checked (by botocore's
``S3SigV4Auth``, inside moto). boto3, configured apart, is the independent witness of what the bucket holds.
Last, a whole batch through the API and a batch worker, both keeping their files on S3."""

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import redis.asyncio as aioredis

from services.stores.files import FileRecord, new_file_id
from services.stores.redis_files import RedisFileRecords
from services.stores.s3_bucket import S3Error
from services.stores.s3_files import MIN_PART_SIZE, S3FileStore
from tests.fakes.upstream import FakeUpstream
from tests.harness import RedisServer, WorkerProcess, auth, free_port, provider_env
from tests.stack import own_stack

pytestmark = pytest.mark.anyio
REGION = "us-east-1"
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


class Moto:
    """``python -m moto.server`` on a free loopback port; a user with a key allowed everything, then
    authentication on for every request after."""

    def __init__(self, log_dir: Path) -> None:
        self.endpoint = f"http://127.0.0.1:{free_port()}"
        self.log = log_dir / "moto.log"
        host, port = self.endpoint.removeprefix("http://").split(":")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", host, "-p", port], stdout=out, stderr=out, env=env
            )
        self._wait()
        iam = self.client("iam", "AKIDBOOTSTRAP", "bootstrap")  # not checked yet
        iam.create_user(UserName="conduit")
        iam.put_user_policy(UserName="conduit", PolicyName="all", PolicyDocument=ALLOW_ALL)
        key = iam.create_access_key(UserName="conduit")["AccessKey"]
        self.access_key_id, self.secret_access_key = key["AccessKeyId"], key["SecretAccessKey"]
        httpx.post(f"{self.endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()  # checked from now on
        self.s3 = self.client("s3", self.access_key_id, self.secret_access_key)

    def _wait(self) -> None:
        for _ in range(200):
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.endpoint}/moto-api/", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    def client(self, service: str, access_key_id: str, secret_access_key: str) -> Any:
        return boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
        )

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def pending_uploads(self, bucket: str) -> list[dict[str, Any]]:
        uploads: list[dict[str, Any]] = self.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return uploads

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    server = Moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(moto: Moto, request: pytest.FixtureRequest) -> str:
    name = f"conduit-{abs(hash(request.node.name)) % 10**8}-{time.monotonic_ns() % 10**6}"
    moto.s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
async def make_store(moto: Moto, bucket: str) -> AsyncIterator[Any]:
    made: list[S3FileStore] = []

    def make(**overrides: Any) -> S3FileStore:
        options: dict[str, Any] = {
            "bucket": bucket,
            "prefix": "files/",
            "endpoint": moto.endpoint,
            "region": REGION,
            "access_key_id": moto.access_key_id,
            "secret_access_key": moto.secret_access_key,
            **overrides,
        }
        made.append(S3FileStore(None, **options))
        return made[-1]

    yield make
    for store in made:
        await store.aclose()


async def _read(store: S3FileStore, file_id: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(file_id)])


async def test_a_small_file_is_one_put_and_reads_back(make_store: Any, moto: Moto, bucket: str) -> None:
    store = make_store()
    async with store.writer("file-small") as out:
        await out.write(b'{"a": 1}\n')
        await out.write(b'{"b": 2}\n')
        assert moto.keys(bucket) == []  # not before the writer is left
    assert await _read(store, "file-small") == b'{"a": 1}\n{"b": 2}\n'
    assert moto.keys(bucket) == ["files/file-small"]
    async with store.writer("file-empty"):
        pass
    assert await _read(store, "file-empty") == b""
    assert moto.pending_uploads(bucket) == []


async def test_a_file_of_several_parts_reads_back_byte_identical(make_store: Any, moto: Moto, bucket: str) -> None:
    store = make_store(part_size=MIN_PART_SIZE)
    data = os.urandom(1 << 20) * 12  # 12 MiB: parts of 5, 5 and 2 MiB
    async with store.writer("file-large") as out:
        for start in range(0, len(data), 300_000):
            await out.write(data[start : start + 300_000])
        assert len(moto.pending_uploads(bucket)) == 1 and moto.keys(bucket) == []
    assert await _read(store, "file-large") == data
    head = moto.s3.head_object(Bucket=bucket, Key="files/file-large")
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-3"')  # a multipart object of 3 parts
    assert moto.pending_uploads(bucket) == []


async def test_a_file_of_exactly_one_part_is_one_put(make_store: Any, moto: Moto, bucket: str) -> None:
    store = make_store(part_size=MIN_PART_SIZE)
    data = b"x" * MIN_PART_SIZE
    async with store.writer("file-one-part") as out:
        await out.write(data)
    assert await _read(store, "file-one-part") == data
    assert "-" not in moto.s3.head_object(Bucket=bucket, Key="files/file-one-part")["ETag"]


async def test_a_writer_that_raises_leaves_no_object_and_no_upload(make_store: Any, moto: Moto, bucket: str) -> None:
    store = make_store(part_size=MIN_PART_SIZE)
    with pytest.raises(RuntimeError, match="the upload broke"):
        async with store.writer("file-broken") as out:
            await out.write(b"y" * (MIN_PART_SIZE + 10))  # one part is up
            assert len(moto.pending_uploads(bucket)) == 1
            raise RuntimeError("the upload broke")
    with pytest.raises(ValueError, match="bad line"):
        async with store.writer("file-broken-small") as out:
            await out.write(b"z")
            raise ValueError("bad line")
    assert moto.keys(bucket) == []
    assert moto.pending_uploads(bucket) == []


async def test_a_missing_file_is_not_found_and_deleting_twice_is_fine(make_store: Any, moto: Moto, bucket: str) -> None:
    store = make_store()
    with pytest.raises(FileNotFoundError):
        await _read(store, "file-never")
    async with store.writer("file-brief") as out:
        await out.write(b"brief")
    await store.delete("file-brief")
    await store.delete("file-brief")
    await store.delete("file-never")
    with pytest.raises(FileNotFoundError):
        await _read(store, "file-brief")
    assert moto.keys(bucket) == []


async def test_stored_lists_every_page_of_its_own_prefix_only(make_store: Any, moto: Moto, bucket: str) -> None:
    store, other = make_store(page_size=2), make_store(prefix="other/", page_size=2)
    before = time.time()
    ids = [f"file-{index}" for index in range(5)]
    for file_id in ids:
        async with store.writer(file_id) as out:
            await out.write(file_id.encode())
    async with other.writer("file-elsewhere") as out:
        await out.write(b"elsewhere")
    moto.s3.put_object(Bucket=bucket, Key="files/not/an/id", Body=b"left alone")
    listed = await store.stored()  # 6 keys under files/, 2 a page: 3 pages
    assert sorted(name for name, _ in listed) == ids
    assert all(before - 5 < written < time.time() + 5 for _, written in listed)
    assert [name for name, _ in await other.stored()] == ["file-elsewhere"]
    with pytest.raises(FileNotFoundError):
        await _read(other, "file-0")
    await other.delete("file-0")  # another prefix's file is out of reach
    assert await _read(store, "file-0") == b"file-0"


async def test_a_key_is_never_built_from_anything_but_an_id(make_store: Any) -> None:
    store = make_store()
    for bad in ("../secret", "a/b", "", ".", "x" * 200, "file-\x00", "file id"):
        with pytest.raises(ValueError, match="not a file id"):
            store.writer(bad)
        with pytest.raises(ValueError, match="not a file id"):
            await store.delete(bad)
        with pytest.raises(ValueError, match="not a file id"):
            await _read(store, bad)


async def test_wrong_credentials_are_a_clear_error_without_the_secret(make_store: Any, moto: Moto) -> None:
    wrong = "not-the-secret-" + moto.secret_access_key[::-1]
    store = make_store(secret_access_key=wrong)
    with pytest.raises(S3Error, match="SignatureDoesNotMatch") as raised:
        async with store.writer("file-x") as out:
            await out.write(b"x")
    assert raised.value.status == 403 and wrong not in str(raised.value)
    unknown = make_store(access_key_id="AKIDUNKNOWN0000000000")
    with pytest.raises(S3Error, match="InvalidAccessKeyId"):
        await unknown.stored()


async def test_a_missing_bucket_is_an_s3_error_not_a_missing_file(make_store: Any) -> None:
    store = make_store(bucket="conduit-no-such-bucket")
    with pytest.raises(S3Error, match="NoSuchBucket"):
        await _read(store, "file-x")
    with pytest.raises(S3Error, match="NoSuchBucket"):
        await store.stored()


async def test_the_bytes_of_files_whose_records_expired_are_swept(
    make_store: Any, moto: Moto, bucket: str, tmp_path: Path
) -> None:
    from services.api.batches.keeper import BatchKeeper
    from services.api.deps import Files
    from services.stores.redis_batches import RedisBatchStore

    server = RedisServer(tmp_path)
    client = aioredis.Redis.from_url(server.url)
    records, batches = RedisFileRecords(client), RedisBatchStore(client)
    store = make_store()
    try:
        kept = FileRecord(
            id=new_file_id(), owner="ana", bytes=1, created_at=int(time.time()), filename="a", purpose="batch"
        )
        await records.add(kept)
        for file_id in (kept.id, "file-gone", "file-gone-lines"):
            async with store.writer(file_id) as out:
                await out.write(b"x")
        keeper = BatchKeeper(client, batches, Files(store, records), broker=None)  # type: ignore[arg-type]
        assert await keeper.sweep_files(time.time() - 3600) == 0  # all too new
        assert await keeper.sweep_files(time.time() + 5) == 2
        assert moto.keys(bucket) == [f"files/{kept.id}"]
    finally:
        await records.aclose()
        await batches.aclose()
        await client.aclose()
        server.stop()


def _until_ended(url: str, batch_id: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while (batch := httpx.get(f"{url}/v1/batches/{batch_id}", headers=auth(user="s3")).json())["status"] not in {
        "completed",
        "failed",
        "expired",
        "cancelled",
    }:
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)
    return dict(batch)


def test_a_batch_runs_with_its_files_on_s3(tmp_path: Path, moto: Moto, bucket: str, fake: FakeUpstream) -> None:
    s3_env = {
        "CONDUIT_FILES_S3_BUCKET": bucket,
        "CONDUIT_FILES_S3_PREFIX": "stack/",
        "CONDUIT_FILES_S3_ENDPOINT": moto.endpoint,
        "CONDUIT_FILES_S3_REGION": REGION,
        "AWS_ACCESS_KEY_ID": moto.access_key_id,
        "AWS_SECRET_ACCESS_KEY": moto.secret_access_key,
    }
    lines = [
        {
            "custom_id": f"c{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"line {i}"}]},
        }
        for i in range(5)
    ]
    with own_stack(tmp_path, fake, worker_env=s3_env, api_env={**s3_env, "CONDUIT_BATCH_RESEND_AFTER": "1"}) as stack:
        batch_worker = WorkerProcess(tmp_path, stack.redis.url, {**provider_env(fake), **s3_env}, queues="batch")
        try:
            batch_worker.wait_ready()
            upload = httpx.post(
                f"{stack.url}/v1/files",
                files={"file": ("in.jsonl", "\n".join(map(json.dumps, lines)))},
                data={"purpose": "batch"},
                headers=auth(user="s3"),
            )
            assert upload.status_code == 200, upload.text
            input_id = upload.json()["id"]
            body = {"input_file_id": input_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
            made = httpx.post(f"{stack.url}/v1/batches", json=body, headers=auth(user="s3"), timeout=10)
            assert made.status_code == 200, made.text
            batch = _until_ended(stack.url, made.json()["id"], 12)
            assert batch["status"] == "completed", batch
            assert batch["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
            output_id = batch["output_file_id"]
            output = httpx.get(f"{stack.url}/v1/files/{output_id}/content", headers=auth(user="s3"))
            assert sorted(json.loads(row)["custom_id"] for row in output.text.splitlines()) == [
                f"c{i}" for i in range(5)
            ]
        finally:
            batch_worker.stop()
    kept = moto.keys(bucket)
    assert {f"stack/{input_id}", f"stack/{output_id}"} <= set(kept), kept
    assert all(key.startswith("stack/") for key in kept)
    local = tmp_path / "files"  # the directory the harness names in CONDUIT_FILES_DIR: never used
    assert not local.exists() or not any(local.iterdir())
