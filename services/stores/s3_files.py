"""``S3FileStore``: files as objects in S3-compatible storage (AWS S3, MinIO, Cloudflare R2, ...), across machines.

A file is the object ``prefix + id`` of one bucket (``services.stores.s3_bucket``: HTTP, SigV4 signing,
``S3Error``). Its writer holds at most one part (``part_size``) in memory: a file that ends within the first
part is one ``PUT``; a longer one a multipart upload, completed when the writer is left without an exception
and aborted otherwise, so the object exists whole or not at all. (An upload whose abort failed too is left
pending, invisible but billed: a bucket lifecycle rule ``AbortIncompleteMultipartUpload`` clears those.)

A missing object is ``FileNotFoundError`` for ``read`` and no error for ``delete``; any other failure is
``S3Error``, with S3's error code and message (never the secret key).
"""

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime
from types import TracebackType
from typing import Literal, Self

import httpx

from services.stores import sigv4
from services.stores.s3_bucket import S3Bucket, S3Error

__all__ = ["MIN_PART_SIZE", "S3FileStore"]

log = logging.getLogger("conduit.files")

#: S3's smallest part of a multipart upload (but its last)
MIN_PART_SIZE = 5 * 1024 * 1024
_ID = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")


class _Writer:
    def __init__(self, bucket: S3Bucket, key: str, part_size: int) -> None:
        self._bucket, self._key, self._part_size = bucket, key, part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._etags: list[str] = []

    async def __aenter__(self) -> Self:
        return self

    async def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        size = self._part_size
        while len(self._buffer) > size:  # more than a part: the last part is never empty
            part = bytes(self._buffer[:size])
            del self._buffer[:size]
            await self._upload(part)

    async def _upload(self, part: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = await self._bucket.create_multipart_upload(self._key)
        number = len(self._etags) + 1
        self._etags.append(await self._bucket.upload_part(self._key, self._upload_id, number, part))

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            try:
                await self._finish()
                return
            except BaseException:
                await self._abort()
                raise
        await self._abort()

    async def _finish(self) -> None:
        data, self._buffer = bytes(self._buffer), bytearray()
        if self._upload_id is None:
            await self._bucket.put_object(self._key, data)
            return
        await self._upload(data)
        await self._bucket.complete_multipart_upload(self._key, self._upload_id, self._etags)

    async def _abort(self) -> None:
        self._buffer = bytearray()
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        try:
            await self._bucket.abort_multipart_upload(self._key, upload_id)
        except Exception as exc:  # the writer's own error goes on; the pending upload is the lifecycle rule's
            log.warning("could not abort the multipart upload of %s: %s", self._key, exc)


class S3FileStore:
    """Files in ``bucket`` under ``prefix``; ``client`` None: the store makes its own (``aclose`` closes it).

    ``endpoint`` is the storage's URL (``https://s3.eu-west-1.amazonaws.com``, ``http://127.0.0.1:9000``);
    ``addressing`` ``path`` puts the bucket in the path (``{endpoint}/{bucket}/{key}``), ``virtual`` in the
    host name (``https://{bucket}.{host}/{key}``). ``page_size`` is the objects asked for per listing request.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None,
        *,
        bucket: str,
        prefix: str = "",
        endpoint: str,
        region: str = "us-east-1",
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        addressing: Literal["path", "virtual"] = "path",
        part_size: int = 8 * 1024 * 1024,
        page_size: int = 1000,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"an S3 part is at least {MIN_PART_SIZE} bytes, not {part_size}")
        if not access_key_id or not secret_access_key:
            raise ValueError("an S3 file store needs an access key id and a secret access key")
        credentials = sigv4.Credentials(access_key_id, secret_access_key, session_token or None)
        self._own = client is None
        # (a client made here that the bucket refuses is dropped unused: it holds no connection yet)
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0))
        self._bucket = S3Bucket(
            self._client,
            bucket=bucket,
            endpoint=endpoint,
            region=region,
            credentials=credentials,
            addressing=addressing,
        )
        self._prefix, self.part_size, self._page_size = prefix, part_size, page_size

    def __repr__(self) -> str:
        return f"S3FileStore({self._bucket.url}{self._prefix})"

    async def aclose(self) -> None:
        """Close the HTTP client if the store made it."""
        if self._own:
            await self._client.aclose()

    def _key(self, file_id: str) -> str:
        if not _ID.match(file_id):  # ids are made here, but a key is never built from anything else
            raise ValueError(f"not a file id: {file_id!r}")
        return self._prefix + file_id

    def writer(self, file_id: str) -> _Writer:
        return _Writer(self._bucket, self._key(file_id), self.part_size)

    async def read(self, file_id: str) -> AsyncIterator[bytes]:
        async with contextlib.aclosing(self._bucket.get_object(self._key(file_id))) as chunks:
            try:
                async for chunk in chunks:
                    yield chunk
            except S3Error as exc:
                if exc.code == "NoSuchKey":  # on the first chunk (or later, deleted while being read)
                    raise FileNotFoundError(f"no file {file_id}") from None
                raise

    async def delete(self, file_id: str) -> None:
        await self._bucket.delete_object(self._key(file_id))

    async def stored(self) -> list[tuple[str, float]]:
        found = []
        async for key, modified in self._bucket.list_objects(self._prefix, self._page_size):
            file_id = key.removeprefix(self._prefix)
            if _ID.match(file_id) and modified:  # anything else under the prefix is not this store's: left alone
                found.append((file_id, datetime.fromisoformat(modified).timestamp()))
        return found
