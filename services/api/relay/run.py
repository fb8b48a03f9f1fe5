"""One job's life at the edge: register with the hub, enqueue, relay its live events, clean up.

    async with JobRun(gateway, job) as run:
        async for event in run:            # None = the client is due a heartbeat
            ...

Events come live from the hub; whatever the live feed missed (the pub/sub connection dropped, the relay
fell behind a client that stopped reading, a message skipped a seq) is read back from the job's replay
log, so the client sees every event once, in order (``EventRelay``). Leaving the block before the
terminal event (client gone, error) cancels the job, unless its client asked for ``detach``.
"""

import asyncio
import logging
import time
from types import TracebackType
from typing import cast

import anyio
import msgspec
import redis.asyncio as aioredis

from services.api.enqueue import JobQueue
from services.api.ratelimit.limiter import RedisLimiter
from services.api.relay.events import Drain, EventRelay, read_log
from services.api.relay.hub import DOWN, RECONNECTED, PubSubHub
from services.api.settings import ApiSettings
from shared import keys
from shared.codec import decode_events
from shared.errors import ErrorCode, UnavailableError
from shared.events import is_terminal
from shared.jobs import GenerationJob

__all__ = ["Gateway", "JobRun", "NotEnqueuedError"]

log = logging.getLogger("conduit.api")

CANCEL_TTL = 600
#: seconds after its queue deadline that a job with no replay log is known never to run (clock skew between hosts)
NEVER_STARTED_MARGIN = 5.0
#: longest a request waits for its job to be enqueued: a frozen Redis is a 503 within 2 s, even for a job
#: that queued behind a group whose send was already waiting on it (``JobQueue``)
ENQUEUE_WAIT = 1.5


class Gateway:
    """The collaborators every relay needs, built once per process by the lifespan."""

    def __init__(
        self,
        settings: ApiSettings,
        redis: "aioredis.Redis",
        hub: PubSubHub,
        jobs: JobQueue,
        blocking: "aioredis.Redis",
        drain: Drain,
        limiter: RedisLimiter,
    ) -> None:
        self.settings = settings
        self.drain = drain
        self.limiter = limiter
        self.redis = redis
        self.hub = hub
        self.jobs = jobs
        #: for blocking reads (XREAD BLOCK of resumed streams): a pool of its own, no read timeout
        self.blocking = blocking
        #: how long a stream's HTTP status waits for the first token
        self.commit_timeout = settings.commit_timeout

    def run(self, job: GenerationJob) -> "JobRun":
        """The job's relay; entering it enqueues the job."""
        return JobRun(self, job)

    async def ended(self, job_id: str, created: float) -> bool:
        """Whether the job's replay log ends with its terminal event, or there is none past its queue deadline
        (a started job logs at once)."""
        entries = await self.redis.xrevrange(keys.job_log(job_id), "+", "-", count=1)
        logged = cast(list[tuple[bytes, dict[bytes, bytes]]], entries)
        if not logged:
            return time.time() > created + self.settings.queue_timeout + NEVER_STARTED_MARGIN
        return any(is_terminal(event) for _, fields in logged for event in decode_events(fields[b"e"]))


class NotEnqueuedError(UnavailableError):
    """The job was not sent to the workers: none will ever run it."""


LOST_REDIS = "the gateway lost its connection to Redis; retry, or resume the stream with Last-Event-ID"


