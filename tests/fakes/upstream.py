"""A scriptable fake LLM provider (OpenAI, Anthropic, Gemini) served on loopback: the one place fakes are allowed.

    with FakeUpstream() as fake:
        fake.push(Fail(429, retry_after=2), provider="openai")   # the next OpenAI request gets a real-shaped 429
        fake.push(Stall(after=2, seconds=10))                     # the one after stalls mid-stream
        ... point the gateway at fake.openai_base_url / anthropic_base_url / gemini_base_url ...
        assert fake.wait_for_disconnect() is not None             # the gateway hung up on the stall

Only generation routes take a queued behaviour, and only once auth and body checks passed (as the real APIs
check those first). A "piece" is one streamed token or tool-argument fragment. The instance is itself an ASGI app,
so it also runs under `httpx.ASGITransport` (which buffers whole responses). Wire bytes: `upstream_formats.py`.
"""

import asyncio
import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NoReturn, Self
from urllib.parse import parse_qsl

import msgspec
import uvicorn

from tests.fakes import upstream_formats as fmt
from tests.fakes.upstream_formats import Plan, ToolCall

Provider = fmt.Provider  # "openai" | "anthropic" | "gemini"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_KEYS: dict[str, str] = {"openai": "sk-test-openai", "anthropic": "sk-ant-test", "gemini": "AIza-test-gemini"}
MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo-instruct")
_GEMINI_PATH = re.compile(r"^/v1(?:beta)?/models/([^/:]+):(generateContent|streamGenerateContent)$")
_ROUTES: dict[tuple[str, str], tuple[Provider, str]] = {
    ("POST", "/v1/chat/completions"): ("openai", "chat"),
    ("POST", "/v1/completions"): ("openai", "text"),
    ("GET", "/v1/models"): ("openai", "models"),
    ("POST", "/v1/messages"): ("anthropic", "messages"),
}
_OVERLOADED = {"openai": 500, "anthropic": 529, "gemini": 503}  # MidStreamError on a non-streaming request
_BODIES = {"chat": fmt.openai_chat_body, "text": fmt.openai_text_body, "messages": fmt.anthropic_body}
_STREAMS = {"chat": fmt.openai_chat_stream, "text": fmt.openai_text_stream, "messages": fmt.anthropic_stream}
_BODIES |= dict.fromkeys(("generateContent", "streamGenerateContent"), fmt.gemini_body)
_STREAMS |= dict.fromkeys(("generateContent", "streamGenerateContent"), fmt.gemini_stream)


class Reply(msgspec.Struct, frozen=True):
    """A normal answer. `finish` uses OpenAI's vocabulary; each provider expresses it in its own."""

    text: str | None = None  # default "Hello from the fake {provider}!" (empty when tool_calls are given)
    tokens: list[str] | None = None  # explicit pieces; overrides `text`
    delay: float = 0.0  # seconds before each streamed piece (non-streaming: their sum, before the body)
    finish: str = "stop"  # "tool_calls" is implied by tool_calls
    tool_calls: list[ToolCall] | None = None  # [(name, arguments)]
    prompt_tokens: int | None = None  # default: words in the prompt + 3


class Fail(msgspec.Struct, frozen=True):
    """An HTTP error in the provider's exact envelope; `code` overrides OpenAI code / Anthropic type / Gemini reason."""

    status: int
    message: str | None = None
    retry_after: float | None = None  # `retry-after` header (and a Gemini RetryInfo detail)
    code: str | None = None


class DropAfter(msgspec.Struct, frozen=True):
    """Stream `tokens` pieces, then abort the TCP connection mid-body (the client sees an incomplete chunked body)."""

    tokens: int
    reply: Reply | None = None


class Stall(msgspec.Struct, frozen=True):
    """Stream `after` pieces, go silent for `seconds` (ending early, recorded, if the client hangs up), then finish."""

    after: int = 0
    seconds: float = 30.0
    reply: Reply | None = None


class Garbage(msgspec.Struct, frozen=True):
    """Stream `after` pieces, then a `data: {not json` frame, then end the response (non-streaming: a bad body)."""

    after: int = 1
    reply: Reply | None = None


