"""Which workers are alive and which providers they can serve, refreshed in the background.

Workers announce themselves in Redis every few seconds with the providers they hold keys for; the API
never sees a key. A request for a provider no live worker serves fails before anything is enqueued.

While Redis is unreachable the directory does not know who is alive: a request that needs it gets
``UnavailableError`` (a 503) within ``REFRESH_WAIT``, not a stale answer or a 500.
"""

import asyncio
import contextlib
import logging
import time
from typing import cast

import msgspec
import redis.asyncio as aioredis

from shared import keys
from shared.errors import UnavailableError
from shared.tasks import QueueName
from shared.workers import WorkerInfo

__all__ = ["WorkerDirectory"]

log = logging.getLogger("conduit.api")

PRESENCE_TTL = 15.0
#: longest a request waits for a refresh (Redis frozen: the pool's read timeout would be longer)
REFRESH_WAIT = 1.0


class WorkerDirectory:
    def __init__(self, client: "aioredis.Redis", interval: float = 2.0) -> None:
        self._client = client
        self._interval = interval
        #: the workers serving interactive jobs, and the providers they hold keys for
        self.workers: list[str] = []
        self.providers: frozenset[str] = frozenset()
        #: the same of the workers serving batches
        self.batch_workers: list[str] = []
        self.batch_providers: frozenset[str] = frozenset()
        self.refreshed = 0.0
        #: the last refresh failed: what the directory knows may be out of date
        self.stale = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.refresh()
        except Exception:
            self.stale = True
        self._task = asyncio.create_task(self._loop(), name="worker-directory")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> None:
        now = time.time()
        raw_names = cast(list[bytes], await self._client.zrangebyscore(keys.WORKERS, now - PRESENCE_TTL, "+inf"))
        names = [name.decode() for name in raw_names]
        found: dict[str, tuple[list[str], set[str]]] = {queue.value: ([], set()) for queue in QueueName}
        if names:
            infos = await self._client.mget([keys.worker_info(name) for name in names])
            for name, raw in zip(names, infos, strict=True):
                if raw is None:
                    continue
                info = msgspec.json.decode(raw, type=WorkerInfo)
                for queue in info.queues:
                    if queue in found:
                        found[queue][0].append(name)
                        found[queue][1].update(info.providers)
        (workers, providers), (batch_workers, batch_providers) = (
            found[QueueName.INTERACTIVE.value],
            found[QueueName.BATCH.value],
        )
        self.workers, self.providers = workers, frozenset(providers)
        self.batch_workers, self.batch_providers = batch_workers, frozenset(batch_providers)
        self.refreshed = time.monotonic()
        self.stale = False

    async def current(self, fresh: bool = False) -> "WorkerDirectory":
        """This directory, refreshed first if it knows no worker (a worker may just have started), or its last
        refresh failed or is overdue, or ``fresh`` is asked (and the last refresh is older than 0.2 s);
        ``UnavailableError`` if Redis does not answer within ``REFRESH_WAIT``."""
        age = time.monotonic() - self.refreshed
        if self.stale or age > 2 * self._interval or ((fresh or not self.workers) and age > 0.2):  # noqa: PLR2004
            try:
                async with asyncio.timeout(REFRESH_WAIT):
                    await self.refresh()
            except Exception as exc:
                self.stale = True
                raise UnavailableError("the gateway cannot reach Redis; try again shortly") from exc
        return self

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except Exception as exc:
                self.stale = True
                log.warning("could not refresh the worker directory: %s", exc)
