"""A ``multipart/form-data`` upload, streamed: its file part goes to a ``FileStore`` chunk by chunk, and to a
check of its content as it arrives, so a file of hundreds of megabytes is never held in memory, and a bad one
is refused without being kept.

Once the file part was refused (its check raised, or it passed ``max_bytes``) the rest of the body is still
read, up to about twice ``max_bytes`` in all, and dropped, so the client, which sends its whole body before
reading the answer, gets the 400 or 413 instead of a broken connection.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import NamedTuple

import multipart

from services.stores.files import FileStore, FileWriter
from shared.errors import ErrorCode, GatewayError, InvalidRequestError

__all__ = ["Upload", "receive_upload"]

#: bytes of a form field that is not the file (purpose, expiry): they are short
MAX_FIELD = 1024
MAX_PARTS = 16


class Upload(NamedTuple):
    filename: str
    bytes: int
    #: the other form fields, by name (the last of a repeated one)
    fields: dict[str, str]


def _boundary(content_type: str) -> str:
    kind, options = multipart.parse_options_header(content_type)
    if kind != "multipart/form-data" or not options.get("boundary"):
        raise InvalidRequestError(
            "upload a file as multipart/form-data (a `file` part and a `purpose` field)", param="file"
        )
    boundary: str = options["boundary"]
    return boundary


class _Receiver:
    def __init__(
        self, store: FileStore, file_id: str, max_bytes: int, check: Callable[[bytes], Awaitable[None]]
    ) -> None:
        self._store, self._file_id, self._max_bytes, self._check = store, file_id, max_bytes, check
        self.refused: GatewayError | None = None
        self.filename: str | None = None
        self.size = 0
        self.fields: dict[str, str] = {}
        self._field: str | None = None
        self._writer: FileWriter | None = None
        self._value = bytearray()

    async def segment(self, segment: multipart.MultipartSegment, files: AsyncExitStack) -> None:
        if segment.name == "file" and segment.filename is not None:
            if self.filename is not None:
                self.refused = self.refused or InvalidRequestError("send one `file` part", param="file")
                return
            self.filename = segment.filename or "upload.jsonl"
            self._writer = await files.enter_async_context(self._store.writer(self._file_id))
        else:
            self._field, self._value = segment.name or "", bytearray()

    async def payload(self, chunk: bytes) -> None:
        if self._writer is not None:
            self.size += len(chunk)
            if self.refused is not None:
                return
            if self.size > self._max_bytes:
                message = f"the file is larger than {self._max_bytes} bytes, the most this gateway takes"
                self.refused = GatewayError(message, code=ErrorCode.REQUEST_TOO_LARGE, param="file")
                return
            try:
                await self._check(chunk)
            except GatewayError as exc:
                self.refused = exc
                return
            await self._writer.write(chunk)
        elif self._field is not None and len(self._value) <= MAX_FIELD:
            self._value += chunk
            if len(self._value) > MAX_FIELD:
                self.refused = self.refused or InvalidRequestError(
                    f"form field {self._field!r} is longer than {MAX_FIELD} bytes", param=self._field
                )

    def end(self) -> None:
        if self._writer is None and self._field is not None:
            self.fields[self._field] = self._value.decode(errors="replace")
        self._field = None
        self._writer = None


async def _events(
    events: Iterator[multipart.MultipartSegment | bytes | None], receiver: _Receiver, files: AsyncExitStack
) -> None:
    for event in events:
        if isinstance(event, multipart.MultipartSegment):
            await receiver.segment(event, files)
        elif event is None:
            receiver.end()
        else:
            await receiver.payload(event)


async def receive_upload(
    body: AsyncIterator[bytes],
    content_type: str,
    store: FileStore,
    file_id: str,
    *,
    max_bytes: int,
    check: Callable[[bytes], Awaitable[None]],
) -> Upload:
    """Store the body's file part as ``file_id`` (whole, or not at all) and return what was sent with it.
    ``check`` sees every chunk of the file, in order; the first ``GatewayError`` it raises refuses it."""
    receiver = _Receiver(store, file_id, max_bytes, check)
    parser = multipart.PushMultipartParser(
        _boundary(content_type), max_header_size=4096, max_header_count=8, max_segment_count=MAX_PARTS
    )
    files = AsyncExitStack()
    received, most = 0, 2 * max_bytes + MAX_PARTS * (MAX_FIELD + 4096)
    try:
        async with files:
            async for chunk in body:
                received += len(chunk)
                if received > most:  # a body far past the cap, whatever its parts: read no further
                    receiver.refused = receiver.refused or GatewayError(
                        f"the upload is larger than {max_bytes} bytes, the most this gateway takes",
                        code=ErrorCode.REQUEST_TOO_LARGE,
                        param="file",
                    )
                    break
                if chunk:
                    await _events(parser.parse(chunk), receiver, files)
            if receiver.refused is None:
                await _events(parser.parse(b""), receiver, files)  # the end: an unfinished body raises
            if receiver.refused is not None:
                raise receiver.refused  # the writer is left with an exception: no file
    except multipart.MultipartError as exc:
        raise InvalidRequestError(f"not a valid multipart/form-data body: {exc}", param="file") from None
    if receiver.filename is None:
        raise InvalidRequestError("the upload has no `file` part", param="file")
    return Upload(receiver.filename, receiver.size, receiver.fields)
