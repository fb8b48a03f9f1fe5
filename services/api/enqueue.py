"""Sending jobs to the workers: group commit into Celery messages, without blocking the event loop.

Jobs enqueued while a send is in flight (or in the same loop tick) go out together, several per Celery
message (``conduit.generate_jobs``, up to ``JobQueue.MAX_JOBS``), so a burst of requests costs the
workers a few broker messages instead of one each: Celery's per-message work (fetch, decode, dispatch to
a pool thread) is most of a short job's cost in the worker. An idle queue sends a lone job at once.

With a Redis broker the Celery messages (protocol 2, JSON body) are LPUSHed with the asyncio client: one
non-blocking round trip. Other brokers (RabbitMQ) go through Celery's own ``send_task`` in a worker
thread. The envelope is pinned by the integration tests, which run a real Celery worker.

No job is lost with a worker (Redis broker): the jobs of a message are recorded as pending with it, in one
transaction, and leave that record only when a worker claims them as it starts them. A message fetched by a
worker that then froze or died would otherwise be gone (early ack, and even kombu's ack emulation loses
the message its BRPOP was answered with); the API's sweeper sends such jobs again (``resent_messages``),
and the claim makes sure each runs at most once.
"""

import asyncio
import base64
import importlib.resources
import os
import socket
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

import msgspec
import redis.asyncio as aioredis

from shared import keys
from shared.codec import encode_job
from shared.jobs import GenerationJob
from shared.tasks import QueueName, TaskName

__all__ = ["Broker", "CeleryBroker", "JobQueue", "RedisListBroker", "TaskMessage", "celery_message"]

_ENQUEUE = importlib.resources.files("services.api").joinpath("enqueue.lua").read_text()
_PACK = msgspec.msgpack.Encoder()
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_ORIGIN = f"conduit-api@{socket.gethostname()}:{os.getpid()}"


class TaskMessage(NamedTuple):
    task: TaskName
    task_id: str
    args: list[Any]
    queue: QueueName
    expires: float | None  # unix time after which a worker drops the message unstarted
    label: str  # the ``argsrepr`` logs and monitors show: never a prompt
    #: the ids of the jobs ``args[0]`` carries (``generate_jobs``), recorded as pending until a worker claims them
    job_ids: tuple[str, ...] = ()


class Broker(Protocol):
    async def send(self, messages: list[TaskMessage]) -> None:
        """Enqueue ``messages`` in order."""
        ...

    async def close(self) -> None: ...


def _when(expires: float | None) -> str | None:
    return None if expires is None else datetime.fromtimestamp(expires, UTC).isoformat()


def celery_message(message: TaskMessage) -> bytes:
    """The bytes kombu's Redis transport would LPUSH for ``send_task(task, args=args)``."""
    task, task_id, args, queue, expires, label, _ = message
    body = msgspec.json.encode([args, {}, _EMBED])
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
                "expires": _when(expires),
                "group": None,
                "group_index": None,
                "retries": 0,
                "timelimit": [None, None],
                "root_id": task_id,
                "parent_id": None,
                "argsrepr": label,
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


class RedisListBroker:
    """LPUSHes the messages and, in the same step (``enqueue.lua``), records their jobs as pending (``keys.pending``):
    a job stays there until a worker claims it as it starts it, and one that left the queue but was not
    started soon (its worker died holding it) is sent again by the sweeper (``services.api.sweeper``)."""

    def __init__(self, client: "aioredis.Redis", state: "aioredis.Redis | None" = None) -> None:
        self._client = client
        self._state = state  # where the pending records live when the broker is a Redis of its own
        self._send = client.register_script(_ENQUEUE)

    async def send(self, messages: list[TaskMessage]) -> None:
        for queue in dict.fromkeys(m.queue for m in messages):
            sent = [m for m in messages if m.queue == queue]
            jobs = _PACK.encode(
                [(i, _text(job)) for m in sent if m.job_ids for i, job in zip(m.job_ids, m.args[0], strict=True)]
            )
            raw = [celery_message(m) for m in sent]
            pending = [queue.value, keys.pending(queue), keys.pending_jobs(queue)]
            if self._state is None:  # one script: queued and recorded together, in one round trip
                await self._send(keys=pending, args=[jobs, *raw])
                continue
            # a broker Redis of its own: the record goes first, so no job is ever queued unrecorded
            await self._state.register_script(_ENQUEUE)(keys=pending, args=[jobs])
            await self._client.lpush(queue.value, *raw)  # one LPUSH of several values keeps their order

    async def close(self) -> None:
        return None


