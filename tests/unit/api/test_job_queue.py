"""The API's job queue: jobs enqueued together travel together, in order, several per Celery message."""

import asyncio
import base64
import json
from typing import Any, cast

import pytest

from services.api.enqueue import JobQueue, RedisListBroker, TaskMessage, celery_message
from shared.codec import decode_job
from shared.jobs import ChatMessage, GenerationJob, Principal, SamplingParams
from shared.tasks import QueueName, TaskName
from tests.harness import RedisServer

pytestmark = pytest.mark.anyio

SECRET_PROMPT = "the prompt must never reach a log"


def _job(index: int, deadline: float = 2_000_000_000.0) -> GenerationJob:
    return GenerationJob(
        id=f"job{index:03d}",
        request_id=f"req{index}",
        principal=Principal(user_id="u1", tier="pro"),
        provider="echo",
        model="echo",
        messages=[ChatMessage(role="user", content=SECRET_PROMPT)],
        params=SamplingParams(),
        stream=False,
        created=1.0,
        deadline=deadline,
    )


class Recorder:
    """A broker that records what it is asked to send; ``fail`` makes the next send raise."""

    def __init__(self) -> None:
        self.sends: list[list[TaskMessage]] = []
        self.fail: Exception | None = None
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, messages: list[TaskMessage]) -> None:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.sends.append(messages)

    async def close(self) -> None:
        return None


def _job_ids(message: TaskMessage) -> list[str]:
    (jobs,) = message.args
    return [decode_job(job).id for job in jobs]


async def test_a_lone_job_goes_out_at_once_in_a_message_of_its_own() -> None:
    broker = Recorder()
    queue = JobQueue(broker)
    await queue.put(_job(1))
    assert len(broker.sends) == 1
    (message,) = broker.sends[0]
    assert message.task == TaskName.GENERATE_JOBS
    assert message.queue == QueueName.INTERACTIVE
    assert _job_ids(message) == ["job001"]
    assert message.expires == 2_000_000_000.0


async def test_jobs_enqueued_together_share_a_message_in_order() -> None:
    broker = Recorder()
    queue = JobQueue(broker)
    await asyncio.gather(*(queue.put(_job(i)) for i in range(10)))
    assert len(broker.sends) == 1
    (message,) = broker.sends[0]
    assert _job_ids(message) == [f"job{i:03d}" for i in range(10)]
    assert "10 job(s): job000 job001" in message.label and SECRET_PROMPT not in message.label


async def test_jobs_arriving_while_a_send_is_in_flight_go_in_the_next_one() -> None:
    broker = Recorder()
    broker.gate.clear()
    queue = JobQueue(broker)
    first = asyncio.create_task(queue.put(_job(0)))
    await asyncio.sleep(0.01)  # the first send is in flight, held at the gate
    rest = [asyncio.create_task(queue.put(_job(i))) for i in range(1, 6)]
    await asyncio.sleep(0.01)
    broker.gate.set()
    await asyncio.gather(first, *rest)
    assert [[_job_ids(m) for m in send] for send in broker.sends] == [
        [["job000"]],
        [["job001", "job002", "job003", "job004", "job005"]],
    ]


async def test_a_big_group_is_split_into_messages_of_at_most_max_jobs() -> None:
    broker = Recorder()
    queue = JobQueue(broker)
    count = JobQueue.MAX_JOBS * 2 + 3
    await asyncio.gather(*(queue.put(_job(i)) for i in range(count)))
    (messages,) = broker.sends
    assert [len(_job_ids(m)) for m in messages] == [JobQueue.MAX_JOBS, JobQueue.MAX_JOBS, 3]
    assert [i for m in messages for i in _job_ids(m)] == [f"job{i:03d}" for i in range(count)]
    assert len({m.task_id for m in messages}) == 3


