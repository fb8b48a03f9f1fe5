"""One job's life at the edge: register with the hub, enqueue, relay events under deadlines, clean up.

    async with JobRun(gateway, job) as run:
        async for event in run:            # None = the client is due a heartbeat
            ...

Exactly one terminal event comes out of the iteration: the worker's, or a ``Failed`` made here when a
deadline passes (no worker took the job; the worker went silent). Leaving the block before the
terminal event (client gone, error) cancels the job.
"""

import asyncio
import collections
import contextlib
import logging
import time
from types import TracebackType
from typing import cast

import anyio
import msgspec
import redis.asyncio as aioredis

from services.api.enqueue import JobQueue
from services.api.relay.hub import RECONNECTED, PubSubHub
from services.api.settings import ApiSettings
from shared import keys
from shared.codec import decode_events
from shared.errors import ErrorCode, UnavailableError
from shared.events import Event, Failed, Heartbeat, Started, is_terminal
from shared.jobs import GenerationJob

__all__ = ["Gateway", "JobRun"]

log = logging.getLogger("conduit.api")

CANCEL_TTL = 600


class Gateway:
    """The collaborators every relay needs, built once per process by the lifespan."""

    def __init__(self, settings: ApiSettings, redis: "aioredis.Redis", hub: PubSubHub, jobs: JobQueue) -> None:
        self.settings = settings
        self.redis = redis
        self.hub = hub
        self.jobs = jobs


class JobRun:
    def __init__(self, gateway: Gateway, job: GenerationJob) -> None:
        self._gateway = gateway
        self.job = job
        self._queue: asyncio.Queue[bytes] | None = None
        self._ready: collections.deque[Event] = collections.deque()
        self._last_activity = self._last_yield = time.monotonic()
        self.last_seq = 0
        self.finished = False
        self.started = False

    async def __aenter__(self) -> "JobRun":
        gateway = self._gateway
        if not gateway.hub.ready:
            raise UnavailableError("the gateway cannot reach Redis; try again shortly")
        self.job = msgspec.structs.replace(self.job, reply_to=gateway.hub.channel)
        self._queue = gateway.hub.register(self.job.id)
        try:
            await gateway.jobs.put(self.job)
        except asyncio.CancelledError as exc:  # the client left while its job was being sent: it may still go out
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        except Exception as exc:
            gateway.hub.unregister(self.job.id)
            raise UnavailableError("the gateway could not enqueue the job; try again shortly") from exc
        self._last_activity = self._last_yield = time.monotonic()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._gateway.hub.unregister(self.job.id)
        if not self.finished:
            with anyio.CancelScope(shield=True):  # the client may be gone: the cancel must still go out
                await self.cancel()

    async def cancel(self) -> None:
        """Tell the workers this job's client is gone: a flag for a job not yet started, a message for one running."""
        try:
            async with self._gateway.redis.pipeline(transaction=False) as pipe:
                pipe.set(keys.job_cancel(self.job.id), b"1", ex=CANCEL_TTL)
                pipe.publish(keys.CANCEL_CHANNEL, self.job.id)
                await pipe.execute()
        except Exception as exc:
            log.warning("could not cancel job %s: %s", self.job.id, exc)

    async def _repair(self) -> list[Event]:
        """Events missed while the pub/sub connection was down, read back from the job's replay log."""
        log_key = keys.job_log(self.job.id)
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await self._gateway.redis.xrange(log_key))
        return [event for _, fields in entries for event in decode_events(fields[b"e"])]

    def _fresh(self, events: list[Event]) -> list[Event]:
        fresh = [event for event in events if event.seq > self.last_seq]
        if fresh:
            self.last_seq = fresh[-1].seq
        return fresh

    def _deadline_failure(self) -> Failed:
        settings = self._gateway.settings
        if not self.started:
            return Failed(
                seq=self.last_seq + 1,
                code=ErrorCode.NO_WORKER,
                message=f"no worker picked up the job within {settings.queue_timeout:g} s",
                retryable=True,
            )
        return Failed(
            seq=self.last_seq + 1,
            code=ErrorCode.WORKER_LOST,
            message=f"the worker stopped responding (nothing for {settings.idle_timeout:g} s)",
            retryable=True,
        )

    def __aiter__(self) -> "JobRun":
        return self

    async def __anext__(self) -> Event | None:
        return await self.next()

    async def next(self, max_wait: float | None = None) -> Event | None:
        """The next event, in order and without duplicates; after the terminal one, StopAsyncIteration.

        ``None`` means the client is due a heartbeat, or ``max_wait`` passed with nothing to return.
        """
        settings = self._gateway.settings
        waited_from = time.monotonic()
        while not self._ready:
            if self.finished:
                raise StopAsyncIteration
            now = time.monotonic()
            limit = settings.idle_timeout if self.started else settings.queue_timeout
            if now - self._last_activity >= limit:
                self._ready.append(self._deadline_failure())
                break
            if now - self._last_yield >= settings.heartbeat_interval or (
                max_wait is not None and now - waited_from >= max_wait
            ):
                self._last_yield = now
                return None
            wait = min(
                self._last_activity + limit,
                self._last_yield + settings.heartbeat_interval,
                waited_from + max_wait if max_wait is not None else float("inf"),
            )
            with contextlib.suppress(TimeoutError):
                await self._receive(max(wait - now, 0.001))
        event = self._ready.popleft()
        self._last_yield = time.monotonic()
        if isinstance(event, Started):
            self.started = True
        self.finished = is_terminal(event)
        return event

    async def _receive(self, timeout: float) -> None:
        if self._queue is None:
            raise RuntimeError("JobRun used outside its `async with` block")
        async with asyncio.timeout(timeout):
            first = await self._queue.get()
        payloads = [first]
        while not self._queue.empty():
            payloads.append(self._queue.get_nowait())
        self._last_activity = time.monotonic()
        events: list[Event] = []
        for payload in payloads:
            events.extend(await self._repair() if payload == RECONNECTED else decode_events(payload))
        self._ready.extend(e for e in self._fresh(events) if not isinstance(e, Heartbeat))
