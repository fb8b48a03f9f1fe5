"""A private redis-server for the worker's Redis-facing units (the sink, the ledger)."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.harness import RedisServer


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    server = RedisServer(tmp_path)
    redis = aioredis.Redis.from_url(server.url, socket_timeout=5)
    try:
        yield redis
    finally:
        await redis.aclose()
        server.stop()
