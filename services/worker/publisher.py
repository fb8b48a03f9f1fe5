"""Publishing a job's events: coalesced, one Redis round trip per flush.

A flush PUBLISHes the pending events as one msgpack array on the reply channel of the API process
relaying the job (framed with the job id) and appends the same payload to the job's capped replay
stream, under the entry id ``1-<last seq>`` (``shared.codec.log_entry_id``), so a resume from any event
is one ``XRANGE``. The first flush also writes the job's ``StreamRecord`` (owner, how to render it)
with a TTL that outlives the log; the log gets its TTL on the first and the last flush. While a flush is
in flight new events pile up, so a fast upstream is batched by Redis's own latency; text deltas that pile
up merge into one event.
The flusher also sends a heartbeat when nothing has been published for a while. The first flush can hold
a lone first event back briefly (``hold_first``), so a job's ``Started`` goes out with its first tokens in
one round trip instead of taking one of its own just before them.

A flush that reaches no subscriber means the API process relaying the job is gone, or reconnecting (it
subscribes before it enqueues; a client that leaves is reported by a cancel message). Once nobody has
listened for ``orphan_grace`` seconds, ``on_gone`` is awaited at every flush (heartbeats included, so even
while the upstream is silent); it decides whether the job stops.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol, TypeVar

import msgspec
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from services.redis_calls import exchange, own_connection
from shared import keys
from shared.codec import encode_events, frame_reply, log_entry_id
from shared.events import Done, Event, Failed, Heartbeat, TextDelta, is_terminal

__all__ = ["EventSink", "JobPublisher", "RedisSink"]

#: replay-log entries kept per job (a flush each: a paced answer of 10,000 tokens still resumes from its start)
LOG_MAXLEN = 10_000

log = logging.getLogger("conduit.worker")

E = TypeVar("E", bound=Event)
T = TypeVar("T", bound=Done | Failed)


class EventSink(Protocol):
    async def send(self, flush: "Flush") -> int:
        """Deliver one flush; return how many live subscribers received it (1 when the job has no reply
        channel: nobody to lose)."""
        ...


class Flush(NamedTuple):
    """One job's events for one round trip."""

    job_id: str
    reply_to: str
    payload: bytes
    last_seq: int
    #: the job's StreamRecord, on its first flush only
    record: bytes | None = None
    #: with the record: the key of the client's name for the job, to keep as long as the record
    name_key: str = ""
    #: (re)set the TTL of the log (on the first and the last flush, not on every one)
    expire: bool = False
    #: one more command after the flush's own (the job's settlement, with its terminal event); its failure
    #: is logged, and does not fail the flush
    after: tuple[Any, ...] | None = None


class _Waiting(NamedTuple):
    flush: Flush
    done: "asyncio.Future[int]"


