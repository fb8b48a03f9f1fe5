"""What every relay of a job's events does, wherever they come from: order, deadlines, heartbeats.

A relay hands out a job's events in ``seq`` order, each once (the live feed and the replay log may both
carry one), heartbeats dropped; ``None`` when the client is due a ``: ping``. When a deadline passes it
makes the terminal ``Failed`` itself: no worker took the job within the queue deadline, the worker
went silent for the idle deadline, or this API process is shutting down and its grace is over (``Drain``:
the stream ends with a retryable error, the job runs on, and the client resumes it on another replica).
Exactly one terminal event comes out; then the iteration stops. Subclasses say where events come from
(``_receive``).

A ``Failed`` made here is not one of the job's events: it has ``seq`` 0 (a job's own count from 1), so it
takes no seq the job may still use, and its frames carry no ``id:`` (``services.api.sse``).
"""

import collections
import contextlib
import time
from typing import cast

import redis.asyncio as aioredis

from services.api.settings import ApiSettings
from shared import keys
from shared.codec import decode_events, log_entry_id
from shared.errors import ErrorCode
from shared.events import Event, Failed, Heartbeat, Started, is_terminal

__all__ = ["Drain", "EventRelay", "read_log"]

SHUTTING_DOWN = "this API server is shutting down; resume the stream with Last-Event-ID on another replica"


class Drain:
    """The process's shutdown: from ``begin``, open relays have ``grace`` seconds to finish."""

    def __init__(self) -> None:
        self.deadline = float("inf")

    def begin(self, grace: float) -> None:
        self.deadline = min(self.deadline, time.monotonic() + grace)


async def read_log(redis: "aioredis.Redis", job_id: str, after_seq: int) -> list[Event]:
    """The job's logged events with a seq above ``after_seq`` (and, from the first entry, a few below)."""
    entries = await redis.xrange(keys.job_log(job_id), f"({log_entry_id(after_seq)}", "+")
    logged = cast(list[tuple[bytes, dict[bytes, bytes]]], entries)
    return [event for _, fields in logged for event in decode_events(fields[b"e"])]


class EventRelay:
    def __init__(self, settings: ApiSettings, drain: Drain) -> None:
        self._settings = settings
        self._drain = drain
        #: ended by the shutdown: the job goes on, for a resume elsewhere
        self.handed_off = False
        self._ready: collections.deque[Event] = collections.deque()
        self._last_activity = self._last_yield = time.monotonic()
        self.last_seq = 0
        self.finished = False
        self.started = False
        self._ended = False  # the terminal event is in ``_ready``: nothing more is taken

    def _accept(self, events: list[Event]) -> None:
        """Take the events not seen yet, in order, up to a terminal one."""
        for event in events:
            if event.seq <= self.last_seq or self._ended:
                continue
            self.last_seq = event.seq
            if not isinstance(event, Heartbeat):
                self._ready.append(event)
                self._ended = is_terminal(event)

    def _fail(self, code: ErrorCode, message: str, *, retryable: bool = True) -> None:
        """End the stream with an error of the gateway's own (``seq`` 0: not one of the job's events)."""
        if not self._ended:
            self._ended = True
            self._ready.append(Failed(seq=0, code=code, message=message, retryable=retryable))

    def _deadline_passed(self) -> None:
        if not self.started:
            self._fail(ErrorCode.NO_WORKER, f"no worker picked up the job within {self._settings.queue_timeout:g} s")
        else:
            self._fail(
                ErrorCode.WORKER_LOST,
                f"the worker stopped responding (nothing for {self._settings.idle_timeout:g} s)",
            )

    async def _receive(self, timeout: float) -> None:
        """Wait up to ``timeout`` for events and ``_accept`` them (TimeoutError when none came)."""
        raise NotImplementedError

    def __aiter__(self) -> "EventRelay":
        return self

    async def __anext__(self) -> Event | None:
        return await self.next()

    async def next(self, max_wait: float | None = None) -> Event | None:
        """The next event, in order and without duplicates; after the terminal one, StopAsyncIteration.

        ``None`` means the client is due a heartbeat, or ``max_wait`` passed with nothing to return.
        """
        if self.finished:
            raise StopAsyncIteration
        settings = self._settings
        waited_from = time.monotonic()
        while not self._ready:
            if self.finished:
                raise StopAsyncIteration
            now = time.monotonic()
            limit = settings.idle_timeout if self.started else settings.queue_timeout
            if now - self._last_activity >= limit:
                self._deadline_passed()
                break
            if now >= self._drain.deadline:
                self.handed_off = True
                self._fail(ErrorCode.UNAVAILABLE, SHUTTING_DOWN)
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
                self._drain.deadline,
            )
            with contextlib.suppress(TimeoutError):
                await self._receive(max(wait - now, 0.001))
        event = self._ready.popleft()
        self._last_yield = time.monotonic()
        if isinstance(event, Started):
            self.started = True
        self.finished = is_terminal(event)
        return event
