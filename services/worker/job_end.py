"""The end of a job, as the worker's job-end hooks see it, and running them.

The worker is the one process that always sees a job end (detached jobs, dead API replicas and cancels
included), so what must happen then runs here, as hooks: usage accounting (``accounting.py``), saving a
chat's reply (``chat_replies.py``). They run before the terminal event is published.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

from shared.events import Done, Failed, Usage
from shared.jobs import GenerationJob

__all__ = ["JobEnd", "JobEndHook", "run_hooks"]

log = logging.getLogger("conduit.worker")


class JobEnd(NamedTuple):
    """How a job ended, for the job-end hooks: its terminal event, usage, the provider and upstream model that
    answered, and (for a job whose hooks need it: a chat's) the text it published."""

    terminal: Done | Failed
    usage: Usage | None
    provider: str
    model: str
    text: str = ""


#: runs when a job has ended, before its terminal event is published (so what it saves is there by the time a
#: client sees the end); a hook that fails is logged, and the job still ends
JobEndHook = Callable[[GenerationJob, JobEnd], Awaitable[None]]


async def run_hooks(hooks: Sequence[JobEndHook], job: GenerationJob, end: JobEnd) -> None:
    for hook in hooks:
        try:
            await hook(job, end)
        except Exception:
            log.exception("job %s: a job-end hook failed", job.id)