def _text(job: object) -> str:
    """A job as a message carries it, as JSON text (``encode_job`` makes it so already)."""
    return job if isinstance(job, str) else msgspec.json.encode(job).decode()


class CeleryBroker:
    """Any kombu broker: Celery's producer is blocking, so it runs in a thread."""

    def __init__(self, broker_url: str) -> None:
        from celery import Celery

        self._app = Celery("conduit-api", broker=broker_url, set_as_current=False)
        self._app.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)

    def _send(self, messages: list[TaskMessage]) -> None:
        with self._app.producer_or_acquire() as producer:
            for task, task_id, args, queue, expires, label, _ in messages:
                self._app.send_task(
                    task.value,
                    args=args,
                    task_id=task_id,
                    queue=queue.value,
                    expires=None if expires is None else datetime.fromtimestamp(expires, UTC),
                    argsrepr=label,
                    ignore_result=True,
                    producer=producer,
                )

    async def send(self, messages: list[TaskMessage]) -> None:
        await asyncio.to_thread(self._send, messages)

    async def close(self) -> None:
        await asyncio.to_thread(self._app.close)


class _Waiting(NamedTuple):
    job: GenerationJob
    queue: QueueName
    sent: "asyncio.Future[None]"


class JobQueue:
    """Group commit of jobs into ``conduit.generate_jobs`` messages (see the module's docstring)."""

    MAX_JOBS = 32  # per message: big enough to amortise a message, small enough to spread over workers

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._waiting: list[_Waiting] = []
        self._task: asyncio.Task[None] | None = None

    async def put(self, job: GenerationJob, queue: QueueName = QueueName.INTERACTIVE) -> None:
        """Enqueue ``job``; returns once the broker has it (raises if it could not be sent)."""
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(job, queue, sent))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="job-queue")
        await asyncio.shield(sent)  # a caller that gives up does not fail the others' send

    async def _run(self) -> None:
        while self._waiting:
            waiting, self._waiting = self._waiting, []
            try:
                await self.broker.send(_messages(waiting, self.MAX_JOBS))
            except Exception as exc:  # the broker is unreachable: every caller in the group learns it
                for item in waiting:
                    if not item.sent.done():
                        item.sent.set_exception(exc)
                continue
            for item in waiting:
                if not item.sent.done():
                    item.sent.set_result(None)

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.broker.close()


def _messages(waiting: list[_Waiting], size: int) -> list[TaskMessage]:
    by_queue: dict[QueueName, list[GenerationJob]] = {}
    for item in waiting:
        by_queue.setdefault(item.queue, []).append(item.job)
    messages = []
    for queue, jobs in by_queue.items():
        for start in range(0, len(jobs), size):
            group = jobs[start : start + size]
            ids = " ".join(job.id for job in group)
            messages.append(
                TaskMessage(
                    TaskName.GENERATE_JOBS,
                    uuid.uuid4().hex,
                    [[encode_job(job) for job in group]],
                    queue,
                    None if not all(job.deadline for job in group) else max(job.deadline for job in group),
                    f"(<{len(group)} job(s): {ids}>,)",
                    tuple(job.id for job in group),
                )
            )
    return messages


def resent_messages(queue: QueueName, jobs: Mapping[str, object], size: int = JobQueue.MAX_JOBS) -> list[TaskMessage]:
    """Messages sending pending ``jobs`` (id -> the job as its first message carried it) to ``queue`` again."""
    ids = list(jobs)
    messages = []
    for start in range(0, len(ids), size):
        group = ids[start : start + size]
        messages.append(
            TaskMessage(
                TaskName.GENERATE_JOBS,
                uuid.uuid4().hex,
                [[jobs[job_id] for job_id in group]],
                queue,
                None,  # each job's own deadline still holds in the worker
                f"(<{len(group)} job(s): {' '.join(group)}>,)",
                tuple(group),
            )
        )
    return messages
