"""The benchmark's load generator: keep-alive HTTP/1.1 connections on asyncio + httptools, parsing SSE.

Every request is checked, not only timed: a non-stream answer must be a 200 with the expected content, a stream
must be a 200 whose ``data:`` frames carry every token and end with ``data: [DONE]``, with no ``error`` frame.
Anything else counts as an error, with its reason kept for the report.

Tokens are counted from the content itself (the fake upstream's token is ``"tok "``), so a gateway that merges
several tokens into one chunk is credited with what it delivered, no more.
"""

import asyncio
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import cast

import httptools
import msgspec

from tests.bench.upstream import TOKEN

__all__ = ["Outcome", "Run", "Target", "closed_loop", "crowd", "request_body"]

PROMPT = (
    "You are benchmarking an LLM gateway. Summarise the following in one short sentence: the quick brown fox "
    "jumps over the lazy dog while the five boxing wizards jump quickly and a wizard's job is to vex chumps."
)


def request_body(model: str, stream: bool, max_tokens: int) -> bytes:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return msgspec.json.encode(body)


@dataclass(frozen=True)
class Target:
    """Where to send the load: a base URL ending before ``/chat/completions``, a key and a model name."""

    name: str
    base_url: str
    key: str
    model: str = "gpt-4o-mini"

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urllib.parse.urlsplit(self.base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    def request(self, stream: bool, max_tokens: int) -> bytes:
        path = urllib.parse.urlsplit(self.base_url).path.rstrip("/") + "/chat/completions"
        body = request_body(self.model, stream, max_tokens)
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {self.key}\r\ncontent-length: {len(body)}\r\n"
            f"accept: {'text/event-stream' if stream else 'application/json'}\r\n\r\n"
        )
        return head.encode() + body


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []
    error: dict[str, object] | None = None


class _Message(msgspec.Struct):
    content: str | None = None


class _AnswerChoice(msgspec.Struct):
    message: _Message


class _Answer(msgspec.Struct):
    choices: list[_AnswerChoice]


_decode_chunk = msgspec.json.Decoder(_Chunk).decode
_decode_answer = msgspec.json.Decoder(_Answer).decode


@dataclass
class Outcome:
    """One request as the client saw it; times in seconds from sending the request."""

    latency: float = 0.0
    ttft: float | None = None
    tokens: int = 0
    error: str | None = None


class _Exchange:
    """Parses one response (status, body, SSE frames) into an Outcome."""

    def __init__(self, stream: bool, expect: int, sent: float) -> None:
        self.stream, self.expect, self.sent = stream, expect, sent
        self.outcome = Outcome()
        self.status = 0
        self.buffer = b""
        self.done = False
        self.body: list[bytes] = []

    def feed(self, data: bytes) -> None:
        if not self.stream or self.status != 200:
            self.body.append(data)
            return
        self.buffer += data
        if b"\n\n" not in self.buffer:
            return
        *frames, self.buffer = self.buffer.replace(b"\r\n", b"\n").split(b"\n\n")
        for frame in frames:
            for line in frame.split(b"\n"):
                if line.startswith(b"data:"):
                    self._data(line[5:].strip())

    def _data(self, payload: bytes) -> None:
        if payload == b"[DONE]":
            self.done = True
            return
        try:
            chunk = _decode_chunk(payload)
        except msgspec.DecodeError as exc:
            self.outcome.error = self.outcome.error or f"bad chunk: {exc}"
            return
        if chunk.error is not None:
            self.outcome.error = f"error frame: {chunk.error.get('message')}"
        for choice in chunk.choices:
            content = choice.delta.content if choice.delta else None
            if content:
                if self.outcome.ttft is None:
                    self.outcome.ttft = time.perf_counter() - self.sent
                self.outcome.tokens += content.count(TOKEN)

    def finish(self) -> Outcome:
        outcome = self.outcome
        outcome.latency = time.perf_counter() - self.sent
        if self.status != 200:
            outcome.error = f"HTTP {self.status}: {b''.join(self.body)[:200]!r}"
        elif not self.stream:
            try:
                answer = _decode_answer(b"".join(self.body))
                outcome.tokens = (answer.choices[0].message.content or "").count(TOKEN)
            except (msgspec.DecodeError, IndexError) as exc:
                outcome.error = f"bad body: {exc}"
        elif not self.done and outcome.error is None:
            outcome.error = "stream ended without [DONE]"
        if outcome.error is None and outcome.tokens != self.expect:
            outcome.error = f"{outcome.tokens} tokens, expected {self.expect}"
        return outcome


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.exchange: _Exchange | None = None
        self.waiter: asyncio.Future[Outcome] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"bad HTTP: {exc}")

    def on_headers_complete(self) -> None:
        if self.exchange is not None:
            self.exchange.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange.feed(body)

    def on_message_complete(self) -> None:
        if self.exchange is not None and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.exchange.finish())
        if not self.parser.should_keep_alive() and self.transport is not None:
            self.transport.close()
            self.closed = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(f"connection lost: {exc or 'closed by peer'}")

    def _fail(self, reason: str) -> None:
        if self.waiter is not None and not self.waiter.done():
            outcome = self.exchange.outcome if self.exchange else Outcome()
            outcome.error = reason
            outcome.latency = time.perf_counter() - (self.exchange.sent if self.exchange else 0.0)
            self.waiter.set_result(outcome)
        if self.transport is not None:
            self.transport.close()
        self.closed = True

    async def send(self, request: bytes, stream: bool, expect: int) -> Outcome:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.exchange = _Exchange(stream, expect, time.perf_counter())
        self.transport.write(request)
        return await self.waiter


