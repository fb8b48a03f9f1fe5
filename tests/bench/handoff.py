"""What "no job lost, none run twice" costs per job, measured on the bench's Redis with the real code paths:

- enqueue: the API's send of one Celery message, as a plain LPUSH (what it was) and as the LPUSH with the
  jobs' pending record in one MULTI/EXEC (``RedisListBroker``: what it is), for messages of 1 and of 32 jobs;
- claim: the worker's claim of the jobs it starts (``JobClaims.claim``, one script call per group handed
  over together), for groups of 1 and of 32.

Sequential calls from one asyncio client, as the processes make them; per message or group, and per job.
"""

import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from services.api.enqueue import RedisListBroker, TaskMessage, celery_message, resent_messages
from services.worker.claims import JobClaims
from shared import keys
from shared.codec import encode_job
from shared.jobs import Admission, ChatMessage, GenerationJob, Principal
from shared.tasks import QueueName

__all__ = ["handoff_cost"]

QUEUE = QueueName.BATCH  # no bench worker consumes it while this runs; emptied afterwards
WARM_UP = 20


def _jobs(count: int) -> list[GenerationJob]:
    now = time.time()
    return [
        GenerationJob(
            id=uuid.uuid4().hex,
            request_id="bench",
            principal=Principal(user_id="bench-handoff", tier="pro"),
            provider="openai",
            model="gpt-4o-mini",
            messages=[ChatMessage(role="user", content="Say something short.")],
            admission=Admission(subject="user:bench-handoff", lease=True),
            reply_to=keys.replies("bench"),
            deadline=now + 30,
        )
        for _ in range(count)
    ]


def _message(jobs: list[GenerationJob]) -> TaskMessage:
    (message,) = resent_messages(QUEUE, {job.id: encode_job(job) for job in jobs}, size=len(jobs))
    return message


async def _timed(calls: int, ops: dict[str, Callable[[int], Awaitable[object]]]) -> dict[str, float]:
    """Median µs of each op over ``calls`` calls (op ``i`` of each in turn, so drift on a shared machine hits
    every op alike), after a warm-up of ``WARM_UP``."""
    took: dict[str, list[float]] = {name: [] for name in ops}
    for index in range(calls + WARM_UP):
        for name, op in ops.items():
            started = time.perf_counter()
            await op(index)
            if index >= WARM_UP:
                took[name].append((time.perf_counter() - started) * 1e6)
    return {name: sorted(values)[len(values) // 2] for name, values in took.items()}


async def handoff_cost(redis_url: str, calls: int) -> dict[str, float]:
    client = aioredis.Redis.from_url(redis_url)
    broker = RedisListBroker(client)
    claims = JobClaims(client, "bench-handoff", lease_ttl=30)
    figures: dict[str, float] = {"calls": calls}
    try:
        for size in (1, 32):
            messages = [_message(_jobs(size)) for _ in range(calls + WARM_UP)]
            raw = [celery_message(m) for m in messages]
            groups = [_jobs(size) for _ in range(calls + WARM_UP)]
            medians = await _timed(
                calls,
                {
                    "lpush": lambda i: client.lpush(QUEUE.value, raw[i]),  # noqa: B023 - awaited in the loop
                    "send": lambda i: broker.send([messages[i]]),  # noqa: B023
                    "claim": lambda i: claims.claim(groups[i]),  # noqa: B023
                },
            )
            figures |= {f"{name}_{size}_us": value for name, value in medians.items()}
            await client.delete(QUEUE.value, keys.pending(QUEUE), keys.pending_jobs(QUEUE))
        await client.delete(keys.worker_jobs("bench-handoff"), keys.lease("user:bench-handoff"))
    finally:
        await client.aclose()
    return figures
