"""Batches: the ``BatchStore`` port, and the records it keeps.

A batch belongs to its creator (``owner``); every method takes the caller's user id and treats another
user's batch as one that does not exist. Its record is OpenAI's batch object less what is derived (the
``object`` field), plus what the workers need to run it: the translated lines' file, and the pace its owner's
tier allows (requests and tokens per minute, snapshot at creation).

The lines' results are kept apart from the record, one per ``custom_id``, written once: a line run twice (its
worker died after the upstream answered) is recorded, and counted, once.

Implementations: ``services.stores.redis_batches``.
"""

import secrets
from collections.abc import AsyncIterator
from typing import Literal, NamedTuple, Protocol

import msgspec

from services.stores.files import FileStore
from shared.batches import BatchLine, decode_line

__all__ = [
    "TERMINAL",
    "BatchError",
    "BatchPage",
    "BatchRecord",
    "BatchStatus",
    "BatchStore",
    "LineResult",
    "new_batch_id",
    "read_lines",
]

BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]
TERMINAL: frozenset[BatchStatus] = frozenset({"failed", "completed", "expired", "cancelled"})


class BatchError(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    owner: str
    endpoint: str
    input_file_id: str
    completion_window: str
    status: BatchStatus
    created_at: int
    expires_at: int
    #: the translated lines' file (``shared.batches.lines_file_id``) and how many there are
    lines_file_id: str
    total: int
    completed: int = 0
    failed: int = 0
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    metadata: dict[str, str] | None = None
    errors: list[BatchError] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    #: the owner's tier, and its pace when the batch was made (0: no limit)
    tier: str = ""
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    #: seconds its output and error files are kept (0: the gateway's default)
    output_expires_after: int = 0
    #: while ``finalizing``: the status it ends with
    ends_as: Literal["completed", "cancelled", "expired"] | None = None


class LineResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A line's outcome as the worker records it; the API renders it as an output or error file line."""

    custom_id: str
    #: the job that answered it (the response body's id), when it was made, and its events, as its replay log
    #: would hold them
    job_id: str
    events: bytes
    ok: bool
    created: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class BatchPage(NamedTuple):
    batches: list[BatchRecord]
    has_more: bool


def new_batch_id() -> str:
    return f"batch_{secrets.token_hex(12)}"


class BatchStore(Protocol):
    async def add(self, record: BatchRecord) -> None: ...

    async def get(self, owner: str, batch_id: str) -> BatchRecord | None: ...

    async def page(self, owner: str, *, limit: int, after: str | None) -> BatchPage | None:
        """A page of the owner's batches, newest first; ``None`` if ``after`` is not one of them."""
        ...

    async def cancel(self, owner: str, batch_id: str, now: int) -> BatchRecord | None:
        """Ask a running batch to stop (``cancelling``); a batch that ended is returned as it is."""
        ...


async def read_lines(files: FileStore, file_id: str, size: int) -> AsyncIterator[list[BatchLine]]:
    """A batch's translated lines, in order, ``size`` at a time (the file streamed, never read whole)."""
    pending, chunk = b"", list[BatchLine]()
    async for data in files.read(file_id):
        *whole, pending = (pending + data).split(b"\n")
        chunk.extend(decode_line(raw) for raw in whole if raw)
        while len(chunk) >= size:
            yield chunk[:size]
            chunk = chunk[size:]
    if pending:
        chunk.append(decode_line(pending))
    if chunk:
        yield chunk
