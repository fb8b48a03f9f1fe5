"""The jobs a worker runs, as Redis sees them: claimed once, registered, their leases kept alive.

- **Claim** (``claim.lua``, one round trip per group of jobs started together): a job is claimed by the
  first worker that starts it (``SET NX``), so it runs at most once even when its message was sent again
  (the API's sweeper re-sends a job that was fetched by a worker that died before starting it). Claiming
  takes the job out of the API's pending set and records it in this worker's job registry.
- **Registry** (``keys.worker_jobs``): job id -> ``RunningJob`` (its lease key, its reply channel). When
  the worker is declared dead (no heartbeat for the API's ``worker_timeout``), the API's sweeper reads it,
  frees the leases and ends the streams with ``worker_lost``. Finished jobs leave it with the next beat.
- **Leases**: a job's concurrent-stream lease lives as long as the job, whoever is or is not listening:
  every third of ``lease_ttl`` the worker renews the leases of all its running jobs in its heartbeat's
  round trip (one ``ZADD XX`` per limit subject). The terminal event releases it, as before.
"""

import importlib.resources
import logging
import time
import uuid
from collections import defaultdict
from typing import cast

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from services.redis_calls import ScriptCalls
from shared import keys
from shared.jobs import GenerationJob
from shared.tasks import QueueName
from shared.workers import RunningJob

__all__ = ["JobClaims"]

log = logging.getLogger("conduit.worker")

#: how long a claim outlives its job's queue deadline: a stale copy of the message fetched within it is skipped
CLAIM_MARGIN = 600
#: a dead worker's registry goes by itself after this long, if nobody reaped it
REGISTRY_TTL = 120

_ENTRY = msgspec.json.Encoder()
_PACK = msgspec.msgpack.Encoder()


class JobClaims:
    def __init__(self, redis: "aioredis.Redis", worker: str, lease_ttl: float) -> None:
        self._redis = redis
        self._worker = worker
        self._lease_ttl_ms = max(1000, int(lease_ttl * 1000))
        scripts = importlib.resources.files("services.worker")
        self._claim = ScriptCalls(redis, scripts.joinpath("claim.lua").read_text(), resend=True)
        self._presence = redis.register_script(scripts.joinpath("presence.lua").read_text())
        self._registry = keys.worker_jobs(worker)
        self._keys = [
            self._registry,
            *(key for queue in QueueName for key in (keys.pending(queue), keys.pending_jobs(queue))),
        ]
        self._leases: dict[str, str] = {}  # running job id -> its lease key
        self._finished: list[str] = []  # to leave the registry with the next beat
        self._renewed = time.monotonic()

    async def claim(self, jobs: list[GenerationJob], *, register: bool = True) -> list[bool]:
        """Whether each job is this worker's to run (False: another copy of it was claimed already)."""
        now = time.time()
        packed: list[tuple[str, str, int, str, str]] = []
        for job in jobs:
            admission = job.admission
            lease = keys.lease(admission.subject) if admission is not None and admission.lease else ""
            ttl = int(max(job.deadline - now, 0)) + CLAIM_MARGIN if job.deadline else 2 * CLAIM_MARGIN
            entry = _ENTRY.encode(RunningJob(lease=lease, reply_to=job.reply_to)).decode() if register else ""
            packed.append((job.id, keys.job_claim(job.id), ttl, entry, lease))
        value = f"{self._worker} {uuid.uuid4().hex[:12]}"
        args: list[str | int | bytes] = [value, self._lease_ttl_ms, REGISTRY_TTL, _PACK.encode(packed)]
        claimed = cast(list[int], await self._claim(self._keys, args))
        for (job_id, _, _, _, lease), mine in zip(packed, claimed, strict=True):
            if mine and register and lease:
                self._leases[job_id] = lease
        return [bool(mine) for mine in claimed]

    async def announce(self, pipe: Pipeline, forget_after: float) -> None:
        """Add to the heartbeat's round trip: this worker's presence, on the Redis server's clock (the API's
        sweeper judges silence by it), and the removal of workers silent for ``forget_after`` seconds."""
        await self._presence(keys=[keys.WORKERS], args=[self._worker, forget_after], client=pipe)

    def finished(self, job_id: str) -> None:
        """The job has published its terminal event (which released its lease)."""
        self._leases.pop(job_id, None)
        self._finished.append(job_id)

    def beat(self, pipe: Pipeline) -> None:
        """Add to the heartbeat's round trip: keep the registry, drop finished jobs from it, and renew the
        running jobs' leases when a third of their TTL has passed."""
        if self._finished:
            pipe.hdel(self._registry, *self._finished)
            self._finished = []
        if self._leases:
            pipe.expire(self._registry, REGISTRY_TTL)
        now = time.monotonic()
        if not self._leases or now - self._renewed < self._lease_ttl_ms / 3000:
            return
        self._renewed = now
        expiry = int(time.time() * 1000) + self._lease_ttl_ms
        by_key: defaultdict[str, dict[str, int]] = defaultdict(dict)
        for job_id, lease in self._leases.items():
            by_key[lease][job_id] = expiry
        for lease, members in by_key.items():
            pipe.zadd(lease, members, xx=True)  # a lease the API freed (the job was given up) stays freed
            pipe.pexpire(lease, self._lease_ttl_ms + 1000)

    async def aclose(self) -> None:
        await self._claim.aclose()
