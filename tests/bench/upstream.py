"""A fast fake OpenAI-compatible upstream for the benchmark.

``POST /v1/chat/completions`` answers in OpenAI's exact shapes: a ``chat.completion`` body, or an SSE stream of
``chat.completion.chunk`` frames (chunked transfer encoding, as OpenAI sends it) with a final usage chunk when
``stream_options.include_usage`` asks for one, then ``data: [DONE]``. ``GET /v1/models`` lists the one model.

How long an answer is and how fast it comes are the server's settings, changed between scenarios with
``PUT /_bench/config {"tokens": 200, "delay": 0.02}``: each answer has ``tokens`` content tokens, and a stream
sends one every ``delay`` seconds (0 = as fast as the socket takes them). Each paced stream keeps its own
schedule, as a provider generating for that request does: token k is due k x ``delay`` after the request
arrived. (One ticker for all streams would end every stream in the same instant, so a closed loop would
replay a thundering herd of requests at each tick, and a gateway's added time to first token would read as
whole ticks.) Streams due in the same millisecond share one timer, so thousands of them cost at most a
timer per millisecond.

It is a bare asyncio protocol on httptools: the point is to cost the load far less than any gateway does.
Every token's text is different (``"tok 0 "``, ``"tok 1 "``, ...): a gateway that guards against a model
repeating itself (LiteLLM aborts a stream whose last 100 chunks are identical) must see an ordinary answer.
Each text holds ``TOKEN`` exactly once, which is what the load generator counts. The frames are encoded once
per model and length, so varying them costs nothing per request.

Run it with ``python -m tests.bench.upstream --port N``.
"""

import argparse
import asyncio
import contextlib
import math
import time
from typing import Any, cast

import httptools
import msgspec
import uvloop

__all__ = ["UpstreamConfig", "main"]


class UpstreamConfig(msgspec.Struct):
    tokens: int = 16
    delay: float = 0.0


class _StreamOptions(msgspec.Struct):
    include_usage: bool = False


class _Request(msgspec.Struct):
    model: str = "gpt-4o-mini"
    stream: bool = False
    stream_options: _StreamOptions | None = None


_decode_request = msgspec.json.Decoder(_Request).decode
_encode = msgspec.json.encode
CREATED = 1_700_000_000
#: the marker every token's text holds exactly once (the load generator counts it)
TOKEN = "tok "


def token_text(index: int) -> str:
    """The text of the answer's token ``index``: no two tokens of an answer are the same."""
    return f"{TOKEN}{index} "


def _chunk(model: str, delta: dict[str, Any], finish: str | None, usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": None,
        "choices": [] if usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    frame = b"data: " + _encode(body) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(frame), frame)


class _Frames:
    """The pre-encoded chunked frames of one streamed answer (cached per model and settings)."""

    def __init__(self, model: str, tokens: int) -> None:
        usage = {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens}
        self.first = _chunk(model, {"role": "assistant", "content": ""}, None)
        self.tokens = [_chunk(model, {"content": token_text(index)}, None) for index in range(tokens)]
        self.text = "".join(token_text(index) for index in range(tokens))  # the non-stream answer's content
        self.stop = _chunk(model, {}, "stop")
        self.usage = _chunk(model, {}, None, usage)
        self.done = b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)


#: paced tokens are sent on the first millisecond tick at or after they are due (never early)
RESOLUTION = 0.001


class _Paced:
    __slots__ = ("delay", "due", "frames", "sent", "transport", "usage")

    def __init__(self, transport: asyncio.Transport, frames: _Frames, usage: bool, delay: float) -> None:
        self.transport = transport
        self.frames = frames
        self.sent = 0
        self.usage = usage
        self.delay = delay
        self.due = asyncio.get_running_loop().time() + delay


