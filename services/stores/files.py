"""Uploaded files: the ``FileStore`` port (the bytes) and ``FileRecords`` (what the API lists and shows).

A file belongs to its uploader (``owner``). Every method of ``FileRecords`` takes the caller's user id and
treats another user's file exactly like one that does not exist (``None`` / ``False``), so a route answers
both with one 404.

The bytes and the records live apart: records in Redis (``RedisFileRecords``), bytes where the deployment
keeps them: a directory on one machine (``LocalFileStore``), or S3-compatible object storage across machines.
A file's bytes are written whole before its record exists, and the record is deleted before its bytes, so a
listed file can always be read; the bytes of a file whose record expired are swept later (the API's batch
keeper). Writers stream: a file is never held whole in memory.

Implementations: ``services.stores.local_files``, ``services.stores.redis_files``.
"""

import hashlib
import secrets
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Literal, NamedTuple, Protocol, Self

import msgspec

__all__ = [
    "FilePage",
    "FileRecord",
    "FileRecords",
    "FileStore",
    "FileWriter",
    "Purpose",
    "batch_file_id",
    "new_file_id",
]

#: what a client may upload a file for (batch inputs), and what the gateway's own files are (batch results)
Purpose = Literal["batch", "batch_output"]


class FileRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A file as the API shows it (OpenAI's file object, less ``object``), and its owner."""

    id: str
    owner: str
    bytes: int
    created_at: int
    filename: str
    purpose: Purpose
    expires_at: int | None = None
    #: a batch input's request lines (0 for other files), the endpoint they call, the providers they use
    lines: int = 0
    endpoint: str = ""
    providers: list[str] = []


class FilePage(NamedTuple):
    files: list[FileRecord]
    has_more: bool


def new_file_id() -> str:
    return f"file-{secrets.token_hex(12)}"


def batch_file_id(batch_id: str, kind: Literal["output", "error"]) -> str:
    """A batch's output or error file's id, the same whoever writes it: an API process that dies after writing
    a batch's files, before the batch ends, leaves nothing behind when the next one writes them again."""
    return f"file-{hashlib.sha256(f'{batch_id}/{kind}'.encode()).hexdigest()[:24]}"


class FileWriter(Protocol):
    """Bytes of one file, written in order; the file exists once the writer is left without an exception
    (``async with store.writer(id) as out: await out.write(chunk)``), and not at all otherwise."""

    async def write(self, chunk: bytes) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class FileStore(Protocol):
    def writer(self, file_id: str) -> FileWriter: ...

    def read(self, file_id: str) -> AsyncIterator[bytes]:
        """The file's bytes in chunks; ``FileNotFoundError`` (on the first chunk) if there is no such file."""
        ...

    async def delete(self, file_id: str) -> None:
        """Gone, or never was: either way no error."""
        ...

    async def stored(self) -> list[tuple[str, float]]:
        """Every file kept, with when it was written (unix time): for the sweep of files whose records are gone."""
        ...


class FileRecords(Protocol):
    async def add(self, record: FileRecord) -> None: ...

    async def get(self, owner: str, file_id: str) -> FileRecord | None: ...

    async def page(
        self, owner: str, *, limit: int, after: str | None, newest_first: bool, purpose: str | None
    ) -> FilePage | None:
        """A page of the owner's files by creation time; ``None`` if ``after`` is not one of them."""
        ...

    async def delete(self, owner: str, file_id: str) -> bool: ...
