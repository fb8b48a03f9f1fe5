"""Publishing a job's events: coalesced, one Redis round trip per flush.

A flush PUBLISHes the pending events as one msgpack array on the reply channel of the API process
relaying the job (framed with the job id) and appends the same payload to the job's capped replay
stream (with a TTL). While a flush is in flight new events pile up,
so a fast upstream is batched by Redis's own latency; text deltas that pile up merge into one event.
The flusher also sends a heartbeat when nothing has been published for a while. A flush that reaches
no subscriber means the API process relaying the job is gone (it subscribes before it enqueues; a
client that leaves is reported by a cancel message): ``on_gone`` is called, even while the upstream is
silent, so the job stops instead of generating for nobody.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeVar

import msgspec
import redis.asyncio as aioredis

from shared import keys
from shared.codec import encode_events, frame_reply
from shared.events import Done, Event, Failed, Heartbeat, TextDelta, is_terminal

__all__ = ["EventSink", "JobPublisher", "RedisSink"]

LOG_MAXLEN = 2000

E = TypeVar("E", bound=Event)
T = TypeVar("T", bound=Done | Failed)


class EventSink(Protocol):
    async def send(self, job_id: str, reply_to: str, payload: bytes, expire: bool) -> int:
        """Deliver one payload; return how many live subscribers received it (1 when the job has no
        reply channel: nobody to lose). ``expire``: (re)set the replay log's TTL (the publisher asks on
        its first and last flush, not on every one)."""
        ...


class _Flush(NamedTuple):
    job_id: str
    reply_to: str
    payload: bytes
    expire: bool
    done: "asyncio.Future[int]"


class RedisSink:
    """Group commit: the flushes of every job in the process that are waiting while a round trip is in
    flight go out together in the next pipeline, so the Python cost of a round trip (the larger part of
    a flush) is paid once per batch, not once per job. An idle sink sends a lone flush at once."""

    MAX_BATCH = 512

    def __init__(self, client: "aioredis.Redis", log_ttl: float) -> None:
        self._client = client
        self._ttl = max(1, int(log_ttl))
        self._waiting: list[_Flush] = []
        self._task: asyncio.Task[None] | None = None

    async def send(self, job_id: str, reply_to: str, payload: bytes, expire: bool) -> int:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Flush(job_id, reply_to, payload, expire, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="redis-sink")
        return await done

    async def _run(self) -> None:
        while self._waiting:
            batch = self._waiting[: self.MAX_BATCH]
            del self._waiting[: self.MAX_BATCH]
            try:
                results = await self._execute(batch)
            except Exception as exc:  # Redis unreachable: every job in the batch learns it
                for flush in batch:
                    if not flush.done.done():
                        flush.done.set_exception(exc)
                continue
            position = 0
            for flush in batch:
                receivers = int(results[position]) if flush.reply_to else 1
                position += (1 if flush.reply_to else 0) + 1 + (1 if flush.expire else 0)
                if not flush.done.done():
                    flush.done.set_result(receivers)

    async def _execute(self, batch: list[_Flush]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for job_id, reply_to, payload, expire, _ in batch:
                if reply_to:
                    pipe.publish(reply_to, frame_reply(job_id, payload))
                pipe.xadd(keys.job_log(job_id), {"e": payload}, maxlen=LOG_MAXLEN, approximate=True)
                if expire:
                    pipe.expire(keys.job_log(job_id), self._ttl)
            results: list[Any] = await pipe.execute()
            return results


class JobPublisher:
    """Numbers, coalesces and flushes one job's events; ``close`` waits until the terminal one is out."""

    def __init__(
        self,
        sink: EventSink,
        job_id: str,
        heartbeat_interval: float = 5.0,
        reply_to: str = "",
        on_gone: Callable[[], object] | None = None,
    ) -> None:
        self._sink = sink
        self._on_gone = on_gone
        self._job_id = job_id
        self._reply_to = reply_to
        self._heartbeat = heartbeat_interval
        self._pending: list[Event] = []
        self._seq = 0
        self._wake = asyncio.Event()
        self._closed = False
        self.receivers = -1  # subscribers reached by the last flush (-1: nothing flushed yet)
        self.last_flush = time.monotonic()
        self._task = asyncio.create_task(self._run(), name=f"publisher:{job_id}")

    @property
    def seq(self) -> int:
        return self._seq

    def raise_if_broken(self) -> None:
        """Re-raise the flusher's failure (Redis unreachable): no point generating what cannot be sent."""
        if self._task.done() and not self._closed:
            self._task.result()

    def emit_text(self, text: str) -> None:
        if not text:
            return
        last = self._pending[-1] if self._pending else None
        if isinstance(last, TextDelta):
            self._pending[-1] = TextDelta(seq=last.seq, text=last.text + text)
        else:
            self._seq += 1
            self._pending.append(TextDelta(seq=self._seq, text=text))
        self._wake.set()

    def emit(self, event: E) -> E:
        """Queue ``event`` with the next ``seq``; return it as numbered."""
        self._seq += 1
        numbered = msgspec.structs.replace(event, seq=self._seq)
        self._pending.append(numbered)
        self._wake.set()
        return numbered

    async def close(self, terminal: T) -> T:
        """Queue the terminal event, wait until everything is flushed, return it as numbered."""
        if not is_terminal(terminal):
            raise ValueError(f"close() takes a terminal event, not {type(terminal).__name__}")
        numbered = self.emit(terminal)
        self._closed = True
        await self._task
        return numbered

    async def _run(self) -> None:
        while True:
            if not self._wake.is_set():
                try:
                    async with asyncio.timeout(self._heartbeat):  # no extra task per wait, unlike wait_for
                        await self._wake.wait()
                except TimeoutError:
                    self.emit(Heartbeat(seq=0))
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                expire = self.receivers == -1 or self._closed
                self.receivers = await self._sink.send(self._job_id, self._reply_to, encode_events(batch), expire)
                self.last_flush = time.monotonic()
                if self.receivers == 0 and not self._closed and self._on_gone is not None:
                    self._on_gone()
            if self._closed and not self._pending:
                return