async def _connect(target: Target) -> _Connection:
    _, protocol = await asyncio.get_running_loop().create_connection(_Connection, target.host, target.port)
    return protocol


@dataclass
class Run:
    """The outcomes of one measured window and its wall time."""

    outcomes: list[Outcome] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is None]

    @property
    def errors(self) -> list[str]:
        return [o.error for o in self.outcomes if o.error is not None]


async def _one(target: Target, request: bytes, stream: bool, expect: int) -> Outcome:
    """One request on a connection of its own, closed afterwards."""
    try:
        conn = await _connect(target)
    except OSError as exc:
        return Outcome(error=f"connect: {exc}")
    try:
        return await conn.send(request, stream, expect)
    finally:
        if conn.transport is not None:
            conn.transport.close()


async def closed_loop(
    target: Target,
    concurrency: int,
    duration: float,
    stream: bool,
    tokens: int,
    max_tokens: int = 256,
    ramp: float = 0.0,
) -> Run:
    """``concurrency`` clients, each sending its next request as soon as the last one is answered, for
    ``duration`` seconds; requests still running at the end are awaited and counted.

    ``ramp`` > 0 starts the clients one by one, evenly over ``ramp`` seconds, as independent users arrive,
    and counts only the requests sent after the last one started (``duration`` runs from then). Without it
    every client starts in the same instant, and with equally long answers they stay in step: each round
    is then a burst of ``concurrency`` requests at once, which the crowd scenario measures on its own."""
    request = target.request(stream, max_tokens)
    run = Run()
    start = time.perf_counter() + ramp
    deadline = start + duration

    async def client(index: int) -> None:
        await asyncio.sleep(ramp * index / concurrency)
        conn: _Connection | None = None
        while time.perf_counter() < deadline:
            counted = time.perf_counter() >= start
            try:
                if conn is None or conn.closed:
                    conn = await _connect(target)
                outcome = await conn.send(request, stream, tokens)
            except OSError as exc:
                outcome = Outcome(error=f"connect: {exc}")
                await asyncio.sleep(0.05)
            if counted:
                run.outcomes.append(outcome)
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    await asyncio.gather(*(client(index) for index in range(concurrency)))
    # staggered clients send their last counted request at any point of the window, so the window, not the
    # wait for the last answer, is the time the counted work fills
    run.elapsed = duration if ramp else time.perf_counter() - start
    return run


async def crowd(target: Target, streams: int, tokens: int, timeout: float) -> Run:
    """``streams`` streaming requests at once, each on its own connection; all must finish within ``timeout``."""
    request = target.request(True, 256)
    run = Run()
    start = time.perf_counter()

    async def one() -> None:
        try:
            async with asyncio.timeout(timeout):
                outcome = await _one(target, request, True, tokens)
        except TimeoutError:
            outcome = Outcome(error=f"not finished within {timeout:.0f} s")
        run.outcomes.append(outcome)

    await asyncio.gather(*(one() for _ in range(streams)))
    run.elapsed = time.perf_counter() - start
    return run
