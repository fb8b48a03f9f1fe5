"""``S3FileStore`` against a scripted S3 (``httpx.MockTransport``): the URLs and headers it sends, how it reads
S3's errors, and ``file_store`` choosing a store from the settings. The real S3 API: ``tests/integration``."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.shared_settings import SharedSettings
from services.stores.file_stores import check_file_store, close_file_store, file_store
from services.stores.local_files import LocalFileStore
from services.stores.s3_bucket import S3Error
from services.stores.s3_files import MIN_PART_SIZE, S3FileStore
from shared.config import SettingsError

pytestmark = pytest.mark.anyio
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def _error_body(code: str, message: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>1</RequestId></Error>".encode()


class Scripted:
    """Records every request; answers each with ``answer(request)``."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.requests: list[httpx.Request] = []
        self._answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self._answer(request)

    def store(self, **options: Any) -> S3FileStore:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self))
        settings: dict[str, Any] = {
            "bucket": "b",
            "endpoint": "http://127.0.0.1:9000",
            "access_key_id": "AKID",
            "secret_access_key": SECRET,
            **options,
        }
        return S3FileStore(client, **settings)


def _ok(request: httpx.Request) -> httpx.Response:
    if request.method == "POST" and "uploads" in request.url.params:
        return httpx.Response(
            200, content=b"<InitiateMultipartUploadResult><UploadId>u-1</UploadId></InitiateMultipartUploadResult>"
        )
    if request.method == "PUT" and "partNumber" in request.url.params:
        return httpx.Response(200, headers={"etag": f'"etag-{request.url.params["partNumber"]}"'})
    if request.method == "POST" and "uploadId" in request.url.params:
        return httpx.Response(
            200, content=b"<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>"
        )
    if request.method == "GET":
        return httpx.Response(200, content=b"hello")
    return httpx.Response(204 if request.method == "DELETE" else 200)


async def test_virtual_addressing_puts_the_bucket_in_the_host_and_signs_it() -> None:
    s3 = Scripted(_ok)
    store = s3.store(
        endpoint="https://s3.eu-west-1.amazonaws.com/", addressing="virtual", prefix="in/", region="eu-west-1"
    )
    async with store.writer("file-1") as out:
        await out.write(b"data")
    (put,) = s3.requests
    assert str(put.url) == "https://b.s3.eu-west-1.amazonaws.com/in/file-1"
    assert put.headers["host"] == "b.s3.eu-west-1.amazonaws.com"
    assert (
        "/eu-west-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
        in put.headers["authorization"]
    )
    assert put.headers["x-amz-content-sha256"] == "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7"


async def test_path_addressing_keeps_the_endpoints_path_port_and_a_session_token() -> None:
    s3 = Scripted(_ok)
    store = s3.store(endpoint="http://[::1]:9000/storage", session_token="temporary")
    assert b"".join([chunk async for chunk in store.read("file-1")]) == b"hello"
    await store.delete("file-1")
    get, delete = s3.requests
    assert str(get.url) == "http://[::1]:9000/storage/b/file-1" and get.headers["host"] == "[::1]:9000"
    assert get.headers["x-amz-security-token"] == "temporary"
    assert "x-amz-security-token" in get.headers["authorization"]
    assert delete.method == "DELETE" and delete.url.path == "/storage/b/file-1"


async def test_a_multipart_upload_sends_its_parts_in_order_and_completes() -> None:
    s3 = Scripted(_ok)
    store = s3.store(part_size=MIN_PART_SIZE)
    async with store.writer("file-big") as out:
        for _ in range(11):
            await out.write(b"x" * (1 << 20))
    assert [(r.method, dict(r.url.params)) for r in s3.requests] == [
        ("POST", {"uploads": ""}),
        ("PUT", {"partNumber": "1", "uploadId": "u-1"}),
        ("PUT", {"partNumber": "2", "uploadId": "u-1"}),
        ("PUT", {"partNumber": "3", "uploadId": "u-1"}),
        ("POST", {"uploadId": "u-1"}),
    ]
    assert [len(r.content) for r in s3.requests[1:4]] == [MIN_PART_SIZE, MIN_PART_SIZE, 1 << 20]
    complete = s3.requests[-1].content.decode()
    assert '<PartNumber>3</PartNumber><ETag>"etag-3"</ETag>' in complete.replace("&quot;", '"')


