"""``LocalFileStore``: files in a directory of this machine (one machine, ``make up``).

A file is written to a temporary name beside its final one, synced to disk, and renamed into place when its
writer is left without an exception, so a reader never sees half a file and a crash leaves no file, only a
temporary one (removed on the next start). File I/O runs in a thread, in chunks of ``CHUNK`` bytes, so the
event loop never waits on the disk.
"""

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

__all__ = ["CHUNK", "LocalFileStore"]

CHUNK = 1 << 20
_PART = ".part"
_ID = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")


class _Writer:
    def __init__(self, final: Path) -> None:
        self._final = final
        self._temporary = final.with_name(f"{final.name}.{secrets.token_hex(4)}{_PART}")
        self._file: BinaryIO | None = None
        self._buffer = bytearray()

    async def __aenter__(self) -> Self:
        self._file = await asyncio.to_thread(self._temporary.open, "wb")
        return self

    async def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        if len(self._buffer) >= CHUNK:
            await self._flush()

    async def _flush(self) -> None:
        data, self._buffer = bytes(self._buffer), bytearray()
        if data and self._file is not None:
            await asyncio.to_thread(self._file.write, data)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            try:
                await self._flush()
                await asyncio.to_thread(self._commit)
                return
            except BaseException:
                await asyncio.to_thread(self._discard)
                raise
        await asyncio.to_thread(self._discard)

    def _commit(self) -> None:
        file = self._file
        if file is None:
            raise RuntimeError("a file writer is used inside `async with` only")
        file.flush()
        os.fsync(file.fileno())
        file.close()
        self._temporary.replace(self._final)

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
        self._temporary.unlink(missing_ok=True)


class LocalFileStore:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        for left in directory.glob(f"*{_PART}"):  # a writer that never finished (a crash)
            left.unlink(missing_ok=True)

    def _path(self, file_id: str) -> Path:
        if not _ID.match(file_id):  # ids are made here, but a path is never built from anything else
            raise ValueError(f"not a file id: {file_id!r}")
        return self._directory / file_id

    def writer(self, file_id: str) -> _Writer:
        return _Writer(self._path(file_id))

    async def read(self, file_id: str) -> AsyncIterator[bytes]:
        source = await asyncio.to_thread(self._path(file_id).open, "rb")
        try:
            while chunk := await asyncio.to_thread(source.read, CHUNK):
                yield chunk
        finally:
            await asyncio.to_thread(source.close)

    async def delete(self, file_id: str) -> None:
        await asyncio.to_thread(self._path(file_id).unlink, missing_ok=True)

    async def stored(self) -> list[tuple[str, float]]:
        def listing() -> list[tuple[str, float]]:
            found = []
            for path in self._directory.iterdir():
                if not path.name.endswith(_PART):
                    with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                        found.append((path.name, path.stat().st_mtime))
            return found

        return await asyncio.to_thread(listing)