async def test_each_queue_gets_its_own_messages() -> None:
    broker = Recorder()
    queue = JobQueue(broker)
    await asyncio.gather(
        queue.put(_job(1)), queue.put(_job(2), QueueName.BATCH), queue.put(_job(3)), queue.put(_job(4), QueueName.BATCH)
    )
    (messages,) = broker.sends
    assert {(m.queue, tuple(_job_ids(m))) for m in messages} == {
        (QueueName.INTERACTIVE, ("job001", "job003")),
        (QueueName.BATCH, ("job002", "job004")),
    }


async def test_a_message_expires_with_the_latest_deadline_of_its_jobs() -> None:
    broker = Recorder()
    queue = JobQueue(broker)
    await asyncio.gather(queue.put(_job(1, deadline=100.0)), queue.put(_job(2, deadline=300.0)))
    assert broker.sends[0][0].expires == 300.0
    await asyncio.gather(queue.put(_job(3, deadline=100.0)), queue.put(_job(4, deadline=0.0)))  # 0: no deadline
    assert broker.sends[1][0].expires is None


async def test_a_failed_send_fails_every_job_in_it_and_the_queue_carries_on() -> None:
    broker = Recorder()
    broker.fail = ConnectionError("broker down")
    queue = JobQueue(broker)
    results = await asyncio.gather(*(queue.put(_job(i)) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    broker.fail = None
    await queue.put(_job(9))
    assert [_job_ids(m) for m in broker.sends[-1]] == [["job009"]]


async def test_a_caller_that_gives_up_does_not_take_the_others_down() -> None:
    broker = Recorder()
    broker.gate.clear()
    queue = JobQueue(broker)
    leaving = asyncio.create_task(queue.put(_job(1)))
    staying = asyncio.create_task(queue.put(_job(2)))
    await asyncio.sleep(0.01)
    leaving.cancel()
    broker.gate.set()
    await staying
    assert [_job_ids(m) for m in broker.sends[0]] == [["job001", "job002"]]


def _decode(raw: bytes) -> dict[str, Any]:
    envelope: dict[str, Any] = json.loads(raw)
    envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
    return envelope


def test_celery_message_is_protocol_2_with_the_jobs_as_the_one_argument() -> None:
    message = TaskMessage(TaskName.GENERATE_JOBS, "t1", [["a", "b"]], QueueName.BATCH, 0.0, "(<2 job(s)>,)")
    envelope = _decode(celery_message(message))
    assert envelope["body"] == [[["a", "b"]], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    headers = envelope["headers"]
    assert (headers["task"], headers["id"], headers["argsrepr"]) == ("conduit.generate_jobs", "t1", "(<2 job(s)>,)")
    assert headers["expires"] == "1970-01-01T00:00:00+00:00"
    assert envelope["properties"]["delivery_info"]["routing_key"] == "batch"
    no_deadline = _decode(celery_message(message._replace(expires=None)))
    assert no_deadline["headers"]["expires"] is None


async def test_redis_broker_pushes_messages_so_the_consumer_pops_them_in_order(tmp_path: Any) -> None:
    import redis.asyncio as aioredis

    server = RedisServer(tmp_path)
    client = aioredis.Redis.from_url(server.url)
    try:
        broker = RedisListBroker(client)
        messages = [
            TaskMessage(TaskName.GENERATE_JOBS, f"t{i}", [[]], queue, None, "")
            for i, queue in enumerate([QueueName.INTERACTIVE, QueueName.INTERACTIVE, QueueName.BATCH])
        ]
        await broker.send(messages[:2])
        await broker.send(messages[2:])
        await broker.send([messages[0]._replace(task_id="t3"), messages[2]._replace(task_id="t4")])
        popped = [
            _decode(cast(bytes, await client.rpop(q)))["headers"]["id"] for q in ["interactive"] * 3 + ["batch"] * 2
        ]
        assert popped == ["t0", "t1", "t3", "t2", "t4"]
    finally:
        await client.aclose()
        server.stop()
