"""A streamed multipart upload (``services.api.uploads.receive_upload``) into a real directory."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.api.uploads import MAX_FIELD, receive_upload
from services.stores.local_files import LocalFileStore
from shared.errors import ErrorCode, GatewayError

pytestmark = pytest.mark.anyio


def _left(directory: Path) -> list[Path]:
    return list(directory.iterdir())


TYPE = "multipart/form-data; boundary=b0und"


def form(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, data in parts:
        named = f'; filename="{filename}"' if filename is not None else ""
        out += f'--b0und\r\nContent-Disposition: form-data; name="{name}"{named}\r\n\r\n'.encode() + data + b"\r\n"
    return out + b"--b0und--\r\n"


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def never(chunk: bytes) -> None:
    return None


async def test_the_file_part_is_stored_and_the_fields_returned(tmp_path: Path) -> None:
    store, seen = LocalFileStore(tmp_path), bytearray()

    async def keep(chunk: bytes) -> None:
        seen.extend(chunk)

    data = b"x" * 10_000
    body = form(("purpose", None, b"batch"), ("file", "in.jsonl", data), ("expires_after[seconds]", None, b"3600"))
    upload = await receive_upload(chunks(body), TYPE, store, "file-1", max_bytes=20_000, check=keep)
    assert upload == ("in.jsonl", len(data), {"purpose": "batch", "expires_after[seconds]": "3600"})
    assert bytes(seen) == data == (tmp_path / "file-1").read_bytes()


async def test_a_refused_file_is_not_kept_and_the_body_is_still_read(tmp_path: Path) -> None:
    store, read = LocalFileStore(tmp_path), []

    async def refuse(chunk: bytes) -> None:
        raise GatewayError("line 1: no", code=ErrorCode.INVALID_REQUEST)

    async def counted(data: bytes) -> AsyncIterator[bytes]:
        async for chunk in chunks(data):
            read.append(len(chunk))
            yield chunk

    body = form(("file", "in.jsonl", b"y" * 5000), ("purpose", None, b"batch"))
    with pytest.raises(GatewayError, match="line 1: no"):
        await receive_upload(counted(body), TYPE, store, "file-2", max_bytes=20_000, check=refuse)
    assert sum(read) == len(body) and _left(tmp_path) == []


async def test_too_large_a_file_is_a_413_and_too_large_a_body_is_not_read_to_its_end(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    with pytest.raises(GatewayError) as caught:
        await receive_upload(chunks(form(("file", "a", b"z" * 3000))), TYPE, store, "f3", max_bytes=1000, check=never)
    assert caught.value.code == ErrorCode.REQUEST_TOO_LARGE
    endless_read = []

    async def endless() -> AsyncIterator[bytes]:
        yield b'--b0und\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        while True:
            endless_read.append(1)
            yield b"z" * 1000

    with pytest.raises(GatewayError) as caught:
        await receive_upload(endless(), TYPE, store, "f4", max_bytes=1000, check=never)
    assert caught.value.code == ErrorCode.REQUEST_TOO_LARGE and len(endless_read) < 100
    assert _left(tmp_path) == []


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b"{}", "application/json", "upload a file as multipart/form-data"),
        (form(("purpose", None, b"batch")), TYPE, "the upload has no `file` part"),
        (form(("file", "a", b"1"), ("file", "b", b"2")), TYPE, "send one `file` part"),
        (form(("purpose", None, b"p" * (MAX_FIELD + 1)), ("file", "a", b"1")), TYPE, "form field 'purpose' is longer"),
        (form(("file", "a", b"1"))[:-10], TYPE, "not a valid multipart/form-data body"),
        (b"garbage without a boundary", TYPE, "not a valid multipart/form-data body"),
    ],
)
async def test_a_body_that_is_not_an_upload_is_a_400(tmp_path: Path, body: bytes, content_type: str, says: str) -> None:
    store = LocalFileStore(tmp_path)
    with pytest.raises(GatewayError, match=says) as caught:
        await receive_upload(chunks(body), content_type, store, "f5", max_bytes=10_000, check=never)
    assert caught.value.code == ErrorCode.INVALID_REQUEST
    assert _left(tmp_path) == []
