"""Publishing a job's events: coalesced, one Redis round trip per flush.

A flush PUBLISHes the pending events as one msgpack array on the reply channel of the API process
relaying the job (framed with the job id) and appends the same payload to the job's capped replay
stream (with a TTL). While a flush is in flight new events pile up,
so a fast upstream is batched by Redis's own latency; text deltas that pile up merge into one event.
The flusher also sends a heartbeat when nothing has been published for a while. The first flush can hold
a lone first event back briefly (``hold_first``), so a job's ``Started`` goes out with its first tokens in
one round trip instead of taking one of its own just before them. A flush that reaches
no subscriber means the API process relaying the job is gone (it subscribes before it enqueues; a
client that leaves is reported by a cancel message): ``on_gone`` is called, even while the upstream is
silent, so the job stops instead of generating for nobody.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeVar

import msgspec
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

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
    flight go out together in the next one, so the Python cost of a round trip (the larger part of a
    flush) is paid once per batch, not once per job. An idle sink sends a lone flush at once. The sink
    writes on a connection of its own, packed in one write with the replies read back in order: no
    pipeline object and no pool checkout, whose awaits each cost a turn of a busy loop."""

    MAX_BATCH = 512

    def __init__(self, client: "aioredis.Redis", log_ttl: float) -> None:
        self._client = client
        self._ttl = max(1, int(log_ttl))
        self._waiting: list[_Flush] = []
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # a round trip is in flight
        self._connection: AbstractConnection | None = None  # its own: no pool checkout per round trip
        # the client's retry policy; without one, a dropped connection is still replaced once
        self._retry = client.get_retry() or Retry(NoBackoff(), 1)
        self._timeout = client.connection_pool.connection_kwargs.get("socket_timeout") or 10.0

    async def send(self, job_id: str, reply_to: str, payload: bytes, expire: bool) -> int:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Flush(job_id, reply_to, payload, expire, done))
        if not self._busy:  # idle: this caller sends at once (a task would first wait for a turn of the loop)
            self._busy = True
            try:
                await self._send_batch()
            finally:
                if self._waiting:  # what arrived meanwhile goes out from a task of its own
                    self._task = asyncio.create_task(self._drain(), name="redis-sink")
                else:
                    self._busy = False
        return await done

    async def _drain(self) -> None:
        try:
            while self._waiting:
                await self._send_batch()
        finally:
            self._busy = False

    async def _send_batch(self) -> None:
        batch = self._waiting[: self.MAX_BATCH]
        del self._waiting[: self.MAX_BATCH]
        try:
            results = await self._execute(batch)
        except BaseException as exc:  # Redis unreachable (or the sender cancelled): every job in the batch learns it
            failure = exc if isinstance(exc, Exception) else redis.exceptions.ConnectionError("flush interrupted")
            for flush in batch:
                if not flush.done.done():
                    flush.done.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return
        position = 0
        for flush in batch:
            receivers = int(results[position]) if flush.reply_to else 1
            position += (1 if flush.reply_to else 0) + 1 + (1 if flush.expire else 0)
            if not flush.done.done():
                flush.done.set_result(receivers)

    async def _execute(self, batch: list[_Flush]) -> list[Any]:
        commands: list[tuple[Any, ...]] = []
        for job_id, reply_to, payload, expire, _ in batch:
            log = keys.job_log(job_id)
            if reply_to:
                commands.append(("PUBLISH", reply_to, frame_reply(job_id, payload)))
            commands.append(("XADD", log, "MAXLEN", "~", LOG_MAXLEN, "*", "e", payload))
            if expire:
                commands.append(("EXPIRE", log, self._ttl))
        results: list[Any] = await self._retry.call_with_retry(lambda: self._round_trip(commands), self._drop)
        return results

    async def _round_trip(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """All ``commands`` in one write on the sink's own connection, then their replies."""
        connection = self._connection
        if connection is None:
            pool = self._client.connection_pool
            # no socket timeout of its own: redis-py would run each write as a separate task (wait_for);
            # the whole round trip is under one deadline instead
            options = {**pool.connection_kwargs, "socket_timeout": None}
            connection = self._connection = pool.connection_class(**options)
        try:
            async with asyncio.timeout(self._timeout):
                await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
                return [await connection.read_response() for _ in commands]
        except TimeoutError:
            await self._drop(None)
            raise redis.exceptions.TimeoutError("Redis did not answer a flush in time") from None
        except BaseException:  # replies left unread would answer the next batch: start afresh
            await self._drop(None)
            raise

    async def _drop(self, _: Exception | None) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect()

    async def aclose(self) -> None:
        await self._drop(None)


class JobPublisher:
    """Numbers, coalesces and flushes one job's events; ``close`` waits until the terminal one is out."""

    def __init__(
        self,
        sink: EventSink,
        job_id: str,
        heartbeat_interval: float = 5.0,
        reply_to: str = "",
        on_gone: Callable[[], object] | None = None,
        hold_first: float = 0.0,
    ) -> None:
        self._sink = sink
        self._hold_first = hold_first
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
        await asyncio.shield(self._task)  # the flusher may be sending other jobs' events too: never cancel it
        return numbered

    async def _hold(self) -> None:
        """Keep a lone first event (``Started``) back until another joins it, for up to ``hold_first``."""
        try:
            async with asyncio.timeout(self._hold_first):
                while len(self._pending) < 2 and not self._closed:  # noqa: PLR2004 - a lone first event
                    self._wake.clear()
                    await self._wake.wait()
        except TimeoutError:
            pass
        if self._pending:
            self._wake.set()

    async def _run(self) -> None:
        if self._hold_first:
            await self._hold()
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
