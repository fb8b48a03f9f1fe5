"""Sending a job to the workers without blocking the event loop.

With a Redis broker the Celery message (protocol 2, JSON body) is LPUSHed with the asyncio client: one
non-blocking round trip, about a quarter of a ``send_task`` offloaded to a thread. Other brokers
(RabbitMQ) go through Celery's own ``send_task`` in a worker thread. The envelope is pinned by the
integration tests, which run a real Celery worker.
"""

import asyncio
import base64
import os
import socket
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
import redis.asyncio as aioredis

from shared.tasks import QueueName, TaskName

__all__ = ["CeleryEnqueuer", "Enqueuer", "RedisListEnqueuer", "celery_message"]

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_ORIGIN = f"conduit-api@{socket.gethostname()}:{os.getpid()}"


class Enqueuer(Protocol):
    async def send(self, task: TaskName, task_id: str, arg: dict[str, Any], queue: QueueName, expires: float) -> None:
        """Enqueue ``task(arg)``; drop it unstarted after the ``expires`` unix time."""
        ...

    async def close(self) -> None: ...


def celery_message(task: TaskName, task_id: str, arg: dict[str, Any], queue: QueueName, expires: float) -> bytes:
    """The bytes kombu's Redis transport would LPUSH for ``send_task(task, args=[arg])``."""
    body = msgspec.json.encode([[arg], {}, _EMBED])
    return msgspec.json.encode(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py",
                "task": task.value,
                "id": task_id,
                "shadow": None,
                "eta": None,
                "expires": datetime.fromtimestamp(expires, UTC).isoformat(),
                "group": None,
                "group_index": None,
                "retries": 0,
                "timelimit": [None, None],
                "root_id": task_id,
                "parent_id": None,
                "argsrepr": f"(<job {task_id}>,)",  # never the prompt: logs and monitors show this
                "kwargsrepr": "{}",
                "origin": _ORIGIN,
                "ignore_result": True,
                "replaced_task_nesting": 0,
                "stamped_headers": None,
                "stamps": {},
            },
            "properties": {
                "correlation_id": task_id,
                "reply_to": "",
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue.value},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    )


class RedisListEnqueuer:
    def __init__(self, client: "aioredis.Redis") -> None:
        self._client = client

    async def send(self, task: TaskName, task_id: str, arg: dict[str, Any], queue: QueueName, expires: float) -> None:
        await self._client.lpush(queue.value, celery_message(task, task_id, arg, queue, expires))

    async def close(self) -> None:
        return None


class CeleryEnqueuer:
    """Any kombu broker: Celery's producer is blocking, so it runs in a thread."""

    def __init__(self, broker_url: str) -> None:
        from celery import Celery

        self._app = Celery("conduit-api", broker=broker_url, set_as_current=False)
        self._app.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)

    async def send(self, task: TaskName, task_id: str, arg: dict[str, Any], queue: QueueName, expires: float) -> None:
        await asyncio.to_thread(
            self._app.send_task,
            task.value,
            args=[arg],
            task_id=task_id,
            queue=queue.value,
            expires=datetime.fromtimestamp(expires, UTC),
            argsrepr=f"(<job {task_id}>,)",
            ignore_result=True,
        )

    async def close(self) -> None:
        await asyncio.to_thread(self._app.close)
