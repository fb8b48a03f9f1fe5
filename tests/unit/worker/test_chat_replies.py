"""What the worker saves to a chat when a job ends (``services.worker.chat_replies.reply_of``)."""

import msgspec

from services.worker.chat_replies import reply_of
from services.worker.job_end import JobEnd
from shared.events import Done, Failed, Usage
from shared.jobs import ChatTurn, GenerationJob, Principal

JOB = GenerationJob(
    id="j1",
    request_id="r",
    principal=Principal(user_id="ana", tier="pro"),
    provider="openai",
    model="gpt-4o-mini",
    messages=[],
    chat=ChatTurn(chat_id="chat_1", reply_id="msg_1", persona="maya"),
)
USAGE = Usage(seq=5, prompt_tokens=10, completion_tokens=4)


def test_a_finished_job_saves_its_whole_answer_with_model_and_usage() -> None:
    end = JobEnd(Done(seq=6, model="gpt-4o-mini-2024-07-18"), USAGE, "openai", "gpt-4o-mini", "Hello there")
    reply = reply_of(JOB, end, 100.0)
    assert reply is not None
    assert (reply.id, reply.role, reply.content, reply.created_at) == ("msg_1", "assistant", "Hello there", 100_000)
    assert reply.model == "gpt-4o-mini-2024-07-18" and reply.persona == "maya" and reply.status == "complete"
    assert reply.usage is not None and reply.usage.total_tokens == 14


def test_a_cancelled_job_saves_its_partial_answer_cut_short() -> None:
    end = JobEnd(Failed(seq=4, code="cancelled", message="gone"), None, "openai", "gpt-4o-mini", "Hel")
    reply = reply_of(JOB, end, 1.0)
    assert reply is not None
    assert (reply.content, reply.status, reply.error, reply.usage) == ("Hel", "cut_short", "cancelled", None)
    assert b"usage" not in msgspec.json.encode(reply)  # absent, as the API shows it


def test_a_job_that_failed_before_any_text_saves_nothing() -> None:
    end = JobEnd(Failed(seq=2, code="upstream_error", message="boom"), None, "openai", "gpt-4o-mini", "")
    assert reply_of(JOB, end, 1.0) is None


def test_a_job_of_no_chat_saves_nothing() -> None:
    job = GenerationJob(id="j", request_id="r", principal=JOB.principal, provider="echo", model="echo", messages=[])
    assert reply_of(job, JobEnd(Done(seq=3), None, "echo", "echo", "hi"), 1.0) is None


def test_a_models_title_is_cleaned_to_one_short_line() -> None:
    from services.worker.titles import MAX_TITLE, clean_title

    assert clean_title('"Packing for a Paris trip."\n') == "Packing for a Paris trip"
    assert clean_title("\n**Title: Weekly plan**\nmore text") == "Weekly plan"
    assert len(clean_title("x" * 500)) == MAX_TITLE
    assert clean_title("  \n ") == ""