async def test_an_error_in_a_200_completion_aborts_the_upload() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and "uploadId" in request.url.params:
            return httpx.Response(200, content=_error_body("InternalError", "We encountered an internal error."))
        return _ok(request)

    s3 = Scripted(answer)
    store = s3.store(part_size=MIN_PART_SIZE)
    with pytest.raises(S3Error, match="InternalError: We encountered an internal error"):
        async with store.writer("file-big") as out:
            await out.write(b"x" * (MIN_PART_SIZE + 1))
    assert (s3.requests[-1].method, dict(s3.requests[-1].url.params)) == ("DELETE", {"uploadId": "u-1"})


async def test_a_failed_abort_does_not_hide_the_writers_own_error(caplog: pytest.LogCaptureFixture) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(500, content=_error_body("InternalError", "try again"))
        return _ok(request)

    store = Scripted(answer).store(part_size=MIN_PART_SIZE)
    with pytest.raises(RuntimeError, match="client went away"):
        async with store.writer("file-big") as out:
            await out.write(b"x" * (MIN_PART_SIZE + 1))
            raise RuntimeError("client went away")
    assert "could not abort the multipart upload of file-big" in caplog.text


async def test_s3_errors_carry_code_and_message_but_never_the_secret() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, content=_error_body("SignatureDoesNotMatch", "The signature does not match."))

    store = Scripted(answer).store()
    with pytest.raises(S3Error) as raised:
        async with store.writer("file-1") as out:
            await out.write(b"x")
    text = str(raised.value)
    assert "PutObject of b/file-1: HTTP 403 SignatureDoesNotMatch: The signature does not match." in text
    assert (raised.value.status, raised.value.code) == (403, "SignatureDoesNotMatch")
    assert SECRET not in text and SECRET not in repr(store)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, _error_body("NoSuchKey", "The specified key does not exist."), FileNotFoundError),
        (404, b"", FileNotFoundError),
        (404, _error_body("NoSuchBucket", "The specified bucket does not exist"), S3Error),
        (503, b"<html>proxy</html>", S3Error),
    ],
)
async def test_a_missing_object_is_file_not_found_a_missing_bucket_is_not(status, body, expected) -> None:
    store = Scripted(lambda _: httpx.Response(status, content=body)).store()
    with pytest.raises(expected):
        async for _ in store.read("file-1"):
            pass


async def test_deleting_a_missing_object_is_fine_unless_the_bucket_is_missing() -> None:
    await Scripted(lambda _: httpx.Response(404, content=_error_body("NoSuchKey", "gone"))).store().delete("file-1")
    store = Scripted(lambda _: httpx.Response(404, content=_error_body("NoSuchBucket", "no bucket"))).store()
    with pytest.raises(S3Error, match="NoSuchBucket"):
        await store.delete("file-1")


async def test_a_connection_failure_is_an_s3_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    store = Scripted(answer).store()
    with pytest.raises(S3Error, match="DeleteObject of b/file-1: ConnectError: connection refused"):
        await store.delete("file-1")
    with pytest.raises(S3Error, match="GetObject of b/file-1: ConnectError"):
        async for _ in store.read("file-1"):
            pass


def test_the_store_refuses_what_s3_would() -> None:
    s3 = Scripted(_ok)
    for options, message in (
        ({"part_size": MIN_PART_SIZE - 1}, "an S3 part is at least"),
        ({"endpoint": "ftp://example.com"}, "is an http"),
        ({"endpoint": "http://host:port"}, "is an http"),
        ({"bucket": ""}, "a name"),
        ({"secret_access_key": ""}, "a secret access key"),
        ({"addressing": "dns"}, "path or virtual"),
    ):
        with pytest.raises(ValueError, match=message):
            s3.store(**options)


