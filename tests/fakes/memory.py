"""Memory ports for in-process handler tests: the app with ``GenerationService`` and ``ChatService`` over
these, and no Redis, worker or upstream. ``MemoryJobs`` plays the worker: it answers each job by echoing its
last user message word by word (as the ``echo`` provider does) and runs the worker's own job-end hooks."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Self

from litestar import Litestar

from services.api.chats.service import ChatService
from services.api.generation import GenerationService
from services.api.ratelimit.limiter import Admitted
from services.api.tiers import Limits
from services.stores.chats import ChatLimits, StoredMessage
from services.stores.memory_chats import MemoryChatStore
from services.worker.chat_replies import ChatReplies
from services.worker.job_end import Command, JobEnd
from shared.events import Done, Event, Failed, ModelInfo, Started, TextDelta, Usage
from shared.jobs import Admission, GenerationJob, message_text

__all__ = ["MemoryDirectory", "MemoryJobs", "MemoryLimiter", "MemoryNames", "memory_collaborators"]


class MemoryDirectory:
    def __init__(self, providers: frozenset[str]) -> None:
        self.workers = ["memory"]
        self.providers = providers
        self.batch_workers: list[str] = []
        self.batch_providers: frozenset[str] = frozenset()

    async def current(self, fresh: bool = False) -> "MemoryDirectory":
        return self


class MemoryLimiter:
    async def admit(self, subject: str, limits: Limits, job_id: str, cost: int) -> Admitted:
        return Admitted(Admission(subject=subject), {})

    async def release(self, admission: Admission, job_id: str) -> None:
        return None


class MemoryNames:
    def __init__(self) -> None:
        self.held: dict[tuple[str, str], str] = {}

    async def claim(self, user_id: str, name: str, job_id: str, hold: float) -> bool:
        return self.held.setdefault((user_id, name), job_id) == job_id

    async def release(self, user_id: str, name: str) -> None:
        self.held.pop((user_id, name), None)


class MemoryJob:
    def __init__(self, jobs: "MemoryJobs", job: GenerationJob) -> None:
        self._jobs = jobs
        self.job = job
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._finished = False

    async def __aenter__(self) -> Self:
        self._jobs.started.append(self.job)
        await self._jobs.answer(self.job, self._events.put_nowait)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def __aiter__(self) -> AsyncIterator[Event | None]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event | None]:
        while not self._finished:
            yield await self.next()

    async def next(self, max_wait: float | None = None) -> Event | None:
        if self._finished:
            raise StopAsyncIteration
        event = await self._events.get()
        self._finished = isinstance(event, Done | Failed)
        return event


class MemoryTurnEnds:
    """The worker's ``TurnEnds`` over a memory store: its "command" is the store call, made by ``run``."""

    def __init__(self, store: MemoryChatStore) -> None:
        self.store = store

    def finish_turn_command(
        self, owner: str, chat_id: str, job_id: str, messages: Sequence[StoredMessage], now: float
    ) -> Command:
        return ("finish_turn", owner, chat_id, job_id, list(messages), now)

    async def run(self, command: Command) -> None:
        name, *args = command
        assert name == "finish_turn", command
        await self.store.finish_turn(*args)


class MemoryJobs:
    """The ``JobStarter`` port; ``fail`` makes the next jobs fail with that code before any text."""

    commit_timeout = 1.0

    def __init__(
        self,
        hooks: list[Callable[[GenerationJob, JobEnd], object]],
        run_command: Callable[[Command], Awaitable[None]],
    ) -> None:
        self.hooks = hooks
        self.run_command = run_command
        self.started: list[GenerationJob] = []
        self.ended_jobs: set[str] = set()
        self.fail: str | None = None

    def run(self, job: GenerationJob) -> MemoryJob:
        return MemoryJob(self, job)

    async def ended(self, job_id: str, created: float) -> bool:
        return job_id in self.ended_jobs

    async def answer(self, job: GenerationJob, put: Callable[[Event], None]) -> None:
        users = [m for m in job.messages if m.role == "user"]
        text = message_text(users[-1]) if users else ""
        events: list[Event] = [Started(seq=1, worker="memory"), ModelInfo(seq=2, model=job.model)]
        if self.fail:
            terminal: Done | Failed = Failed(seq=3, code=self.fail, message=f"failed: {self.fail}")
            usage = None
        else:
            words = [w + " " for w in text.split(" ")]
            words[-1] = words[-1].rstrip(" ")
            events += [TextDelta(seq=3 + i, text=w) for i, w in enumerate(words)]
            usage = Usage(seq=len(events) + 1, prompt_tokens=len(job.messages), completion_tokens=len(words))
            events.append(usage)
            elapsed = int((time.time() - job.created) * 1000)
            terminal = Done(seq=len(events) + 1, model=job.model, elapsed_ms=elapsed)
        end = JobEnd(terminal, usage, job.provider, job.model, "" if self.fail else text)
        for hook in self.hooks:
            command = await hook(job, end)  # type: ignore[misc]
            if command is not None:  # what the worker's sink would send ahead of the terminal event
                await self.run_command(command)
        self.ended_jobs.add(job.id)
        for event in [*events, terminal]:
            put(event)


def memory_collaborators(
    providers: frozenset[str] = frozenset({"echo"}), limits: ChatLimits | None = None
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A ``create_app(collaborators=...)`` over memory ports (reach them as ``app.state.jobs`` and
    ``app.state.chats.store``)."""

    @asynccontextmanager
    async def collaborators(app: Litestar) -> AsyncIterator[None]:
        state = app.state
        store = MemoryChatStore(limits or ChatLimits(max_chats=50, max_messages=40))
        turns = MemoryTurnEnds(store)
        jobs = MemoryJobs([ChatReplies(turns).on_end], turns.run)
        state.jobs = jobs
        state.generation = GenerationService(
            settings=state.settings,
            catalog=state.catalog,
            tiers=state.tiers,
            jobs=jobs,
            limiter=MemoryLimiter(),
            directory=MemoryDirectory(providers),
            names=MemoryNames(),
        )
        state.chats = ChatService(store, jobs, state.personas, max_messages=40, lock_ttl=60.0)
        yield

    return collaborators
