"""The collaborators of ``GenerationService``, as roles: Redis-backed in the running app (``lifespan``),
in memory for in-process handler tests (``tests/fakes/memory.py``)."""

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol, Self

from services.api.ratelimit.limiter import Admitted
from services.api.tiers import Limits
from shared.events import Event
from shared.jobs import Admission, GenerationJob

__all__ = ["Directory", "JobHandle", "JobNames", "JobStarter", "Limiter", "WorkerView"]


class WorkerView(Protocol):
    """The live workers serving interactive jobs and batches, and the providers each kind holds keys for."""

    workers: list[str]
    providers: frozenset[str]
    batch_workers: list[str]
    batch_providers: frozenset[str]


class Directory(Protocol):
    async def current(self, fresh: bool = False) -> WorkerView:
        """Who is alive now (``fresh``: as Redis says now, not as last heard); ``UnavailableError`` when that
        cannot be known."""
        ...


class Limiter(Protocol):
    async def admit(self, subject: str, limits: Limits, job_id: str, cost: int) -> Admitted:
        """Admit a job of ``cost`` tokens, or raise ``RateLimitedError`` (429)."""
        ...

    async def release(self, admission: Admission, job_id: str) -> None: ...


class JobHandle(Protocol):
    """A started job's events at the edge: ``None`` means the client is due a keep-alive. Leaving the block
    before the terminal event ends the job as its ``on_disconnect`` says."""

    job: GenerationJob

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def __aiter__(self) -> AsyncIterator[Event | None]: ...

    async def next(self, max_wait: float | None = None) -> Event | None: ...


class JobStarter(Protocol):
    commit_timeout: float

    def run(self, job: GenerationJob) -> JobHandle:
        """The job's handle; entering it enqueues the job."""
        ...

    async def ended(self, job_id: str, created: float) -> bool:
        """Whether the job (admitted at ``created``, unix time) has ended: it published its terminal event, or it
        left no trace past its queue deadline (it was never sent, or never started, and no worker will start it
        now: a worker refuses a job past its deadline)."""
        ...


class JobNames(Protocol):
    async def claim(self, user_id: str, name: str, job_id: str, hold: float) -> bool:
        """Hold ``name`` for the job (False: the user has a job of that name already)."""
        ...

    async def release(self, user_id: str, name: str) -> None: ...