class Truncate(msgspec.Struct, frozen=True):
    """Stream `after` pieces, then end the response cleanly without the provider's end markers."""

    after: int = 2
    reply: Reply | None = None


class MidStreamError(msgspec.Struct, frozen=True):
    """Stream `after` pieces, then the provider's in-band error frame (non-streaming: an overloaded status)."""

    after: int = 1
    message: str = "Overloaded"
    reply: Reply | None = None


class SplitUtf8(msgspec.Struct, frozen=True):
    """A normal stream, each piece written in two parts cut inside its first multi-byte character, a moment
    apart (so they arrive in separate reads)."""

    reply: Reply | None = None
    gap: float = 0.02


Behaviour = Reply | Fail | DropAfter | Stall | Garbage | Truncate | MidStreamError | SplitUtf8


@dataclass
class Recorded:
    provider: Provider
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None
    started: float = field(default_factory=time.monotonic)
    disconnected: float | None = None  # monotonic time the client hung up before the response finished
    completed: bool = False  # the whole response was sent


class _DropConnectionError(Exception):
    """Raised inside the app so that uvicorn closes the socket mid-response."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _DropConnectionError))


class _Exchange:
    """One request/response: sends ASGI messages and watches `receive()` for the client hanging up."""

    def __init__(self, receive: Receive, send: Send, rec: Recorded, changed: Callable[[], None], route: str) -> None:
        self._receive, self._send, self.rec, self._changed = receive, send, rec, changed
        self.provider, self.route, self.model, self.seq = rec.provider, route, "", 0  # model: Gemini's path model
        self.gone = asyncio.Event()
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not self.rec.completed:
            self.rec.disconnected = time.monotonic()
            self._changed()
        self.gone.set()

    @property
    def rid(self) -> str:
        return f"req_fake{self.seq:020d}"

    def headers(self, sse: bool = False) -> list[tuple[bytes, bytes]]:
        return fmt.response_headers(self.provider, self.rid, sse)

    async def start(self, status: int, sse: bool = False) -> None:
        await self._send({"type": "http.response.start", "status": status, "headers": self.headers(sse)})

    async def write(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def finish(self, data: bytes = b"") -> None:
        await asyncio.sleep(0)  # let the watcher record a hang-up that already happened
        if self.gone.is_set():
            return
        self.rec.completed = True
        await self._send({"type": "http.response.body", "body": data, "more_body": False})
        self._changed()

    async def respond(self, status: int, body: bytes, retry_after: float | None = None) -> None:
        headers = [*self.headers(), (b"content-length", str(len(body)).encode())]
        if retry_after is not None:
            headers.append((b"retry-after", f"{retry_after:g}".encode()))
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self.finish(body)

    async def error(self, status: int, message: str, code: str | None = None, **extra: Any) -> None:
        body = fmt.error_body(self.provider, status, message, code, request_id=self.rid, **extra)
        await self.respond(status, body, extra.get("retry_after"))

    async def wait_gone(self, seconds: float) -> bool:
        """Sleep up to `seconds`, returning early (True) if the client hangs up."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gone.wait(), seconds)
        return self.gone.is_set()

    async def send_steps(self, steps: list[bytes], delay: float) -> bool:
        """Write each step (after `delay`); False as soon as the client is gone."""
        for step in steps:
            if delay:
                await asyncio.sleep(delay)
            if self.gone.is_set():
                return False
            await self.write(step)
        return not self.gone.is_set()

    def abort(self) -> NoReturn:
        self._watcher.cancel()
        raise _DropConnectionError

    def close(self) -> None:
        self._watcher.cancel()


def _searched(provider: Provider, body: dict[str, Any]) -> bool:
    """Whether the request asks for the provider's web search (OpenAI's web_search_options, Gemini's googleSearch
    tool, Anthropic's web_search server tool)."""
    if provider == "openai":
        return "web_search_options" in body
    tools = body.get("tools") or []
    if provider == "gemini":
        return any(isinstance(tool, dict) and "googleSearch" in tool for tool in tools)
    return any(isinstance(tool, dict) and str(tool.get("type", "")).startswith("web_search_") for tool in tools)


