"""The sweeper's pure parts: which jobs a queued message holds, and the messages that send lost jobs again."""

import time

import msgspec

from services.api.enqueue import JobQueue, celery_message, resent_messages
from services.api.sweeper import _deadline, _job_ids
from shared.codec import decode_job, encode_job
from shared.jobs import ChatMessage, GenerationJob, Principal
from shared.tasks import QueueName, TaskName


def _job(index: int, deadline: float = 0.0) -> GenerationJob:
    return GenerationJob(
        id=f"job{index:03d}",
        request_id="r",
        principal=Principal(user_id="u", tier="pro"),
        provider="openai",
        model="gpt-4o-mini",
        messages=[ChatMessage(role="user", content="hi")],
        deadline=deadline,
    )


def test_lost_jobs_are_sent_again_in_messages_of_at_most_32_that_carry_them_as_first_sent() -> None:
    jobs = {job.id: encode_job(job) for job in map(_job, range(70))}
    messages = resent_messages(QueueName.INTERACTIVE, jobs)
    assert [len(m.job_ids) for m in messages] == [JobQueue.MAX_JOBS, JobQueue.MAX_JOBS, 6]
    assert [i for m in messages for i in m.job_ids] == list(jobs)
    for message in messages:
        assert message.task == TaskName.GENERATE_JOBS and message.queue == QueueName.INTERACTIVE
        assert message.expires is None  # each job's own deadline still holds in the worker
        assert [decode_job(job).id for job in message.args[0]] == list(message.job_ids)
        assert _job_ids(celery_message(message)) == list(message.job_ids)  # read back from the queued bytes


def test_the_job_ids_of_a_message_that_is_not_a_jobs_message_are_none() -> None:
    assert _job_ids(msgspec.json.encode({"headers": {"argsrepr": "()"}, "body": "e30="})) == []
    assert _job_ids(msgspec.json.encode({"body": "e30="})) == []


def test_a_pending_job_s_deadline_is_read_from_its_text() -> None:
    deadline = time.time() + 30
    assert _deadline(encode_job(_job(1, deadline)).encode()) == deadline
    assert _deadline(encode_job(_job(2)).encode()) == 0.0
    assert _deadline(b"not json") == 0.0