_Settings = SharedSettings


AWS = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": SECRET}


async def test_file_store_is_local_without_a_bucket_and_s3_with_one(tmp_path: Path) -> None:
    local = file_store(_Settings(files_dir=str(tmp_path / "files")), {})
    assert isinstance(local, LocalFileStore) and (tmp_path / "files").is_dir()
    await close_file_store(local)
    s3 = file_store(_Settings(files_s3_bucket="conduit", files_s3_region="eu-west-3", files_s3_prefix="p/"), AWS)
    assert isinstance(s3, S3FileStore)
    assert repr(s3) == "S3FileStore(https://s3.eu-west-3.amazonaws.com/conduit/p/)"
    await close_file_store(s3)


@pytest.mark.parametrize(
    ("settings", "environ", "variable"),
    [
        (_Settings(files_s3_bucket="b"), {"AWS_SECRET_ACCESS_KEY": SECRET}, "AWS_ACCESS_KEY_ID"),
        (
            _Settings(files_s3_bucket="b"),
            {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": " "},
            "AWS_SECRET_ACCESS_KEY",
        ),
        (_Settings(files_s3_bucket="b", files_s3_addressing="dns"), AWS, "CONDUIT_FILES_S3_ADDRESSING"),
        (_Settings(files_s3_bucket="b", files_s3_endpoint="s3.example.com"), AWS, "CONDUIT_FILES_S3_ENDPOINT"),
    ],
)
def test_a_bucket_without_what_it_needs_is_a_settings_error_naming_the_variable(settings, environ, variable) -> None:
    for make in (check_file_store, file_store):
        with pytest.raises(SettingsError, match=f"^{variable}: ") as raised:
            make(settings, environ)
        assert SECRET not in str(raised.value)
    check_file_store(_Settings(), {})  # no bucket: nothing to check


class _Dropping(httpx.AsyncByteStream):
    """A body whose connection drops after ``data``."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self):
        yield self._data
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


async def test_a_read_whose_connection_dropped_resumes_where_it_stopped_of_the_same_object() -> None:
    data = bytes(range(256)) * 40

    def answer(request: httpx.Request) -> httpx.Response:
        if "range" not in request.headers:
            return httpx.Response(200, headers={"etag": '"v1"'}, stream=_Dropping(data[:1000]))
        start = int(request.headers["range"].removeprefix("bytes=").removesuffix("-"))
        if start < 3000:
            return httpx.Response(206, stream=_Dropping(data[start : start + 2000]))
        return httpx.Response(206, content=data[start:])

    s3 = Scripted(answer)
    assert b"".join([chunk async for chunk in s3.store().read("file-1")]) == data
    assert [(r.headers.get("range"), r.headers.get("if-match")) for r in s3.requests] == [
        (None, None),
        ("bytes=1000-", '"v1"'),
        ("bytes=3000-", '"v1"'),
    ]
    assert all("range;" in r.headers["authorization"] for r in s3.requests[1:])  # signed with the rest


async def test_a_read_fails_when_the_object_changed_or_the_connection_keeps_dropping() -> None:
    def replaced(request: httpx.Request) -> httpx.Response:
        if "range" not in request.headers:
            return httpx.Response(200, headers={"etag": '"v1"'}, stream=_Dropping(b"x" * 10))
        return httpx.Response(412, content=_error_body("PreconditionFailed", "At least one precondition failed"))

    with pytest.raises(S3Error, match="PreconditionFailed"):
        async for _ in Scripted(replaced).store().read("file-1"):
            pass

    def dropping(request: httpx.Request) -> httpx.Response:
        first = "range" not in request.headers
        return httpx.Response(200 if first else 206, headers={"etag": '"v1"'}, stream=_Dropping(b"x" if first else b""))

    s3 = Scripted(dropping)
    with pytest.raises(S3Error, match="RemoteProtocolError"):
        async for _ in s3.store().read("file-1"):
            pass
    assert len(s3.requests) == 4  # the first, then 3 resumes in a row that got no further
