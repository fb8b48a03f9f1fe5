"""One line of a batch: its job run through the same pipeline as an interactive one (the provider adapters,
retries before the first token honouring ``Retry-After``, fallbacks), its events collected in memory instead of
published (nobody listens live; the result is recorded once the line ends), and the whole line run again, up to
``attempts`` times with a growing pause, when it failed in a way worth retrying (a provider's 429 or 5xx, a
timeout, a lost connection): a batch has no client waiting, so it can wait out a provider's bad minute.
"""

import asyncio
import time
import uuid

from services.stores.batches import LineResult
from services.worker.generate import PipelineContext, run_job
from services.worker.sink import Flush
from shared.batches import BatchLine
from shared.codec import decode_events, encode_events
from shared.events import Done, Event, Failed, Usage
from shared.jobs import GenerationJob, Principal

__all__ = ["CollectingSink", "line_job", "run_line"]

#: the longest pause between two runs of a line
MAX_PAUSE = 30.0


class CollectingSink:
    """An ``EventSink`` that keeps each job's events in memory until ``take``n."""

    def __init__(self) -> None:
        self._events: dict[str, list[Event]] = {}

    async def send(self, flush: Flush) -> int:
        self._events.setdefault(flush.job_id, []).extend(decode_events(flush.payload))
        return 1  # no reply channel: nobody to lose

    def take(self, job_id: str) -> list[Event]:
        return self._events.pop(job_id, [])


def line_job(line: BatchLine, owner: Principal, batch_id: str, job_id: str) -> GenerationJob:
    return GenerationJob(
        id=job_id,
        request_id=f"{batch_id}/{line.custom_id}",
        principal=owner,
        provider=line.provider,
        model=line.model,
        messages=line.messages,
        params=line.params,
        stream=False,
        created=time.time(),
        on_disconnect="detach",
        prompt=line.prompt,
    )


def _result(line: BatchLine, job: GenerationJob, events: list[Event]) -> LineResult:
    usage = next((event for event in reversed(events) if isinstance(event, Usage)), None)
    return LineResult(
        custom_id=line.custom_id,
        job_id=job.id,
        created=int(job.created),
        events=encode_events(events),
        ok=isinstance(events[-1], Done) if events else False,
        input_tokens=usage.prompt_tokens if usage else 0,
        output_tokens=usage.completion_tokens if usage else 0,
    )


async def run_line(
    line: BatchLine,
    owner: Principal,
    batch_id: str,
    ctx: PipelineContext,
    sink: CollectingSink,
    *,
    attempts: int = 3,
    pause: float = 1.0,
) -> LineResult:
    """``ctx`` publishes to ``sink`` and runs no job-end hooks (a line's usage is counted with its result)."""
    attempt = 1
    while True:
        job = line_job(line, owner, batch_id, uuid.uuid4().hex)
        terminal = await run_job(job, ctx)
        events = sink.take(job.id)
        if not (isinstance(terminal, Failed) and terminal.retryable) or attempt >= attempts:
            return _result(line, job, events or [terminal])
        await asyncio.sleep(min(pause * 2 ** (attempt - 1), MAX_PAUSE))
        attempt += 1