def _choices(provider: Provider, body: dict[str, Any], legacy: bool) -> int:
    """How many answers the request asks for: OpenAI chat's ``n``, Gemini's ``candidateCount``."""
    if provider == "openai" and not legacy:
        asked = body.get("n")
    elif provider == "gemini":
        asked = (body.get("generationConfig") or {}).get("candidateCount")
    else:
        asked = None
    return asked if isinstance(asked, int) and asked > 1 else 1


def _thinking(provider: Provider, body: dict[str, Any]) -> tuple[bool, bool]:
    """(whether the request asks the model to think, whether its thoughts come back): OpenAI's ``reasoning_effort``
    (never shown), Anthropic's ``thinking`` (shown), Gemini's ``thinkingBudget`` (shown with ``includeThoughts``)."""
    if provider == "openai":
        return body.get("reasoning_effort") not in (None, "none"), False
    if provider == "anthropic":
        return (body.get("thinking") or {}).get("type") == "enabled", True
    config = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
    # Google reads a proto field by its JSON name or its own (google-genai sends these as thinking_budget, ...)
    budget = config.get("thinkingBudget", config.get("thinking_budget"))
    return budget not in (None, 0), config.get("includeThoughts", config.get("include_thoughts")) is True


def _one_call(provider: Provider, body: dict[str, Any]) -> bool:
    """Whether the request allows one tool call only (OpenAI's ``parallel_tool_calls: false``, Anthropic's
    ``disable_parallel_tool_use``); Gemini has no such switch."""
    if provider == "openai":
        return body.get("parallel_tool_calls") is False
    choice = body.get("tool_choice")
    return provider == "anthropic" and isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True


def _route(method: str, path: str, headers: Mapping[str, str]) -> tuple[Provider, str, str]:
    """(provider, route name or "" when unknown, Gemini path model or "")."""
    if gemini := _GEMINI_PATH.match(path):
        return "gemini", gemini[2] if method == "POST" else "", gemini[1]
    if (method, path) in _ROUTES:
        return (*_ROUTES[method, path], "")
    if path.startswith("/v1beta"):
        return "gemini", "", ""
    return ("anthropic" if "anthropic-version" in headers or "x-api-key" in headers else "openai"), "", ""


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while (message := await receive())["type"] == "http.request":
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _split_inside_a_character(data: bytes) -> list[bytes]:
    """``data`` in two parts, the cut after the first byte of its first multi-byte UTF-8 character."""
    cut = next((i + 1 for i, byte in enumerate(data) if byte >= 0xC0), 0)
    return [data[:cut], data[cut:]] if 0 < cut < len(data) else [data]