class RedisSink:
    """Group commit: the flushes of every job in the process that are waiting while a round trip is in
    flight go out together in the next one, so the Python cost of a round trip (the larger part of a
    flush) is paid once per batch, not once per job. An idle sink sends a lone flush at once. The sink
    writes on a connection of its own, packed in one write with the replies read back in order: no
    pipeline object and no pool checkout, whose awaits each cost a turn of a busy loop."""

    MAX_BATCH = 512

    def __init__(self, client: "aioredis.Redis", log_ttl: float, record_ttl: float = 0.0) -> None:
        self._client = client
        self._ttl = max(1, int(log_ttl))
        # the record is written once, to outlive the log (a job's longest run plus the log's TTL)
        self._record_ttl = max(self._ttl, int(record_ttl))
        self._waiting: list[_Waiting] = []
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # a round trip is in flight
        self._connection: AbstractConnection | None = None  # its own: no pool checkout per round trip
        # the client's retry policy; without one, a dropped connection is still replaced once
        self._retry = client.get_retry() or Retry(NoBackoff(), 1)
        self._timeout = client.connection_pool.connection_kwargs.get("socket_timeout") or 10.0

    async def send(self, flush: Flush) -> int:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(flush, done))
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
            commands, publishes = self._commands([waiting.flush for waiting in batch])
            results = await self._retry.call_with_retry(lambda: self._round_trip(commands), self._drop)
        except BaseException as exc:  # Redis unreachable (or the sender cancelled): every job in the batch learns it
            failure = exc if isinstance(exc, Exception) else redis.exceptions.ConnectionError("flush interrupted")
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return
        for waiting, position in zip(batch, publishes, strict=True):
            if waiting.flush.after is not None and isinstance(results[position.stop], Exception):
                log.warning(
                    "job %s: %s failed: %s", waiting.flush.job_id, waiting.flush.after[0], results[position.stop]
                )
            if waiting.done.done():
                continue
            failed = next((r for r in results[position.start : position.stop] if isinstance(r, Exception)), None)
            if failed is not None and not _already_logged(failed):
                waiting.done.set_exception(failed)
            else:
                receivers = results[position.start] if waiting.flush.reply_to else 1
                waiting.done.set_result(int(receivers))

    def _commands(self, flushes: list[Flush]) -> tuple[list[tuple[Any, ...]], list[slice]]:
        """The commands of every flush, and the slice of each flush's own replies (its PUBLISH first; its
        ``after`` command's reply right behind them)."""
        commands: list[tuple[Any, ...]] = []
        positions: list[slice] = []
        for job_id, reply_to, payload, last_seq, record, name_key, expire, after in flushes:
            start = len(commands)
            log_key = keys.job_log(job_id)
            if reply_to:
                commands.append(("PUBLISH", reply_to, frame_reply(job_id, payload)))
            commands.append(("XADD", log_key, "MAXLEN", "~", LOG_MAXLEN, log_entry_id(last_seq), "e", payload))
            if record is not None:
                commands.append(("SET", keys.job_record(job_id), record, "EX", self._record_ttl))
                if name_key:
                    commands.append(("EXPIRE", name_key, self._record_ttl))
            if expire:
                commands.append(("EXPIRE", log_key, self._ttl))
            positions.append(slice(start, len(commands)))
            if after is not None:
                commands.append(after)
        return commands, positions

    async def _round_trip(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """All ``commands`` in one write on the sink's own connection, then their replies (an error reply
        is returned in its place, not raised: the other commands' replies must still be read)."""
        connection = self._connection
        if connection is None:
            connection = self._connection = own_connection(self._client)
        try:
            async with asyncio.timeout(self._timeout):
                return await exchange(connection, commands)
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


def _already_logged(error: Exception) -> bool:
    """XADD refused an entry id it already has: a batch re-sent after its connection broke mid-reply."""
    return "equal or smaller than the target stream top item" in str(error)


class JobPublisher:
    """Numbers, coalesces and flushes one job's events; ``close`` waits until the terminal one is out."""

    def __init__(
        self,
        sink: EventSink,
        job_id: str,
        heartbeat_interval: float = 5.0,
        reply_to: str = "",
        on_gone: Callable[[], Awaitable[object]] | None = None,
        hold_first: float = 0.0,
        record: bytes | None = None,
        orphan_grace: float = 0.0,
        name_key: str = "",
    ) -> None:
        self._sink = sink
        self._hold_first = hold_first
        self._on_gone = on_gone
        self._record = record
        self._name_key = name_key
        self._after: tuple[Any, ...] | None = None
        self._orphan_grace = orphan_grace
        self._unheard_since = 0.0  # when flushes started reaching nobody (0: the last one was heard)
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
        if isinstance(last, TextDelta) and last.logprobs is None:
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

    async def close(self, terminal: T, after: tuple[Any, ...] | None = None) -> T:
        """Queue the terminal event, wait until everything is flushed, return it as numbered; ``after`` is a
        command sent with it (in the same round trip)."""
        if not is_terminal(terminal):
            raise ValueError(f"close() takes a terminal event, not {type(terminal).__name__}")
        self._after = after
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
                first = self.receivers == -1
                record, self._record = self._record, None
                after = self._after if is_terminal(batch[-1]) else None
                flush = Flush(
                    self._job_id,
                    self._reply_to,
                    encode_events(batch),
                    batch[-1].seq,
                    record,
                    self._name_key if record is not None else "",
                    first or self._closed,
                    after,
                )
                self.receivers = await self._sink.send(flush)
                self.last_flush = time.monotonic()
                await self._check_heard()
            if self._closed and not self._pending:
                return

    async def _check_heard(self) -> None:
        if self.receivers != 0 or self._closed or self._on_gone is None:
            self._unheard_since = 0.0
            return
        self._unheard_since = self._unheard_since or self.last_flush
        if self.last_flush - self._unheard_since >= self._orphan_grace:
            self._unheard_since = self.last_flush  # asked again after another grace, not at every flush
            await self._on_gone()
