"""One pub/sub connection and one reply channel per API process, shared by every job it relays.

Workers publish a job's live events on the ``reply_to`` channel the job carries, framed with its job id;
the hub routes each message to that job's queue. One long-lived subscription replaces a SUBSCRIBE, its
confirmation and an UNSUBSCRIBE per request, and ``register`` costs no round trip. The hub is ``ready``
once Redis has confirmed the subscription, so a job enqueued after that cannot publish into the void.

Nothing the hub does waits on a client:

- Each job's queue is bounded. A relay that falls behind (its client stopped reading) loses the live
  messages past the bound, and is told so (``lagged``); it reads them back from the job's replay log
  when it catches up. Memory stays bounded and the reader never blocks the other streams.
- The connection is watched: the hub PINGs it when it is quiet, and one that says nothing for
  ``silence`` seconds (a frozen Redis, a half-open socket) is dropped and opened again.
- When the subscription is back, every open queue gets ``RECONNECTED``, and its relay repairs the gap
  from the replay log (everything published from then on comes live). If it is not back within
  ``outage_grace``, every open queue gets ``DOWN``: those streams end with an error event, and new
  requests are refused (``ready`` is false) until Redis answers again.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from shared import keys
from shared.codec import split_reply

__all__ = ["DOWN", "RECONNECTED", "PubSubHub"]

log = logging.getLogger("conduit.api")

#: markers in a job's queue; never real payloads (those are non-empty msgpack arrays)
RECONNECTED: Final = b""
DOWN: Final = b"down"


class PubSubHub:
    def __init__(
        self,
        client: "aioredis.Redis",
        *,
        queue_limit: int = 512,
        silence: float = 3.0,
        outage_grace: float = 3.0,
        ping_every: float = 1.0,
    ) -> None:
        self._client = client
        self._queue_limit = queue_limit  # live messages kept for a relay that is not reading
        self._pubsub: PubSub | None = None
        self.channel = keys.replies(uuid.uuid4().hex)
        self._key = self.channel.encode()
        self._queues: dict[bytes, asyncio.Queue[bytes]] = {}
        self._lagging: set[bytes] = set()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._silence = silence
        self._outage_grace = outage_grace
        self._ping_every = ping_every
        self._lost_at = 0.0  # when the subscription was lost (0: not lost, or its streams were told DOWN)

    async def start(self, timeout: float = 5.0) -> None:
        """Start reading; wait (up to ``timeout``) for the subscription, but start anyway without Redis."""
        self._task = asyncio.create_task(self._read(), name="pubsub-hub")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def register(self, job_id: str) -> "asyncio.Queue[bytes]":
        """The queue of ``job_id``'s event payloads, to be filled once the job is enqueued."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(self._queue_limit)
        self._queues[job_id.encode()] = queue
        return queue

    def unregister(self, job_id: str) -> None:
        key = job_id.encode()
        self._queues.pop(key, None)
        self._lagging.discard(key)

    def lagged(self, job_id: str) -> bool:
        """Whether live messages of ``job_id`` were dropped since the last call (its queue was full)."""
        key = job_id.encode()
        if key in self._lagging:
            self._lagging.discard(key)
            return True
        return False

    async def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read(self) -> None:
        heard = pinged = time.monotonic()
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = self._client.pubsub()
                    heard = pinged = time.monotonic()
                    async with asyncio.timeout(self._silence):  # connecting waits for Redis's HELLO reply
                        await self._pubsub.subscribe(self._key)  # the confirmation comes as a message
                message = await self._pubsub.get_message(timeout=min(self._ping_every, self._silence))
                now = time.monotonic()
                if message is not None:
                    heard = now
                    self._route(message)
                elif now - heard >= self._silence:
                    raise ConnectionError(f"Redis said nothing for {now - heard:.1f} s")
                elif now - pinged >= self._ping_every:
                    pinged = now
                    await self._pubsub.ping()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._lost(exc)
                await self._close()
                await asyncio.sleep(0.2)
            self._check_outage()

    def _lost(self, exc: Exception) -> None:
        if self._ready.is_set():
            log.warning("pub/sub connection lost (%s); reconnecting", exc)
            self._ready.clear()
            self._lost_at = time.monotonic()

    def _check_outage(self) -> None:
        if self._lost_at and not self._ready.is_set() and time.monotonic() - self._lost_at >= self._outage_grace:
            log.warning("Redis is still unreachable after %g s; ending the open streams", self._outage_grace)
            self._lost_at = 0.0
            self._tell_all(DOWN)

    def _tell_all(self, marker: bytes) -> None:
        for key, queue in self._queues.items():
            try:
                queue.put_nowait(marker)
            except asyncio.QueueFull:  # the relay is behind: it repairs from the log when it reads again
                self._lagging.add(key)

    def _route(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            job_id, payload = split_reply(message["data"])
            queue = self._queues.get(job_id)
            if queue is not None:
                try:
                    queue.put_nowait(payload)
                except asyncio.QueueFull:
                    if job_id not in self._lagging:
                        log.info(
                            "the client of job %s fell behind; its relay reads the rest from the log", job_id.decode()
                        )
                    self._lagging.add(job_id)
        elif kind == "subscribe" and message["channel"] == self._key:
            if self._lost_at:  # back within the grace: the open streams repair what they missed
                self._lost_at = 0.0
                self._tell_all(RECONNECTED)
            self._ready.set()
