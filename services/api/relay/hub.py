"""One pub/sub connection per API process, shared by every job it relays.

``subscribe`` returns only once Redis has confirmed the subscription, so a job enqueued after it cannot
publish into the void. The reader never blocks: each channel's messages go to an unbounded queue.
If the connection breaks, every open queue gets ``RECONNECTED`` so its relay can repair the gap from
the job's replay log.
"""

import asyncio
import contextlib
import logging
from typing import Any, Final

import redis.asyncio as aioredis

__all__ = ["RECONNECTED", "PubSubHub"]

log = logging.getLogger("conduit.api")

RECONNECTED: Final = b""  # never a real payload: events are non-empty msgpack arrays


class PubSubHub:
    def __init__(self, client: "aioredis.Redis") -> None:
        self._client = client
        self._pubsub = client.pubsub()
        self._queues: dict[bytes, asyncio.Queue[bytes]] = {}
        self._confirm: dict[bytes, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._read(), name="pubsub-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    @property
    def channels(self) -> int:
        return len(self._queues)

    async def subscribe(self, channel: str, timeout: float = 5.0) -> "asyncio.Queue[bytes]":
        key = channel.encode()
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        confirmed = asyncio.get_running_loop().create_future()
        self._queues[key] = queue
        self._confirm[key] = confirmed
        try:
            await self._pubsub.subscribe(key)
            await asyncio.wait_for(confirmed, timeout)
        except BaseException:
            self._queues.pop(key, None)
            self._confirm.pop(key, None)
            raise
        return queue

    async def unsubscribe(self, channel: str) -> None:
        key = channel.encode()
        self._queues.pop(key, None)
        self._confirm.pop(key, None)
        with contextlib.suppress(Exception):
            await self._pubsub.unsubscribe(key)

    async def _read(self) -> None:
        while True:
            try:
                if not self._pubsub.connection:
                    await self._pubsub.connect()  # type: ignore[no-untyped-call]
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("pub/sub connection lost (%s); reconnecting", exc)
                for queue in self._queues.values():
                    queue.put_nowait(RECONNECTED)
                await asyncio.sleep(0.5)
                continue
            if message is not None:
                self._route(message)

    def _route(self, message: dict[str, Any]) -> None:
        channel: bytes = message["channel"]
        kind = message["type"]
        if kind == "message":
            queue = self._queues.get(channel)
            if queue is not None:
                queue.put_nowait(message["data"])
        elif kind == "subscribe":
            confirmed = self._confirm.pop(channel, None)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
