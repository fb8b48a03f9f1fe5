"""One pub/sub connection and one reply channel per API process, shared by every job it relays.

Workers publish a job's live events on the ``reply_to`` channel the job carries, framed with its job id;
the hub routes each message to that job's queue. One long-lived subscription replaces a SUBSCRIBE, its
confirmation and an UNSUBSCRIBE per request, and ``register`` costs no round trip. The hub is ``ready``
once Redis has confirmed the subscription, so a job enqueued after that cannot publish into the void.
The reader never blocks: each job's messages go to an unbounded queue. If the connection breaks, every
open queue gets ``RECONNECTED`` so its relay can repair the gap from the job's replay log; redis-py
subscribes again when it reconnects.
"""

import asyncio
import contextlib
import logging
import uuid
from typing import Any, Final

import redis.asyncio as aioredis

from shared import keys
from shared.codec import split_reply

__all__ = ["RECONNECTED", "PubSubHub"]

log = logging.getLogger("conduit.api")

RECONNECTED: Final = b""  # never a real payload: events are non-empty msgpack arrays


class PubSubHub:
    def __init__(self, client: "aioredis.Redis") -> None:
        self._client = client
        self._pubsub = client.pubsub()
        self.channel = keys.replies(uuid.uuid4().hex)
        self._key = self.channel.encode()
        self._queues: dict[bytes, asyncio.Queue[bytes]] = {}
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

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
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def register(self, job_id: str) -> "asyncio.Queue[bytes]":
        """The queue of ``job_id``'s event payloads, to be filled once the job is enqueued."""
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._queues[job_id.encode()] = queue
        return queue

    def unregister(self, job_id: str) -> None:
        self._queues.pop(job_id.encode(), None)

    async def _read(self) -> None:
        while True:
            try:
                if not self._pubsub.connection:
                    await self._pubsub.subscribe(self._key)  # connects; re-subscribes after a reconnect
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._ready.is_set():
                    log.warning("pub/sub connection lost (%s); reconnecting", exc)
                self._ready.clear()
                for queue in self._queues.values():
                    queue.put_nowait(RECONNECTED)
                await asyncio.sleep(0.5)
                continue
            if message is not None:
                self._route(message)

    def _route(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            job_id, payload = split_reply(message["data"])
            queue = self._queues.get(job_id)
            if queue is not None:
                queue.put_nowait(payload)
        elif kind == "subscribe" and message["channel"] == self._key:
            self._ready.set()
