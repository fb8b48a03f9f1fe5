import gzip
import zlib
from typing import Any

import pytest
from litestar.types import Message, Receive, Scope, Send

from services.api.compression import MINIMUM_SIZE, GzipMiddleware, accepts_gzip
from tests.unit.api.asgi import body_of, call, headers_of, http_scope, no_body, responder

pytestmark = pytest.mark.anyio

JSON = [(b"content-type", b"application/json")]
BIG = b'{"text": "' + b"conduit " * 200 + b'"}'
GZIP = {"accept-encoding": "gzip, deflate, br"}


def _sized(headers: list[tuple[bytes, bytes]], body: bytes) -> list[tuple[bytes, bytes]]:
    return [*headers, (b"content-length", str(len(body)).encode())]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br, zstd", True),
        ("deflate, gzip;q=0.5", True),
        ("*", True),
        ("br;q=1.0, *;q=0.1", True),
        ("x-gzip", True),
        (None, False),
        ("", False),
        ("identity", False),
        ("br, zstd", False),
        ("gzip;q=0", False),
        ("*, gzip;q=0", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding(value, expected):
    assert accepts_gzip(value) is expected


async def test_a_json_body_is_gzipped_when_accepted():
    app, _ = responder(headers=_sized(JSON, BIG), parts=[BIG])

    sent = await call(GzipMiddleware(app), http_scope(headers=GZIP))

    headers = headers_of(sent)
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Accept-Encoding"
    assert int(headers["content-length"]) == len(body_of(sent)) < len(BIG)
    assert gzip.decompress(body_of(sent)) == BIG


@pytest.mark.parametrize(
    ("request_headers", "body"),
    [({}, BIG), ({"accept-encoding": "identity"}, BIG), (GZIP, b"x" * (MINIMUM_SIZE - 1))],
    ids=["not-asked", "identity", "small"],
)
async def test_a_json_body_goes_as_it_is_when_not_asked_or_small(request_headers, body):
    app, _ = responder(headers=_sized(JSON, body), parts=[body])

    sent = await call(GzipMiddleware(app), http_scope(headers=request_headers))

    headers = headers_of(sent)
    assert "content-encoding" not in headers
    assert headers["vary"] == "Accept-Encoding"  # the answer would differ for another Accept-Encoding
    assert headers["content-length"] == str(len(body))
    assert body_of(sent) == body


async def test_an_event_stream_is_never_compressed_and_each_frame_goes_at_once():
    frames = [b"data: " + b"x" * 800 + b"\n\n", b"data: y\n\n", b"data: [DONE]\n\n"]
    sent: list[Any] = []
    forwarded_before_next: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for index, frame in enumerate(frames):
            await send({"type": "http.response.body", "body": frame, "more_body": index < len(frames) - 1})
            forwarded_before_next.append(len(sent))

    async def record(message: Message) -> None:
        sent.append(message)

    await GzipMiddleware(app)(http_scope("POST", headers=GZIP), no_body, record)

    assert "content-encoding" not in headers_of(sent) and "vary" not in headers_of(sent)
    assert [m["body"] for m in sent[1:]] == frames
    assert forwarded_before_next == [2, 3, 4]  # each frame left before the app produced the next


async def test_a_body_in_parts_is_compressed_part_by_part_and_each_part_is_flushed():
    parts = [b"var a = 1;\n" * 100, b"var b = 2;\n" * 100, b"var c = 3;\n" * 100]
    headers = [(b"content-type", b"text/javascript; charset=utf-8"), (b"content-length", b"3300"), (b"etag", b'"v1"')]
    app, _ = responder(headers=headers, parts=parts)

    sent = await call(GzipMiddleware(app), http_scope(headers=GZIP))

    response = headers_of(sent)
    assert response["content-encoding"] == "gzip" and "content-length" not in response
    assert response["etag"] == 'W/"v1"'
    bodies = [m["body"] for m in sent[1:]]
    assert len(bodies) == len(parts)
    reader = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert [reader.decompress(body) for body in bodies] == parts  # every part readable as soon as it arrives
    assert reader.eof


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (200, [*JSON, (b"content-encoding", b"br")]),
        (200, [*JSON, (b"cache-control", b"no-transform")]),
        (200, [(b"content-type", b"image/png")]),
        (204, JSON),
    ],
    ids=["encoded", "no-transform", "png", "204"],
)
async def test_responses_that_must_not_be_compressed(status, headers):
    app, _ = responder(status, headers, parts=[BIG])

    sent = await call(GzipMiddleware(app), http_scope(headers=GZIP))

    assert body_of(sent) == BIG
    assert headers_of(sent).get("content-encoding") in {None, "br"}
