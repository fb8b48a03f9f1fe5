"""Whether interactive jobs are running anywhere: what a batch runner gives way to.

A worker serving the interactive queue records each job it claims in its job registry (``keys.worker_jobs``)
and takes it out with its next heartbeat after the job ended (every ``presence_interval``, 0.5 s). So "some
live interactive worker's registry is not empty" means "interactive jobs ran within the last half second":
read with one ``EXISTS`` over those registries, at most every ``every`` seconds; the roster of live interactive
workers (their presence and announced queues) is read again every ``roster_every`` seconds.

Nothing is added to an interactive job's own path: the batch side only reads what the workers write anyway.
"""

import logging
import time
from typing import cast

import msgspec
import redis.asyncio as aioredis

from shared import keys
from shared.tasks import QueueName
from shared.workers import WorkerInfo

__all__ = ["InteractiveWatch"]

log = logging.getLogger("conduit.worker")


_info = msgspec.json.Decoder(WorkerInfo).decode


class InteractiveWatch:
    def __init__(
        self, redis: "aioredis.Redis", *, every: float = 0.02, roster_every: float = 1.0, alive_within: float = 5.0
    ) -> None:
        self._redis = redis
        self._every, self._roster_every, self._alive_within = every, roster_every, alive_within
        self._registries: list[str] = []
        self._checked = self._listed = float("-inf")
        self._busy = False

    async def busy(self) -> bool:
        """Whether interactive jobs run now (or ran within the workers' last heartbeat); ``False`` when Redis
        cannot tell (nothing seen to give way to)."""
        now = time.monotonic()
        if now - self._checked < self._every:
            return self._busy
        self._checked = now
        try:
            if now - self._listed >= self._roster_every:
                self._listed = now
                await self._roster()
            self._busy = bool(self._registries) and int(await self._redis.exists(*self._registries)) > 0
        except Exception as exc:
            log.debug("could not read the interactive workers' registries: %s", exc)
            self._busy = False
        return self._busy

    async def _roster(self) -> None:
        since = time.time() - self._alive_within
        names = [
            raw.decode() for raw in cast(list[bytes], await self._redis.zrangebyscore(keys.WORKERS, since, "+inf"))
        ]
        infos = (
            cast(list[bytes | None], await self._redis.mget([keys.worker_info(name) for name in names]))
            if names
            else []
        )
        self._registries = [
            keys.worker_jobs(name)
            for name, raw in zip(names, infos, strict=True)
            if raw is not None and QueueName.INTERACTIVE.value in _info(raw).queues
        ]
