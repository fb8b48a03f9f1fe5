"""Serving the app with uvicorn, with a graceful stop that never cuts a stream short without a terminal frame.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections and waits for the open ones; Conduit's relays
get ``shutdown_grace`` seconds to finish (``Drain``), then each open stream ends with a retryable error
event and its job runs on, so the client can resume it elsewhere. Uvicorn's own timeout comes after that,
so it never has to cut a response in the middle.

HTTP that the parser refuses before the app sees a request (a bare CR or a folded line in a header, a bad
chunk size, both ``Content-Length`` and chunked) is answered by the protocol itself: here in JSON, in the
error shape of the path's dialect when the path was read, and the connection closed. The request line and
headers together are bounded by ``max_header_bytes`` (a 414 or a 431), which uvicorn's httptools protocol
does not bound by itself.
"""

from http import HTTPStatus
from typing import Any, ClassVar

import uvicorn
from litestar import Litestar
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.api.connections import connection_limits, limited_protocol
from services.api.dialects.ai import errors as ai_errors
from services.api.dialects.openai import errors as openai_errors
from services.api.errors import ErrorRenderer, GatewayProblem
from services.api.relay.events import Drain
from services.api.settings import ApiSettings
from shared.errors import ErrorCode

__all__ = ["JsonErrorsProtocol", "serve"]

#: as ``create_app`` registers them: the AI dialect's shape under its prefix, OpenAI's elsewhere
_RENDERERS: tuple[tuple[bytes, ErrorRenderer], ...] = ((b"/api/ai/", ai_errors.render_error),)
_MESSAGES = {
    HTTPStatus.BAD_REQUEST: "The HTTP request is malformed (its request line, a header or its body framing).",
    HTTPStatus.REQUEST_URI_TOO_LONG: "The request line is longer than the {limit} bytes accepted.",
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: "The request's headers are longer than the {limit} bytes accepted.",
}


class _HeadTooLargeError(Exception):
    pass


class JsonErrorsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with its early refusals in JSON and a bound on a request's head."""

    max_head: ClassVar[int] = 65_536

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head = 0
        self._refusal = HTTPStatus.BAD_REQUEST

    def _count(self, size: int, status: HTTPStatus) -> None:
        self._head += size
        if self._head > self.max_head:
            self._refusal = status
            raise _HeadTooLargeError  # the parser stops, and uvicorn answers with send_400_response

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count(len(url), HTTPStatus.REQUEST_URI_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count(len(name) + len(value) + 4, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)

    def send_400_response(self, msg: str) -> None:
        status = getattr(self, "_refusal", HTTPStatus.BAD_REQUEST)
        path = getattr(self, "url", b"")  # as much of it as was read (origin-form: the path comes first)
        render = next((r for prefix, r in _RENDERERS if path.startswith(prefix)), openai_errors.render_error)
        code = ErrorCode.INVALID_REQUEST if status == HTTPStatus.BAD_REQUEST else ErrorCode.REQUEST_TOO_LARGE
        message = _MESSAGES[status].format(limit=self.max_head)
        body = render(GatewayProblem(status=status, code=code, message=message))
        content = [b"HTTP/1.1 %d %s\r\n" % (status, status.phrase.encode())]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: Drain, grace: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._grace = grace

    def handle_exit(self, sig: int, frame: Any) -> None:
        self._drain.begin(self._grace)
        super().handle_exit(sig, frame)


def serve(app: Litestar, settings: ApiSettings, *, quiet: bool = False) -> None:
    protocol = type("JsonErrorsProtocol", (JsonErrorsProtocol,), {"max_head": settings.max_header_bytes})
    protocol = limited_protocol(connection_limits(settings), protocol)  # read deadlines, connection cap
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=protocol,
        ws="none",  # Conduit serves no WebSocket: an Upgrade request is answered as plain HTTP, in JSON
        log_level="warning" if quiet else "info",
        # JSON lines: uvicorn's loggers go through the root's handler, and the access lines are the API's own
        # (``conduit.access``: the route template, the request and job ids, the duration)
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        access_log=not quiet and settings.log_format != "json",
        timeout_graceful_shutdown=int(settings.shutdown_grace) + 5,
        server_header=False,
    )
    _Server(config, app.state.drain, settings.shutdown_grace).run()
