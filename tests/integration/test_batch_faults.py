"""Batches through faults, with real processes: an API replica SIGKILLed, Redis restarted (its AOF kept) and the
batch worker stopped (SIGTERM) in the middle of a batch. Each batch still ends ``completed`` with every line
in its output file exactly once: 0 lost, 0 twice. (A batch worker SIGKILLed mid-batch: ``test_batch_worker``.)"""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.upstream import FakeUpstream, Reply
from tests.harness import ApiProcess, RedisServer, WorkerProcess, auth, provider_env
from tests.stack import Stack, own_stack

LINES = 60
BATCH_ENV = {"CONDUIT_BATCH_HOLD": "1.5", "CONDUIT_BATCH_CONCURRENCY": "4"}


class Faulty:
    """A stack with Redis on an AOF, a batch worker and a second API replica; what a test restarts is replaced."""

    def __init__(self, stack: Stack, logs: Path, fake: FakeUpstream) -> None:
        self.stack, self.logs, self.fake = stack, logs, fake
        self.second = ApiProcess(logs, stack.redis.url, {"CONDUIT_BATCH_RESEND_AFTER": "1"})
        self.batch_worker = self.new_batch_worker()
        self.spare: list[Any] = []

    def new_batch_worker(self) -> WorkerProcess:
        return WorkerProcess(self.logs, self.stack.redis.url, {**provider_env(self.fake), **BATCH_ENV}, queues="batch")


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Faulty]:
    logs = tmp_path_factory.mktemp("batch-faults")
    with own_stack(logs, fake, api_env={"CONDUIT_BATCH_RESEND_AFTER": "1"}, aof=True) as stack:
        made = Faulty(stack, logs, fake)
        try:
            made.second.wait_ready()
            made.batch_worker.wait_ready()
            yield made
        finally:
            for process in (made.second, made.batch_worker, *made.spare):
                process.stop()


def _start(url: str, user: str) -> str:
    lines = [
        {
            "custom_id": f"c{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"line {i}"}]},
        }
        for i in range(LINES)
    ]
    data = "\n".join(map(json.dumps, lines))
    headers = auth(user=user)
    upload = httpx.post(
        f"{url}/v1/files", files={"file": ("in.jsonl", data)}, data={"purpose": "batch"}, headers=headers
    )
    assert upload.status_code == 200, upload.text
    body = {"input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    return str(httpx.post(f"{url}/v1/batches", json=body, headers=headers, timeout=10).json()["id"])


def _batch(url: str, user: str, batch_id: str) -> dict[str, Any]:
    with httpx.Client(timeout=5) as client:
        for _ in range(50):  # Redis may be restarting
            try:
                response = client.get(f"{url}/v1/batches/{batch_id}", headers=auth(user=user))
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if response.status_code == 200:
                return dict(response.json())
            time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} could not be read")


def _midway(url: str, user: str, batch_id: str) -> None:
    deadline = time.monotonic() + 20
    while _batch(url, user, batch_id)["request_counts"]["completed"] < 5:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _every_line_once(url: str, user: str, batch_id: str) -> None:
    deadline = time.monotonic() + 60
    while (batch := _batch(url, user, batch_id))["status"] != "completed":
        assert time.monotonic() < deadline, batch
        time.sleep(0.2)
    assert batch["request_counts"] == {"total": LINES, "completed": LINES, "failed": 0}
    output = httpx.get(f"{url}/v1/files/{batch['output_file_id']}/content", headers=auth(user=user)).text
    ids = [json.loads(row)["custom_id"] for row in output.splitlines()]
    assert sorted(ids) == sorted(f"c{i}" for i in range(LINES))  # 0 lost, 0 twice


def _slow(fake: FakeUpstream) -> None:
    for _ in range(LINES * 2):
        fake.push(Reply(tokens=["a ", "b"], delay=0.05), provider="openai")


def test_an_api_replica_killed_mid_batch(faulty: Faulty) -> None:
    _slow(faulty.fake)
    batch_id = _start(faulty.stack.url, "api-kill")
    _midway(faulty.second.base_url, "api-kill", batch_id)
    faulty.stack.api.kill()  # the replica that took the batch: the other one writes its files
    _every_line_once(faulty.second.base_url, "api-kill", batch_id)
    faulty.fake.reset()


def test_redis_restarted_mid_batch(faulty: Faulty) -> None:
    _slow(faulty.fake)
    url = faulty.second.base_url
    batch_id = _start(url, "redis-restart")
    _midway(url, "redis-restart", batch_id)
    redis = faulty.stack.redis
    redis.stop()  # SIGTERM: the AOF is written out
    faulty.spare.append(RedisServer(faulty.logs, port=redis.port, aof=True))
    _every_line_once(url, "redis-restart", batch_id)
    faulty.fake.reset()


def test_the_batch_worker_stopped_mid_batch_and_another_started(faulty: Faulty) -> None:
    _slow(faulty.fake)
    url = faulty.second.base_url
    batch_id = _start(url, "worker-stop")
    _midway(url, "worker-stop", batch_id)
    faulty.batch_worker.stop()  # SIGTERM: its lines in flight end or stay unrecorded; none is recorded twice
    faulty.batch_worker = faulty.new_batch_worker()
    faulty.batch_worker.wait_ready()
    _every_line_once(url, "worker-stop", batch_id)
    faulty.fake.reset()


def test_a_batch_past_its_window_ends_expired_with_the_rest_in_its_error_file(faulty: Faulty) -> None:
    """The window is 24 h: the test moves the batch's end of window to now (the record's ``expires_at``), as
    the clock would have, and has a new runner take the batch (its worker stopped and replaced): the runner hands
    out no more lines, and the lines never run go to the error file as ``batch_expired``."""
    import redis as sync_redis

    from shared import keys

    _slow(faulty.fake)
    url, user = faulty.second.base_url, "expiry"
    batch_id = _start(url, user)
    _midway(url, user, batch_id)
    client = sync_redis.Redis.from_url(faulty.stack.redis.url)
    try:
        client.hset(keys.batch(batch_id), "expires_at", int(time.time()) - 1)
    finally:
        client.close()
    faulty.batch_worker.stop()
    faulty.batch_worker = faulty.new_batch_worker()
    faulty.batch_worker.wait_ready()
    deadline = time.monotonic() + 60
    while (batch := _batch(url, user, batch_id))["status"] != "expired":
        assert time.monotonic() < deadline, batch
        time.sleep(0.2)
    assert batch["expired_at"] and batch["error_file_id"]
    done = batch["request_counts"]["completed"]
    errors = httpx.get(f"{url}/v1/files/{batch['error_file_id']}/content", headers=auth(user=user)).text
    never = [json.loads(row) for row in errors.splitlines()]
    assert len(never) == LINES - done and {line["error"]["code"] for line in never} == {"batch_expired"}
    assert all(line["response"] is None for line in never)
    faulty.fake.reset()