class Upstream:
    def __init__(self) -> None:
        self.config = UpstreamConfig()
        self._frames: dict[tuple[str, int], _Frames] = {}
        self._slots: dict[int, list[_Paced]] = {}  # millisecond tick -> the paced streams due then
        self.requests = 0

    def frames(self, model: str) -> _Frames:
        key = (model, self.config.tokens)
        found = self._frames.get(key)
        if found is None:
            found = self._frames[key] = _Frames(model, self.config.tokens)
        return found

    def answer(self, transport: asyncio.Transport, method: bytes, path: bytes, body: bytes, keep: bool) -> None:
        self.requests += 1
        if path == b"/_bench/config" and method == b"PUT":
            self.config = msgspec.json.decode(body, type=UpstreamConfig)
            _respond(transport, 200, _encode(self.config), keep)
        elif path == b"/v1/models":
            models = {
                "object": "list",
                "data": [{"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "b"}],
            }
            _respond(transport, 200, _encode(models), keep)
        elif path == b"/v1/chat/completions" and method == b"POST":
            try:
                request = _decode_request(body)
            except msgspec.DecodeError as exc:
                error = {"error": {"message": str(exc), "type": "invalid_request_error", "param": None, "code": None}}
                _respond(transport, 400, _encode(error), keep)
                return
            if request.stream:
                self._stream(transport, request)
            else:
                _respond(transport, 200, self._completion(request.model), keep)
        else:
            _respond(transport, 404, b'{"error":{"message":"not found","type":"invalid_request_error"}}', keep)

    def _completion(self, model: str) -> bytes:
        tokens = self.config.tokens
        text = self.frames(model).text
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens},
        }
        return _encode(body)

    def _stream(self, transport: asyncio.Transport, request: _Request) -> None:
        frames = self.frames(request.model)
        usage = bool(request.stream_options and request.stream_options.include_usage)
        transport.write(SSE_HEAD + frames.first)
        if self.config.delay > 0 and frames.tokens:
            self._schedule(_Paced(transport, frames, usage, self.config.delay))
            return
        for token in frames.tokens:  # one write per token, as a real server sends them
            transport.write(token)
        _finish(transport, frames, usage)

    def _schedule(self, paced: _Paced) -> None:
        tick = math.ceil(paced.due / RESOLUTION)
        due = self._slots.get(tick)
        if due is None:
            self._slots[tick] = [paced]
            asyncio.get_running_loop().call_at(tick * RESOLUTION, self._send_due, tick)
        else:
            due.append(paced)

    def _send_due(self, tick: int) -> None:
        """Send the next token of every stream due at ``tick``; schedule each one's next token from its own
        schedule (not from now), so a late tick does not make a stream drift."""
        for paced in self._slots.pop(tick, []):
            if paced.transport.is_closing():
                continue
            paced.transport.write(paced.frames.tokens[paced.sent])
            paced.sent += 1
            if paced.sent < len(paced.frames.tokens):
                paced.due += paced.delay
                self._schedule(paced)
            else:
                _finish(paced.transport, paced.frames, paced.usage)


def _finish(transport: asyncio.Transport, frames: _Frames, usage: bool) -> None:
    transport.write(frames.stop + frames.usage + frames.done if usage else frames.stop + frames.done)


_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}


def _respond(transport: asyncio.Transport, status: int, body: bytes, keep: bool) -> None:
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
        status,
        _REASONS[status],
        len(body),
    )
    transport.write(head + (b"\r\n" if keep else b"connection: close\r\n\r\n") + body)
    if not keep:
        transport.close()


class _Connection(asyncio.Protocol):
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        path = self.url.split(b"?", 1)[0]
        body = b"".join(self.body)
        self.url, self.body = b"", []
        self.upstream.answer(
            self.transport, self.parser.get_method(), path, body, bool(self.parser.should_keep_alive())
        )


async def serve(port: int, ready: asyncio.Event | None = None) -> None:
    upstream = Upstream()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(upstream), "127.0.0.1", port, backlog=4096)
    print(f"fake upstream listening on http://127.0.0.1:{port}/v1 ({time.strftime('%H:%M:%S')})", flush=True)
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="the benchmark's fake OpenAI-compatible upstream")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