class FakeUpstream:
    """Serves all three providers on one loopback port from a daemon thread; records every request."""

    def __init__(self, keys: Mapping[str, str] | None = None, *, created: int | None = None, port: int = 0) -> None:
        self.keys: dict[str, str] = {**DEFAULT_KEYS, **(keys or {})}
        self.created = created  # a fixed `created`/Unix time for byte-stable bodies; default: now
        self.requests: list[Recorded] = []
        self._port = port
        self._script: list[tuple[Provider | None, Behaviour]] = []
        self._cond = threading.Condition()
        self._seq = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        uvicorn_log = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, _QuietDrops) for f in uvicorn_log.filters):
            uvicorn_log.addFilter(_QuietDrops())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self._port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        quiet: dict[str, Any] = {"log_config": None, "log_level": "warning", "access_log": False}
        config = uvicorn.Config(self, interface="asgi3", lifespan="off", timeout_graceful_shutdown=1, **quiet)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("fake upstream failed to start")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(5)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(5)
        self._server = self._thread = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def gemini_base_url(self) -> str:
        return self.url

    def push(self, behaviour: Behaviour, provider: Provider | None = None) -> None:
        """Queue `behaviour` for the next generation request (of `provider` only, if given); first in, first out."""
        with self._cond:
            self._script.append((provider, behaviour))

    @property
    def pending(self) -> int:
        """Behaviours queued and not yet consumed."""
        return len(self._script)

    def reset(self) -> None:
        with self._cond:
            self._script.clear()
            self.requests.clear()

    def wait_for_requests(self, count: int = 1, timeout: float = 5.0) -> list[Recorded]:
        """Block until at least `count` requests were recorded; TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"fake upstream saw {len(self.requests)} requests, expected {count}")
            return list(self.requests)

    def wait_for_disconnect(self, index: int = -1, timeout: float = 5.0) -> float | None:
        """When request `index` saw its client hang up (monotonic), waiting up to `timeout`; None if it did not."""

        def disconnected() -> float | None:
            return self.requests[index].disconnected if -len(self.requests) <= index < len(self.requests) else None

        with self._cond:
            self._cond.wait_for(lambda: disconnected() is not None, timeout)
            return disconnected()

    def _changed(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _next(self, provider: Provider) -> Behaviour:
        with self._cond:
            for i, (only, behaviour) in enumerate(self._script):
                if only in {None, provider}:
                    del self._script[i]
                    return behaviour
        return Reply()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = await _read_body(receive)
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        provider, route, model = _route(scope["method"], scope["path"], headers)
        try:
            body = msgspec.json.decode(raw) if raw else None
        except msgspec.DecodeError:
            body = None
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        rec = Recorded(provider, scope["method"], scope["path"], query, headers, body)
        ex = _Exchange(receive, send, rec, self._changed, route)
        with self._cond:
            self._seq += 1
            ex.seq, ex.model = self._seq, model
            self.requests.append(rec)
            self._cond.notify_all()
        try:
            await self._handle(ex)
        finally:
            ex.close()

    async def _handle(self, ex: _Exchange) -> None:
        rec, provider = ex.rec, ex.provider
        body = rec.body if isinstance(rec.body, dict) else {}
        if not ex.route:
            await ex.error(404, f"Invalid URL ({rec.method} {rec.path})" if provider == "openai" else "Not Found")
        elif denied := fmt.auth_error(provider, self.keys[provider], rec.headers, rec.query):
            await ex.error(*denied)
        elif ex.route == "models":
            data = [{"id": m, "object": "model", "created": 1721172741, "owned_by": "system"} for m in MODELS]
            await ex.respond(200, msgspec.json.encode({"object": "list", "data": data}))
        elif not isinstance(rec.body, dict):
            await ex.error(400, "We could not parse the JSON body of your request.")
        elif missing := fmt.missing_field(provider, body, legacy=ex.route == "text"):
            await ex.error(400, f"Missing required parameter: '{missing}'.", param=missing)
        elif ex.route == "streamGenerateContent" and rec.query.get("alt") != "sse":
            await ex.error(400, "the fake upstream streams streamGenerateContent only with alt=sse")
        else:
            behaviour = self._next(provider)
            if isinstance(behaviour, Fail):
                message = behaviour.message or fmt.default_message(behaviour.status)
                await ex.error(behaviour.status, message, behaviour.code, retry_after=behaviour.retry_after)
                return
            reply = behaviour if isinstance(behaviour, Reply) else behaviour.reply or Reply()
            plan = self._plan(ex, body, reply)
            if ex.route == "streamGenerateContent" or (provider != "gemini" and body.get("stream") is True):
                await self._stream(ex, plan, behaviour, reply.delay)
            else:
                await self._respond(ex, plan, behaviour, reply.delay)

    def _plan(self, ex: _Exchange, body: dict[str, Any], reply: Reply) -> Plan:
        provider, legacy = ex.provider, ex.route == "text"
        tool_calls = [] if legacy else list(reply.tool_calls or [])
        if _one_call(provider, body):
            tool_calls = tool_calls[:1]
        if reply.tokens is not None:
            tokens = list(reply.tokens)
        else:
            default = "" if tool_calls else f"Hello from the fake {provider}!"
            tokens = fmt.split_tokens(default if reply.text is None else reply.text)
        finish = "tool_calls" if tool_calls and reply.finish == "stop" else reply.finish
        tokens, stop = fmt.cut_at_stop(tokens, fmt.stop_sequences(provider, body))
        if stop is not None:
            finish, tool_calls = "stop", []
        limit = fmt.max_tokens(provider, body, legacy)
        if isinstance(limit, int) and limit < len(tokens):
            tokens, finish, tool_calls, stop = tokens[:limit], "length", [], None
        prompt = fmt.prompt_words(provider, body, legacy) + 3 if reply.prompt_tokens is None else reply.prompt_tokens
        model = ex.model or str(body.get("model", ""))
        given = body.get("prompt")
        logprobs, offset, prompt_text = None, 0, given if isinstance(given, str) else ""
        if provider == "openai" and legacy and isinstance(body.get("logprobs"), int):
            logprobs, offset = body["logprobs"], len(prompt_text)
        elif provider == "openai" and body.get("logprobs") is True:
            logprobs = body.get("top_logprobs") or 0
        elif provider == "gemini" and (body.get("generationConfig") or {}).get("responseLogprobs") is True:
            logprobs = body["generationConfig"].get("logprobs") or 0
        thinks, shown = _thinking(provider, body)
        return Plan(
            model=fmt.SNAPSHOTS.get(model, model) if provider == "openai" else model,
            ident=f"fake{ex.seq:08d}",
            created=int(time.time()) if self.created is None else self.created,
            tokens=tokens,
            tool_calls=tool_calls,
            finish=finish,
            stop_sequence=stop,
            prompt_tokens=prompt,
            include_usage=fmt.include_usage(body),
            logprobs=logprobs,
            echo_offset=offset,
            echo=prompt_text if legacy and body.get("echo") is True else "",
            choices=_choices(provider, body, legacy),
            search=_searched(provider, body),
            thinking=fmt.split_tokens(fmt.THOUGHT) if thinks and not legacy else [],
            show_thinking=shown,
        )

    @staticmethod
    async def _stream(ex: _Exchange, plan: Plan, behaviour: Behaviour, delay: float) -> None:
        provider, parts = ex.provider, _STREAMS[ex.route](plan)
        steps, rest = parts.steps, []
        if isinstance(behaviour, DropAfter | Stall | Garbage | Truncate | MidStreamError):
            cut = behaviour.tokens if isinstance(behaviour, DropAfter) else behaviour.after
            steps, rest = parts.steps[:cut], parts.steps[cut:]
        await ex.start(200, sse=True)
        if parts.head:
            await ex.write(parts.head)
        if isinstance(behaviour, SplitUtf8):
            steps = [half for step in steps for half in _split_inside_a_character(step)]
            delay = max(delay, behaviour.gap)
        if not await ex.send_steps(steps, delay):
            return
        match behaviour:
            case DropAfter():
                ex.abort()
            case Garbage():
                await ex.finish(fmt.garbage_frame(provider))
            case Truncate():
                await ex.finish()
            case MidStreamError(message=message):
                await ex.finish(fmt.stream_error_frame(provider, message))
            case Stall(seconds=seconds):
                if not await ex.wait_gone(seconds) and await ex.send_steps(rest, delay):
                    await ex.finish(parts.tail)
            case _:
                await ex.finish(parts.tail)

    @staticmethod
    async def _respond(ex: _Exchange, plan: Plan, behaviour: Behaviour, delay: float) -> None:
        body = _BODIES[ex.route](plan)
        wait = delay * max(1, len(plan.tokens)) + (behaviour.seconds if isinstance(behaviour, Stall) else 0.0)
        if wait and await ex.wait_gone(wait):
            return
        match behaviour:
            case DropAfter():
                await ex.start(200)
                await ex.write(body[: len(body) // 2])
                ex.abort()
            case Garbage():
                body = b"{not json"
            case Truncate():
                body = body[: len(body) // 2]
            case MidStreamError(message=message):
                await ex.error(_OVERLOADED[ex.provider], message)
                return
        await ex.respond(200, body)
