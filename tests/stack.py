"""Fixtures for one stack per session: a private redis-server, the fake providers, one worker and one API.

``own_stack`` starts a private one for tests that break things (kill a worker, stop Redis) or need other
settings; it shares nothing with the session's stack but the fake providers.
"""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.upstream import FakeUpstream
from tests.harness import ApiProcess, RedisServer, WorkerProcess, provider_env


class Stack:
    def __init__(self, redis: RedisServer, fake: FakeUpstream, worker: WorkerProcess, api: ApiProcess) -> None:
        self.redis = redis
        self.fake = fake
        self.worker = worker
        self.api = api
        self.url = api.base_url


@contextlib.contextmanager
def own_stack(
    logs: Path,
    fake: FakeUpstream,
    worker_env: dict[str, str] | None = None,
    api_env: dict[str, str] | None = None,
    aof: bool = False,
) -> Iterator[Stack]:
    """A private redis-server, worker and API (pointed at ``fake``), stopped afterwards whatever state they are in;
    ``aof``: Redis keeps its data in an append-only file, for a restart on the same port to reload."""
    redis = RedisServer(logs, aof=aof)
    worker = WorkerProcess(logs, redis.url, {**provider_env(fake), **(worker_env or {})})
    api = ApiProcess(logs, redis.url, api_env)
    try:
        api.wait_ready(others=(worker,))
        yield Stack(redis, fake, worker, api)
    finally:
        for process in (api, worker, redis):
            with contextlib.suppress(OSError):  # a test may have stopped (SIGSTOP) or killed it
                process.resume()
            process.stop()


@contextlib.contextmanager
def two_api_stack(
    logs: Path, fake: FakeUpstream, worker_env: dict[str, str] | None = None, api_env: dict[str, str] | None = None
) -> Iterator[tuple[Stack, ApiProcess]]:
    """``own_stack`` with a second API process on the same Redis (the same settings): two replicas."""
    with own_stack(logs, fake, worker_env, api_env) as stack:
        second = ApiProcess(logs, stack.redis.url, api_env)
        try:
            second.wait_ready()
            yield stack, second
        finally:
            second.stop()


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def redis_server(logs: Path) -> Iterator[RedisServer]:
    server = RedisServer(logs)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="session")
def stack(logs: Path, redis_server: RedisServer, fake: FakeUpstream) -> Iterator[Stack]:
    worker = WorkerProcess(logs, redis_server.url, provider_env(fake))
    api = ApiProcess(logs, redis_server.url)
    try:
        api.wait_ready(others=(worker,))
        yield Stack(redis_server, fake, worker, api)
    finally:
        api.stop()
        worker.stop()


@pytest.fixture(autouse=True)
def _fresh_fake(request: pytest.FixtureRequest) -> None:
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()