class JobRun(EventRelay):
    def __init__(self, gateway: Gateway, job: GenerationJob) -> None:
        super().__init__(gateway.settings, gateway.drain)
        self._gateway = gateway
        self.job = job
        self._queue: asyncio.Queue[bytes] | None = None
        self._lease_renewed = time.monotonic()

    async def __aenter__(self) -> "JobRun":
        gateway = self._gateway
        if not gateway.hub.ready:
            raise NotEnqueuedError("the gateway cannot reach Redis; try again shortly")
        self.job = msgspec.structs.replace(self.job, reply_to=gateway.hub.channel)
        self._queue = gateway.hub.register(self.job.id)
        try:
            async with asyncio.timeout(ENQUEUE_WAIT):
                await gateway.jobs.put(self.job)
        except asyncio.CancelledError as exc:  # the client left while its job was being sent: it may still go out
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        except Exception as exc:
            gateway.hub.unregister(self.job.id)
            await self._release_lease()
            raise NotEnqueuedError("the gateway could not enqueue the job; try again shortly") from exc
        self._last_activity = self._last_yield = time.monotonic()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._gateway.hub.unregister(self.job.id)
        cancel = not self.finished and not self.handed_off and self.job.on_disconnect == "cancel"
        release = self._releases_lease()
        if cancel or release:
            with anyio.CancelScope(shield=True):  # the client may be gone: the cancel must still go out
                if cancel:
                    await self.cancel()
                if release:
                    await self._release_lease()

    def _releases_lease(self) -> bool:
        """Whether leaving the relay releases the job's lease: not once a worker started the job (the worker
        holds it until the job ends), nor for a detached job sent to the workers and not given up (its
        worker claims the lease when it starts it; if none ever does, it runs out)."""
        return not self.started and (self.finished or self.job.on_disconnect != "detach")

    async def _release_lease(self) -> None:
        """For a job no worker started (no worker came, or it could not be enqueued); a worker that took it
        later finds no lease to release."""
        admission = self.job.admission
        if admission is not None and admission.lease:
            try:
                await self._gateway.limiter.release(admission, self.job.id)
            except Exception as exc:  # it runs out by itself
                log.warning("could not release the stream lease of job %s: %s", self.job.id, exc)

    async def _renew_lease(self) -> None:
        """Renew the job's concurrent-stream lease a few times per its TTL while the relay runs."""
        admission = self.job.admission
        now = time.monotonic()
        if admission is None or not admission.lease or now - self._lease_renewed < self._settings.lease_ttl / 3:
            return
        self._lease_renewed = now
        try:
            await self._gateway.limiter.renew(admission, self.job.id)
        except Exception as exc:
            log.warning("could not renew the stream lease of job %s: %s", self.job.id, exc)

    async def cancel(self) -> None:
        """Tell the workers this job's client is gone: a flag for a job not yet started, a message for one running."""
        try:
            async with self._gateway.redis.pipeline(transaction=False) as pipe:
                pipe.set(keys.job_cancel(self.job.id), b"1", ex=CANCEL_TTL)
                pipe.publish(keys.CANCEL_CHANNEL, self.job.id)
                await pipe.execute()
        except Exception as exc:
            log.warning("could not cancel job %s: %s", self.job.id, exc)

    async def _repair(self) -> None:
        """Take the events the live feed missed from the job's replay log."""
        try:
            self._accept(await read_log(self._gateway.redis, self.job.id, self.last_seq))
        except Exception as exc:
            log.warning("could not repair the stream of job %s from its log: %s", self.job.id, exc)
            self._fail(ErrorCode.UNAVAILABLE, LOST_REDIS)

    async def _receive(self, timeout: float) -> None:
        if self._queue is None:
            raise RuntimeError("JobRun used outside its `async with` block")
        await self._renew_lease()
        async with asyncio.timeout(min(timeout, self._settings.lease_ttl / 3)):
            first = await self._queue.get()
        payloads = [first]
        while not self._queue.empty():
            payloads.append(self._queue.get_nowait())
        self._last_activity = time.monotonic()
        for payload in payloads:
            if payload == DOWN:
                self._fail(ErrorCode.UNAVAILABLE, LOST_REDIS)
                return
            if payload == RECONNECTED:
                await self._repair()
                continue
            events = decode_events(payload)
            if events and events[0].seq > self.last_seq + 1:  # a live message went missing
                await self._repair()
            self._accept(events)
        if self._gateway.hub.lagged(self.job.id):
            await self._repair()
