"""A job's events read back from its replay log, then followed live: what a resume relays.

Any API replica can serve it: the log holds every event the worker published, under entry ids that
follow their seq, and ``XREAD BLOCK`` waits for the next ones. While it follows an unfinished job it
keeps the job's watch key alive, so a worker whose own reply channel went silent (the replica that took
the request is gone) knows somebody still wants the answer.

Redis failing is never an empty answer: finding the job is a 503 (``UnavailableError``) within
``FIND_WAIT``; a read on a pooled connection that Redis closed (it restarted) is tried once more on a
new one (the pool's retry, ``services.api.lifespan``); any other failure ends the stream with the
gateway's own error event (``EventRelay._fail``), which no ``Last-Event-ID`` filters out.
"""

import asyncio
import logging
import time
from typing import cast

import redis.exceptions

from services.api.relay.events import EventRelay
from services.api.relay.run import LOST_REDIS, Gateway
from shared import keys
from shared.codec import decode_events, decode_record
from shared.errors import ErrorCode, UnavailableError
from shared.jobs import StreamRecord

__all__ = ["LogRelay", "find_record"]

log = logging.getLogger("conduit.api")

WATCH_TTL = 10
WATCH_EVERY = 3.0
#: entries read per XREAD
BATCH = 512
#: longest wait for Redis to find the job (the pool's own timeouts, retry included, may add up to more)
FIND_WAIT = 1.5


async def find_record(gateway: Gateway, user_id: str, ident: str) -> tuple[str, StreamRecord] | None:
    """``(job id, record)`` of the job ``ident`` names: its id, or the name its owner gave it; None if
    there is none (or it expired). The caller checks the owner. Redis unreachable: ``UnavailableError``."""
    try:
        async with asyncio.timeout(FIND_WAIT):
            return await _find_record(gateway, user_id, ident)
    except (TimeoutError, redis.exceptions.RedisError, OSError) as exc:
        raise UnavailableError("the gateway cannot reach Redis; try again shortly") from exc


async def _find_record(gateway: Gateway, user_id: str, ident: str) -> tuple[str, StreamRecord] | None:
    job_id = ident
    raw = cast(bytes | None, await gateway.redis.get(keys.job_record(ident)))
    if raw is None:
        named = cast(bytes | None, await gateway.redis.get(keys.job_name(user_id, ident)))
        if named is None:
            return None
        job_id = named.decode()
        raw = cast(bytes | None, await gateway.redis.get(keys.job_record(job_id)))
    return None if raw is None else (job_id, decode_record(raw))


class LogRelay(EventRelay):
    def __init__(self, gateway: Gateway, job_id: str) -> None:
        super().__init__(gateway.settings, gateway.drain)
        self._gateway = gateway
        self.job_id = job_id
        self._key = keys.job_log(job_id)
        self._entry = "0-0"  # the last log entry read
        self._watched_at = 0.0

    async def _watch(self) -> None:
        now = time.monotonic()
        if now - self._watched_at >= WATCH_EVERY:
            self._watched_at = now
            await self._gateway.redis.set(keys.job_watch(self.job_id), b"1", ex=WATCH_TTL)

    async def _receive(self, timeout: float) -> None:
        try:
            await self._watch()
            async with asyncio.timeout(timeout + 2.0):  # a silent Redis must not hold the stream forever
                reply = await self._gateway.blocking.xread(
                    {self._key: self._entry}, count=BATCH, block=max(1, int(timeout * 1000))
                )
        except TimeoutError:
            self._fail(ErrorCode.UNAVAILABLE, LOST_REDIS)
            return
        except Exception as exc:
            log.warning("could not read the log of job %s: %s", self.job_id, exc)
            self._fail(ErrorCode.UNAVAILABLE, LOST_REDIS)
            return
        entries = [
            entry
            for _, stream in cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], reply or [])
            for entry in stream
        ]
        if not entries:
            raise TimeoutError
        self._last_activity = time.monotonic()
        for entry_id, fields in entries:
            self._entry = entry_id.decode()
            events = decode_events(fields[b"e"])
            if self.last_seq == 0 and events and events[0].seq > 1:
                self._fail(ErrorCode.NOT_FOUND, "the beginning of this stream is no longer kept", retryable=False)
                return
            self._accept(events)
