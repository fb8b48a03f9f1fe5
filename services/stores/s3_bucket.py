"""``S3Bucket``: the S3 operations ``S3FileStore`` needs, on one bucket, as plain HTTP through httpx.

Each request is signed with Signature Version 4 (``services.stores.sigv4``) over the hex SHA-256 of its body;
answers are parsed with the standard library's XML parser. Any answer other than the expected ones raises
``S3Error`` with S3's error code and message (a 404 counts as done where the operation's result holds anyway:
deleting an object or an upload already gone). The secret key is used for signing only: it is never logged
nor put in a message.
"""

import asyncio
import logging
from collections.abc import AsyncGenerator, Iterable
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import SplitResult, urlsplit
from xml.etree import ElementTree as ET

import httpx

from services.stores import sigv4

__all__ = ["S3Bucket", "S3Error", "check_endpoint"]

log = logging.getLogger("conduit.files")

#: a read whose connection dropped is resumed this many times in a row at most
_RESUMES = 3
#: bodies larger than this are hashed in a thread (hashlib releases the GIL), not on the event loop
_HASH_INLINE = 256 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}

Query = Iterable[tuple[str, str]]


class S3Error(Exception):
    """S3 (or the way to it) answered other than expected: ``status``, and S3's error ``code`` when it gave one."""

    def __init__(self, what: str, status: int, code: str, message: str) -> None:
        self.status, self.code = status, code  # status 0: no answer (``code`` is the httpx exception's name)
        answer = f"HTTP {status} {code or '(no error code)'}" if status else code
        super().__init__(f"S3 {what}: {answer}: {message or '(no message)'}")


def check_endpoint(endpoint: str) -> SplitResult:
    """``endpoint`` split; ``ValueError`` if it is not an http(s) URL."""
    parts = urlsplit(endpoint)
    try:
        valid = parts.scheme in _DEFAULT_PORTS and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number
        valid = False
    if not valid or parts.query or parts.fragment:
        raise ValueError(f"an S3 endpoint is an http(s) URL, not {endpoint!r}")
    return parts


def _answer(what: str, response: httpx.Response) -> ET.Element:
    try:
        # the configured storage's answer; expat (>= 2.4.1, in Python 3.11) refuses entity expansion bombs
        return ET.fromstring(response.content)  # noqa: S314
    except ET.ParseError:
        raise S3Error(what, response.status_code, "", "the answer is not XML") from None


async def _read_error(what: str, response: httpx.Response) -> S3Error:
    """The error of a streamed GET (a 404 without a body: nothing else is missing on a GET)."""
    await response.aread()
    error = _error(what, response)
    if response.status_code == httpx.codes.NOT_FOUND and not error.code:
        error.code = "NoSuchKey"
    return error


def _error(what: str, response: httpx.Response) -> S3Error:
    try:
        root = _answer(what, response)
    except S3Error:
        return S3Error(what, response.status_code, "", response.reason_phrase)
    message = root.findtext("{*}Message") or response.reason_phrase
    return S3Error(what, response.status_code, root.findtext("{*}Code") or "", message)


