"""Dead workers and lost jobs, noticed within seconds: the sweeper every API process runs.

Each round (every ``interval``, 0.5 s) one API process, whichever takes the round's lock, sweeps:

- **Dead workers.** A worker announces itself every 0.5 s (``keys.WORKERS``); one silent for
  ``worker_timeout`` (3 s) is dead (SIGKILL, a frozen VM). Its job registry (``keys.worker_jobs``: what
  it claimed and had not finished) is taken and deleted in one script (``reap.lua``: once per silence,
  and only while the worker is still silent; its presence is left to the directory, as a frozen worker
  may come back). For each of its jobs the sweeper frees the stream lease, appends a retryable
  ``worker_lost`` ``Failed`` to the job's events (published live and logged, numbered after its last
  logged event, so live relays, resumes and detached jobs all see it), and cancels the job, in case the
  worker was only frozen and comes back. So a dead worker's streams end within ``worker_timeout`` and a
  round, not at the relay's idle deadline (30 s), and its user's leases are free at once.
- **Lost jobs.** A job is pending (``keys.pending``) from its enqueue until a worker claims it as it starts
  it. One pending for ``requeue_after`` (2 s) that is no longer in its queue was fetched by a worker that
  did not start it: frozen or dead with the message in hand, or in the socket of its BRPOP. It is sent
  again (to the back of the queue). A queue is first-in first-out, so a job is known to have left it when
  it was sent before the oldest job still queued (the queue's tail message), or when the queue is empty.
  The claim (``SET NX`` in the worker) keeps a job that was only slow from running twice: the copy that
  comes second is skipped. Jobs past their queue deadline are dropped instead (their client was told
  ``no_worker``).
"""

import contextlib
import importlib.resources
import logging
import uuid
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis

from services.api.enqueue import celery_message, resent_messages
from services.api.periodic import Periodic
from services.api.settings import ApiSettings
from shared import keys
from shared.codec import encode_events, frame_reply, log_entry_id
from shared.errors import ErrorCode
from shared.events import Failed
from shared.tasks import QueueName
from shared.workers import RunningJob

__all__ = ["Sweeper"]

log = logging.getLogger("conduit.api")

#: a job's cancel flag and a log the sweeper had to create live this long (the worker's defaults)
CANCEL_TTL = 600
LOG_TTL = 600
#: pending jobs looked at per queue and round
BATCH = 512

_REAP = importlib.resources.files("services.api").joinpath("reap.lua").read_text()


class _Headers(msgspec.Struct):
    argsrepr: str = ""


class _Envelope(msgspec.Struct):
    headers: _Headers = msgspec.field(default_factory=_Headers)


class _Deadline(msgspec.Struct):
    deadline: float = 0.0


def _job_ids(message: bytes) -> list[str]:
    """The job ids of a ``generate_jobs`` Celery message, from its ``argsrepr`` (``(<N job(s): a b>,)``)."""
    label = msgspec.json.decode(message, type=_Envelope).headers.argsrepr
    _, found, rest = label.partition(": ")
    return rest.split(">", 1)[0].split() if found else []


def _deadline(job: bytes) -> float:
    with contextlib.suppress(msgspec.MsgspecError):
        return msgspec.json.decode(job, type=_Deadline).deadline
    return 0.0


