"""The end of a job, as the worker's job-end hooks see it, and running them.

The worker is the one process that always sees a job end (detached jobs, dead API replicas and cancels
included), so what must happen then runs here, as hooks: usage accounting (``accounting.py``), saving a
chat's reply (``chat_replies.py``). They run before the terminal event is published; a hook that saves
something to Redis returns the command instead of sending it, and the command goes ahead of the terminal
event in the event's own round trip (one round trip less at the end of every chat's job).
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from shared.events import Done, Failed, Usage
from shared.jobs import GenerationJob

__all__ = ["Command", "JobEnd", "JobEndHook", "run_hooks"]

log = logging.getLogger("conduit.worker")


class JobEnd(NamedTuple):
    """How a job ended, for the job-end hooks: its terminal event, usage, the provider and upstream model that
    answered, and (for a job whose hooks need it: a chat's) the text it published."""

    terminal: Done | Failed
    usage: Usage | None
    provider: str
    model: str
    text: str = ""
    #: when the worker took the job (``time.monotonic()``; 0: unknown)
    started: float = 0.0


#: a Redis command, as the worker's event sink sends it
Command = tuple[Any, ...]

#: runs when a job has ended, before its terminal event is published; what it returns is a command sent ahead
#: of that event in the same round trip (so what it saves is there by the time a client sees the end, at no
#: round trip of its own); a hook that fails is logged, and the job still ends
JobEndHook = Callable[[GenerationJob, JobEnd], Awaitable[Command | None]]


async def run_hooks(hooks: Sequence[JobEndHook], job: GenerationJob, end: JobEnd) -> list[Command]:
    """The hooks' commands, in the hooks' order."""
    commands: list[Command] = []
    for hook in hooks:
        try:
            command = await hook(job, end)
        except Exception:
            log.exception("job %s: a job-end hook failed", job.id)
            continue
        if command is not None:
            commands.append(command)
    return commands