class S3Bucket:
    """``bucket`` at ``endpoint`` (an http(s) URL, perhaps with a path), addressed by ``path``
    (``{endpoint}/{bucket}/{key}``) or ``virtual`` host (``{scheme}://{bucket}.{host}/{key}``)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        bucket: str,
        endpoint: str,
        region: str,
        credentials: sigv4.Credentials,
        addressing: Literal["path", "virtual"],
    ) -> None:
        parts = check_endpoint(endpoint)
        if not bucket:
            raise ValueError("an S3 bucket has a name")
        if addressing not in {"path", "virtual"}:
            raise ValueError(f"S3 addressing is path or virtual, not {addressing!r}")
        self._client, self.name, self._region, self._credentials = client, bucket, region, credentials
        hostname = parts.hostname or ""
        hostname = f"[{hostname}]" if ":" in hostname else hostname  # IPv6
        host = hostname if parts.port in {None, _DEFAULT_PORTS[parts.scheme]} else f"{hostname}:{parts.port}"
        base = parts.path.rstrip("/")
        if addressing == "virtual":
            self._host, self._root = f"{bucket}.{host}", f"{base}/"
        else:
            self._host, self._root = host, f"{base}/{bucket}/"
        self._origin = f"{parts.scheme}://{self._host}"
        self.url = f"{self._origin}{self._root}"

    async def _signed(
        self, method: str, key: str, query: Query, body: bytes, extra: dict[str, str] | None = None
    ) -> tuple[str, dict[str, str]]:
        """The URL (``key`` "": the bucket's) and the signed headers of a request (``extra`` among them)."""
        digest = await asyncio.to_thread(sigv4.payload_hash, body) if len(body) > _HASH_INLINE else None
        path = sigv4.quote_path(self._root + key if key else self._root.rstrip("/") or "/")
        search = sigv4.canonical_query(query)
        now, content_hash = datetime.now(UTC), digest or sigv4.payload_hash(body)
        headers = sigv4.sign(
            method, self._host, path, search, content_hash, self._credentials, self._region, now, headers=extra
        )
        return f"{self._origin}{path}{'?' if search else ''}{search}", headers

    async def _call(
        self, method: str, key: str, what: str, *, query: Query = (), body: bytes = b"", gone: str = ""
    ) -> httpx.Response:
        """``what`` is the S3 operation; a 404 with the error code ``gone`` (or none) counts as done."""
        url, headers = await self._signed(method, key, query, body)
        try:
            response = await self._client.request(method, url, headers=headers, content=body)
        except httpx.HTTPError as exc:
            raise S3Error(f"{what} of {self.name}/{key}", 0, type(exc).__name__, str(exc)) from exc
        if not response.is_success:
            error = _error(f"{what} of {self.name}/{key}", response)
            if not (gone and response.status_code == httpx.codes.NOT_FOUND and error.code in {gone, ""}):
                raise error
        return response

    async def put_object(self, key: str, data: bytes) -> None:
        await self._call("PUT", key, "PutObject", body=data)

    async def get_object(self, key: str) -> AsyncGenerator[bytes, None]:
        """The object's bytes as they arrive; ``S3Error`` with the code ``NoSuchKey`` (on the first chunk) if
        there is no such object.

        A reader may take hours over an object (a batch's lines, read as they run), and storage may drop a
        connection that long stalled: the rest is then asked for again (``Range``), of the same object only
        (``If-Match`` its ETag: a ``PreconditionFailed`` error if it was replaced meanwhile)."""
        what, offset, etag, drops = f"GetObject of {self.name}/{key}", 0, "", 0
        while True:
            extra = {"range": f"bytes={offset}-", "if-match": etag} if offset else None
            url, headers = await self._signed("GET", key, (), b"", extra)
            headers["accept-encoding"] = "identity"  # (unsigned) offsets count the bytes as stored
            try:
                async with self._client.stream("GET", url, headers=headers) as response:
                    if offset and response.status_code == httpx.codes.REQUESTED_RANGE_NOT_SATISFIABLE:
                        return  # the connection dropped after the last byte
                    if not response.is_success:
                        raise await _read_error(what, response)
                    if offset and response.status_code != httpx.codes.PARTIAL_CONTENT:
                        raise S3Error(what, response.status_code, "", f"bytes {offset}- were asked for, not all")
                    etag = etag or response.headers.get("etag", "")
                    async for chunk in response.aiter_bytes():
                        offset, drops = offset + len(chunk), 0
                        yield chunk
                    return
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:  # the connection dropped mid-object
                drops += 1
                if not (offset and etag) or drops > _RESUMES:
                    raise S3Error(what, 0, type(exc).__name__, str(exc)) from exc
                log.info("%s: the connection dropped at byte %d (%s); resuming", what, offset, exc)
            except httpx.HTTPError as exc:
                raise S3Error(what, 0, type(exc).__name__, str(exc)) from exc

    async def delete_object(self, key: str) -> None:
        await self._call("DELETE", key, "DeleteObject", gone="NoSuchKey")

    async def list_objects(self, prefix: str, page_size: int = 1000) -> AsyncGenerator[tuple[str, str], None]:
        """``(key, LastModified)`` of every object under ``prefix``, ``page_size`` a request (ListObjectsV2)."""
        token = ""
        while True:
            query = [("list-type", "2"), ("prefix", prefix), ("max-keys", str(page_size))]
            if token:
                query.append(("continuation-token", token))
            response = await self._call("GET", "", "ListObjectsV2", query=query)
            page = _answer(f"ListObjectsV2 of {self.name}", response)
            for item in page.iterfind("{*}Contents"):
                yield item.findtext("{*}Key") or "", item.findtext("{*}LastModified") or ""
            token = page.findtext("{*}NextContinuationToken") or ""
            if page.findtext("{*}IsTruncated") != "true" or not token:
                return

    # -- multipart uploads -------------------------------------------------------------------------

    async def create_multipart_upload(self, key: str) -> str:
        """The new upload's id."""
        response = await self._call("POST", key, "CreateMultipartUpload", query=[("uploads", "")])
        what = f"CreateMultipartUpload of {self.name}/{key}"
        upload_id = _answer(what, response).findtext("{*}UploadId")
        if not upload_id:
            raise S3Error(what, response.status_code, "", "no UploadId in the answer")
        return upload_id

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        """The part's ETag."""
        query = [("partNumber", str(number)), ("uploadId", upload_id)]
        response = await self._call("PUT", key, "UploadPart", query=query, body=data)
        etag: str = response.headers.get("etag", "")
        if not etag:
            raise S3Error(f"UploadPart of {self.name}/{key}", response.status_code, "", "no ETag in the answer")
        return etag

    async def complete_multipart_upload(self, key: str, upload_id: str, etags: list[str]) -> None:
        """``etags`` of parts 1, 2, ... in order."""
        root = ET.Element("CompleteMultipartUpload", xmlns="http://s3.amazonaws.com/doc/2006-03-01/")
        for number, etag in enumerate(etags, start=1):
            part = ET.SubElement(root, "Part")
            ET.SubElement(part, "PartNumber").text = str(number)
            ET.SubElement(part, "ETag").text = etag
        query, body = [("uploadId", upload_id)], ET.tostring(root)
        response = await self._call("POST", key, "CompleteMultipartUpload", query=query, body=body)
        what = f"CompleteMultipartUpload of {self.name}/{key}"
        answer = _answer(what, response)  # S3 may answer 200 with an error in the body
        if answer.tag.rpartition("}")[2] == "Error":
            code, message = answer.findtext("{*}Code") or "", answer.findtext("{*}Message") or ""
            raise S3Error(what, response.status_code, code, message)

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        await self._call("DELETE", key, "AbortMultipartUpload", query=[("uploadId", upload_id)], gone="NoSuchUpload")
