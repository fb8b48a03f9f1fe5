import gzip
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar, get
from litestar.background_tasks import BackgroundTask
from litestar.response import Stream

from services.api.compression import GzipMiddleware
from services.api.middleware import HeadMiddleware, RequestIdMiddleware, add_vary
from tests.unit.api.asgi import body_of, call, headers_of, http_scope

pytestmark = pytest.mark.anyio

BIG: dict[str, object] = {"data": [{"id": f"model-{n}", "object": "model"} for n in range(40)]}


def _app(produced: list[str]) -> Litestar:
    @get("/v1/models", sync_to_thread=False)
    def models() -> dict[str, object]:
        produced.append("models")
        return BIG

    @get("/v1/streams/job-1", sync_to_thread=False)
    def resume() -> Stream:
        async def relay() -> AsyncIterator[bytes]:
            produced.append("relay started")
            yield b"data: 1\n\n"

        async def after() -> None:
            produced.append("background task")

        return Stream(
            relay(),
            media_type="text/event-stream",
            headers={"x-conduit-job-id": "job-1"},
            background=BackgroundTask(after),
        )

    app = Litestar([models, resume], middleware=[RequestIdMiddleware])
    app.asgi_handler = HeadMiddleware(GzipMiddleware(app.asgi_handler))  # as create_app wraps it
    return app


async def test_head_is_the_get_without_its_body():
    produced: list[str] = []
    app = _app(produced)

    got = await call(app, http_scope("GET", "/v1/models", {"accept-encoding": "gzip"}))
    head = await call(app, http_scope("HEAD", "/v1/models", {"accept-encoding": "gzip"}))

    assert head[0]["status"] == got[0]["status"] == 200
    without_id = {name: value for name, value in headers_of(got).items() if name != "x-request-id"}
    assert {name: value for name, value in headers_of(head).items() if name != "x-request-id"} == without_id
    assert without_id["content-encoding"] == "gzip"  # the compressed GET's length, not the plain body's
    assert int(without_id["content-length"]) == len(body_of(got)) and gzip.decompress(body_of(got))
    assert body_of(head) == b""
    assert [m["type"] for m in head] == ["http.response.start", "http.response.body"]


async def test_head_on_a_stream_answers_headers_without_starting_its_body():
    produced: list[str] = []

    head = await call(_app(produced), http_scope("HEAD", "/v1/streams/job-1"))

    assert head[0]["status"] == 200
    assert headers_of(head)["x-conduit-job-id"] == "job-1"
    assert headers_of(head)["content-type"].startswith("text/event-stream")
    assert body_of(head) == b""
    assert produced == []  # neither the relay nor the response's background task ran


async def test_head_keeps_errors_and_unknown_paths():
    app = _app([])

    assert (await call(app, http_scope("HEAD", "/nope")))[0]["status"] == 404
    assert body_of(await call(app, http_scope("HEAD", "/nope"))) == b""


def test_add_vary_merges_into_one_header():
    assert add_vary([], b"Origin") == [(b"vary", b"Origin")]
    assert add_vary([(b"Vary", b"Accept-Encoding")], b"Origin") == [(b"vary", b"Accept-Encoding, Origin")]
    assert add_vary([(b"vary", b"origin")], b"Origin") == [(b"vary", b"origin")]
    assert add_vary([(b"vary", b"*")], b"Origin") == [(b"vary", b"*")]