class Sweeper:
    def __init__(
        self,
        redis: "aioredis.Redis",
        settings: ApiSettings,
        broker: "aioredis.Redis | None",
        interval: float = 0.5,
    ) -> None:
        self._redis = redis
        self._broker = broker  # the Redis holding the queues (None: not a Redis broker, nothing is resent)
        self._settings = settings
        self._interval = interval
        self._token = uuid.uuid4().hex
        self._reap = redis.register_script(_REAP)
        self._rounds = Periodic("sweeper", self._interval, self.sweep, "sweep for dead workers and lost jobs")

    async def start(self) -> None:
        await self._rounds.start()

    async def stop(self) -> None:
        await self._rounds.stop()

    async def sweep(self) -> None:
        """One round, if no other API process has taken it."""
        settings = self._settings
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.SWEEP_LOCK, self._token, nx=True, px=max(1, int(self._interval * 900)))
            pipe.time()
            mine, (seconds, micros) = await pipe.execute()
        if not mine:
            return
        now = seconds + micros / 1e6  # the Redis server's clock: heartbeats and pending jobs are timed by it
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(keys.WORKERS, "-inf", now - settings.worker_timeout)
            for queue in QueueName:
                pipe.zrangebyscore(
                    keys.pending(queue), "-inf", now - settings.requeue_after, start=0, num=BATCH, withscores=True
                )
            dead, *stale = await pipe.execute()
        for name in cast(list[bytes], dead):
            await self._end_jobs_of(name.decode(), now - settings.worker_timeout)
        if self._broker is not None:
            for queue, candidates in zip(QueueName, stale, strict=True):
                if candidates:
                    await self._resend(self._broker, queue, cast(list[tuple[bytes, float]], candidates), now)

    # -- dead workers -------------------------------------------------------------------------------

    async def _end_jobs_of(self, worker: str, silent_since: float) -> None:
        raw = await self._reap(
            keys=[keys.WORKERS, keys.worker_jobs(worker), keys.worker_reaped(worker)], args=[worker, silent_since]
        )
        if raw is None:  # it spoke again meanwhile, or this silence was reaped already
            return
        flat = cast(list[bytes], raw)
        jobs = [
            (job_id.decode(), msgspec.json.decode(entry, type=RunningJob))
            for job_id, entry in zip(flat[::2], flat[1::2], strict=True)
        ]
        log.warning(
            "worker %s sent no heartbeat for %g s: it is gone; ending its %d running jobs worker_lost",
            worker,
            self._settings.worker_timeout,
            len(jobs),
        )
        if not jobs:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id, _ in jobs:
                pipe.xrevrange(keys.job_log(job_id), "+", "-", count=1)
            logged = cast(list[list[tuple[bytes, Any]]], await pipe.execute())
        message = f"the worker running the job stopped (no heartbeat for {self._settings.worker_timeout:g} s)"
        async with self._redis.pipeline(transaction=False) as pipe:
            for (job_id, running), last in zip(jobs, logged, strict=True):
                seq = int(last[0][0].split(b"-")[1]) + 1 if last else 1
                payload = encode_events([Failed(seq=seq, code=ErrorCode.WORKER_LOST, message=message, retryable=True)])
                if running.reply_to:
                    pipe.publish(running.reply_to, frame_reply(job_id, payload))
                pipe.xadd(keys.job_log(job_id), {"e": payload}, id=log_entry_id(seq))
                pipe.expire(keys.job_log(job_id), LOG_TTL, nx=True)
                if running.lease:
                    pipe.zrem(running.lease, job_id)
                pipe.set(keys.job_cancel(job_id), b"1", ex=CANCEL_TTL)
                pipe.publish(keys.CANCEL_CHANNEL, job_id)
            await pipe.execute(raise_on_error=False)  # an XADD after an id the worker wrote meanwhile fails alone

    # -- lost jobs ----------------------------------------------------------------------------------

    async def _resend(
        self, broker: "aioredis.Redis", queue: QueueName, candidates: list[tuple[bytes, float]], now: float
    ) -> None:
        async with broker.pipeline(transaction=True) as pipe:
            pipe.llen(queue.value)
            pipe.lindex(queue.value, -1)
            queued, tail = await pipe.execute()
        if queued:  # what was sent before the oldest job still queued has left the queue
            tail_ids = _job_ids(tail) if tail else []
            scores = await self._redis.zmscore(keys.pending(queue), tail_ids) if tail_ids else []
            known = [score for score in scores if score is not None]
            if not known:  # the tail is a copy of jobs started already: it goes soon; look again then
                return
            candidates = [(job_id, sent) for job_id, sent in candidates if sent < min(known)]
        if not candidates:
            return
        ids = [job_id.decode() for job_id, _ in candidates]
        stored = cast(list[bytes | None], await self._redis.hmget(keys.pending_jobs(queue), ids))
        jobs: dict[str, object] = {}
        expired: list[str] = []
        for job_id, raw in zip(ids, stored, strict=True):
            if raw is None:  # claimed meanwhile
                continue
            deadline = _deadline(raw)
            if deadline and deadline < now:
                expired.append(job_id)
            else:
                jobs[job_id] = raw.decode()  # the job's JSON text, as ``encode_job`` sends it
        if expired:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(keys.pending(queue), *expired)
                pipe.hdel(keys.pending_jobs(queue), *expired)
                await pipe.execute()
        if not jobs:
            return
        log.warning(
            "%d jobs left queue %s %g s ago or more and no worker started them (it died or froze holding "
            "them): sending them again",
            len(jobs),
            queue.value,
            self._settings.requeue_after,
        )
        # the time first, so that a worker claiming a job meanwhile is not followed by a resend of it soon
        await self._redis.zadd(keys.pending(queue), dict.fromkeys(jobs, now), xx=True)
        await broker.lpush(queue.value, *(celery_message(m) for m in resent_messages(queue, jobs)))
