"""Where a job's flushes go: ``RedisSink`` writes each in one round trip (PUBLISH on the reply channel of the
API process relaying the job, XADD to the job's capped replay log, and on the first flush its
``StreamRecord``), grouping the flushes of all jobs that are ready together.
"""

import asyncio
import contextlib
import logging
from typing import Any, NamedTuple, Protocol

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from services.redis_calls import exchange, own_connection
from shared import keys
from shared.codec import frame_reply, log_entry_id

__all__ = ["LOG_MAXLEN", "EventSink", "Flush", "RedisSink"]

#: replay-log entries kept per job (a flush each: a paced answer of 10,000 tokens still resumes from its start)
LOG_MAXLEN = 10_000

log = logging.getLogger("conduit.worker")


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
    #: commands ahead of the flush's own, in the same round trip (what a job's end saves, in place before a
    #: client can see the end); their failures are logged, and do not fail the flush
    before: tuple[tuple[Any, ...], ...] = ()


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
            flush = waiting.flush
            extra = list(zip(flush.before, results[position.start - len(flush.before) : position.start], strict=True))
            if flush.after is not None:
                extra.append((flush.after, results[position.stop]))
            for command, reply in extra:
                if isinstance(reply, Exception):
                    log.warning("job %s: %s failed: %s", flush.job_id, command[0], reply)
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
        ``before`` commands' replies right ahead of them, its ``after`` command's right behind)."""
        commands: list[tuple[Any, ...]] = []
        positions: list[slice] = []
        for job_id, reply_to, payload, last_seq, record, name_key, expire, after, before in flushes:
            commands.extend(before)
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
