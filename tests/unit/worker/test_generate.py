import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import msgspec
import pytest

from services.worker.generate import PipelineContext, resolve_target, run_job
from services.worker.providers.registry import build_streamers
from services.worker.settings import Credentials, WorkerSettings
from services.worker.sink import Flush
from shared.catalog import Catalog, load_catalog
from shared.codec import decode_events, decode_record
from shared.errors import ErrorCode, GatewayError
from shared.events import (
    Done,
    Event,
    Failed,
    Heartbeat,
    ModelInfo,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
    is_terminal,
)
from shared.jobs import ChatMessage, GenerationJob, Principal, SamplingParams, StreamRecord, StreamView

pytestmark = pytest.mark.anyio

UPSTREAM = Path(__file__).resolve().parents[2] / "golden" / "upstream"
OPENAI_KEY = "sk-proj-unitTESTkeyDoNotLeak0123456789"
ANTHROPIC_KEY = "sk-ant-api03-unitTESTkeyDoNotLeak0123"
WORKER = "test-worker:1"
CREDENTIALS = {
    "openai": Credentials(api_key=OPENAI_KEY, base_url="https://api.openai.test/v1"),
    "anthropic": Credentials(api_key=ANTHROPIC_KEY, base_url="https://api.anthropic.test"),
    "echo": Credentials(api_key="", base_url=""),
}

Handler = Callable[[httpx.Request], httpx.Response]


class MemorySink:
    """An ``EventSink`` that records every published event and reports ``receivers`` listeners."""

    def __init__(self, receivers: int = 1) -> None:
        self.receivers = receivers
        self.events: list[Event] = []
        self.flushes: list[Flush] = []
        self.arrived = asyncio.Event()

    async def send(self, flush: Flush) -> int:
        self.flushes.append(flush)
        self.events.extend(decode_events(flush.payload))
        self.arrived.set()
        return self.receivers


class UpstreamStream(httpx.AsyncByteStream):
    """Response bytes in chunks, optionally paced or stalling forever at the end; records being closed."""

    def __init__(self, chunks: list[bytes], *, delay: float = 0.0, stall: bool = False) -> None:
        self.chunks = chunks
        self.delay = delay
        self.stall = stall
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            if self.delay:
                await asyncio.sleep(self.delay)
            self.sent += 1
            yield chunk
        if self.stall:
            await asyncio.Event().wait()

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _golden(provider: str, name: str) -> bytes:
    return (UPSTREAM / provider / name).read_bytes()


def _frames(data: bytes) -> list[bytes]:
    """One chunk per SSE event, as a real upstream flushes them."""
    return [frame + b"\n\n" for frame in data.split(b"\n\n") if frame]


def _job(
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    text: str = "Un café, s'il vous plaît",
    params: SamplingParams | None = None,
    deadline: float = 0.0,
) -> GenerationJob:
    return GenerationJob(
        id="job_1",
        request_id="req_1",
        principal=Principal(user_id="u_1", tier="pro"),
        provider=provider,
        model=model,
        messages=[ChatMessage(role="user", content=text)],
        params=params or SamplingParams(),
        deadline=deadline,
    )


def _sse(stream: UpstreamStream, requests: list[httpx.Request] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if requests is not None:
            requests.append(request)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)

    return handler


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected upstream call to {request.url}")


async def _run(
    job: GenerationJob,
    catalog: Catalog,
    handler: Handler,
    sink: MemorySink | None = None,
    credentials: dict[str, Credentials] | None = None,
    total_timeout: float = 10.0,
    heartbeat_interval: float = 5.0,
    cancel_requested: Callable[[GenerationJob], Awaitable[bool]] | None = None,
    retries: int = 0,
    orphan_grace: float = 0.0,
    watched: Callable[[GenerationJob], Awaitable[bool]] | None = None,
) -> tuple[Event, list[Event]]:
    sink = sink or MemorySink()
    settings = WorkerSettings(
        name=WORKER,
        credentials=CREDENTIALS if credentials is None else credentials,
        total_timeout=total_timeout,
        heartbeat_interval=heartbeat_interval,
        upstream_retries=retries,
        retry_base_delay=0.01,
        retry_max_delay=0.5,
        orphan_grace=orphan_grace,
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        ctx = PipelineContext(settings, catalog, client, sink, build_streamers(0.0), cancel_requested, watched)
        terminal = await run_job(job, ctx)
    return terminal, sink.events


def _assert_well_formed(events: list[Event], terminal: Event) -> None:
    """Numbered 1, 2, 3 ...; exactly one terminal, which is last and is what run_job returned.

    (run_job returns the terminal as built, before the publisher numbered it: only ``seq`` differs.)
    """
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert [is_terminal(event) for event in events] == [False] * (len(events) - 1) + [True]
    assert events[-1] == msgspec.structs.replace(terminal, seq=events[-1].seq)


def _text(events: list[Event]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def _kinds(events: list[Event]) -> list[type]:
    """Event types with runs of TextDelta collapsed (coalescing depends on timing)."""
    kinds: list[type] = []
    for event in events:
        if not (kinds and kinds[-1] is TextDelta is type(event)):
            kinds.append(type(event))
    return kinds


# --- successful streams ----------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["one-chunk", "per-frame"])
async def test_openai_text_stream_publishes_started_text_usage_done(catalog, chunked):
    data = _golden("openai", "text.sse")
    stream = UpstreamStream(_frames(data) if chunked else [data], delay=0.001 if chunked else 0.0)
    requests: list[httpx.Request] = []

    terminal, events = await _run(_job(), catalog, _sse(stream, requests))

    _assert_well_formed(events, terminal)
    assert events[0] == Started(seq=1, worker=WORKER)
    assert _kinds(events) == [Started, ModelInfo, TextDelta, Usage, Done]
    assert events[1] == ModelInfo(seq=2, model="gpt-4o-mini-2024-07-18", system_fingerprint="fp_06737a9306")
    assert _text(events) == "Un café, s'il vous plaît ☕"
    assert events[-2] == Usage(seq=len(events) - 1, prompt_tokens=21, completion_tokens=9)
    assert events[-1] == Done(seq=len(events), finish_reason="stop", model="gpt-4o-mini-2024-07-18")
    assert stream.closed
    assert [str(r.url) for r in requests] == ["https://api.openai.test/v1/chat/completions"]
    assert requests[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert json.loads(requests[0].content)["model"] == "gpt-4o-mini"


async def test_openai_tool_call_stream_publishes_tool_call_deltas(catalog):
    stream = UpstreamStream([_golden("openai", "tool_call.sse")])

    terminal, events = await _run(_job(), catalog, _sse(stream))

    _assert_well_formed(events, terminal)
    calls = [event for event in events if isinstance(event, ToolCallDelta)]
    assert [(c.index, c.id, c.name) for c in calls if c.id] == [
        (0, "call_c91SqDXlYFuETYv8mUHzz6pp", "get_weather"),
        (1, "call_Zx8hKn2VtPq4rWm1Ys7bD3eF", "get_time"),
    ]
    assert "".join(c.arguments for c in calls if c.index == 0) == '{"city": "Orléans"}'
    assert "".join(c.arguments for c in calls if c.index == 1) == '{"tz": "Europe/Paris"}'
    assert events[-2] == Usage(seq=len(events) - 1, prompt_tokens=82, completion_tokens=41, cached_tokens=64)
    assert events[-1] == Done(seq=len(events), finish_reason="tool_calls", model="gpt-4o-mini-2024-07-18")
    assert _text(events) == ""


async def test_anthropic_text_stream_publishes_started_text_usage_done(catalog):
    stream = UpstreamStream(_frames(_golden("anthropic", "text.sse")), delay=0.001)
    requests: list[httpx.Request] = []

    terminal, events = await _run(_job("anthropic", "claude-haiku-4-5"), catalog, _sse(stream, requests))

    _assert_well_formed(events, terminal)
    assert _kinds(events) == [Started, ModelInfo, TextDelta, Usage, Done]
    assert events[1] == ModelInfo(seq=2, model="claude-haiku-4-5-20251001")
    assert _text(events) == "Un café, s'il vous plaît ☕"
    assert events[-2] == Usage(seq=len(events) - 1, prompt_tokens=2125, completion_tokens=12, cached_tokens=2000)
    assert events[-1] == Done(seq=len(events), finish_reason="stop", model="claude-haiku-4-5-20251001")
    assert str(requests[0].url) == "https://api.anthropic.test/v1/messages"
    assert requests[0].headers["x-api-key"] == ANTHROPIC_KEY
    assert stream.closed


async def test_echo_provider_streams_without_network(catalog):
    terminal, events = await _run(_job("echo", "echo", text="one two three"), catalog, _unreachable)

    _assert_well_formed(events, terminal)
    assert _text(events) == "one two three"
    assert events[-2] == Usage(seq=len(events) - 1, prompt_tokens=3, completion_tokens=3)
    assert events[-1] == Done(seq=len(events), finish_reason="stop", model="echo")


async def test_echo_max_tokens_truncation_finishes_with_length(catalog):
    job = _job("echo", "echo", text="one two three four", params=SamplingParams(max_tokens=2))

    terminal, events = await _run(job, catalog, _unreachable)

    _assert_well_formed(events, terminal)
    assert _text(events) == "one two"
    assert events[-2] == Usage(seq=len(events) - 1, prompt_tokens=4, completion_tokens=2)
    assert events[-1] == Done(seq=len(events), finish_reason="length", model="echo")


# --- failures --------------------------------------------------------------------------------------

_OPENAI_401 = {
    "error": {
        "message": f"Incorrect API key provided: {OPENAI_KEY}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}
_OPENAI_429 = {
    "error": {
        "message": "Rate limit reached for gpt-4o-mini on tokens per min (TPM). Please try again in 3.05s.",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
_ANTHROPIC_401 = {
    "type": "error",
    "error": {"type": "authentication_error", "message": f"invalid x-api-key {ANTHROPIC_KEY}"},
}
_ANTHROPIC_429 = {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests exceeded"}}


@pytest.mark.parametrize(
    ("provider", "model", "status", "body", "code", "retryable"),
    [
        ("openai", "gpt-4o-mini", 401, _OPENAI_401, ErrorCode.UPSTREAM_AUTH, False),
        ("openai", "gpt-4o-mini", 429, _OPENAI_429, ErrorCode.UPSTREAM_RATE_LIMITED, True),
        ("anthropic", "claude-haiku-4-5", 401, _ANTHROPIC_401, ErrorCode.UPSTREAM_AUTH, False),
        ("anthropic", "claude-haiku-4-5", 429, _ANTHROPIC_429, ErrorCode.UPSTREAM_RATE_LIMITED, True),
    ],
    ids=["openai-401", "openai-429", "anthropic-401", "anthropic-429"],
)
async def test_upstream_error_status_publishes_single_failed(catalog, provider, model, status, body, code, retryable):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers={"retry-after": "3"})

    terminal, events = await _run(_job(provider, model), catalog, handler)

    _assert_well_formed(events, terminal)
    assert [type(e) for e in events] == [Started, Failed]
    assert isinstance(terminal, Failed)
    assert (terminal.code, terminal.retryable, terminal.upstream_status) == (code, retryable, status)
    assert terminal.message.startswith(f"{provider} returned HTTP {status}: ")
    assert OPENAI_KEY not in terminal.message
    assert ANTHROPIC_KEY not in terminal.message


async def test_upstream_401_message_masks_the_key(catalog):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json=_OPENAI_401)

    terminal, _ = await _run(_job(), catalog, handler)

    assert isinstance(terminal, Failed)
    assert terminal.message == (
        "openai returned HTTP 401: Incorrect API key provided: ***. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )


async def test_provider_without_credentials_fails_not_configured(catalog):
    credentials = {"echo": CREDENTIALS["echo"]}

    terminal, events = await _run(_job("anthropic", "claude-haiku-4-5"), catalog, _unreachable, credentials=credentials)

    assert events == [
        Started(seq=1, worker=WORKER),
        Failed(
            seq=2,
            code=ErrorCode.PROVIDER_NOT_CONFIGURED,
            message="provider 'anthropic' is not configured on this worker (set ANTHROPIC_API_KEY)",
        ),
    ]
    assert isinstance(terminal, Failed)
    assert terminal.code == ErrorCode.PROVIDER_NOT_CONFIGURED


async def test_unknown_provider_fails_model_not_found(catalog):
    terminal, events = await _run(_job("mistral", "large"), catalog, _unreachable)

    _assert_well_formed(events, terminal)
    assert isinstance(terminal, Failed)
    assert terminal.code == ErrorCode.MODEL_NOT_FOUND


async def test_job_past_deadline_fails_no_worker_without_calling_upstream(catalog):
    job = _job(deadline=time.time() - 1.0)

    terminal, events = await _run(job, catalog, _unreachable)

    assert events == [
        Failed(seq=1, code=ErrorCode.NO_WORKER, message="no worker took the job before its queue deadline")
    ]
    assert isinstance(terminal, Failed)
    assert terminal.code == ErrorCode.NO_WORKER


async def test_job_before_deadline_runs(catalog):
    job = _job("echo", "echo", text="hi", deadline=time.time() + 60.0)

    _, events = await _run(job, catalog, _unreachable)

    assert events[-1] == Done(seq=len(events), finish_reason="stop", model="echo")


async def test_stream_without_finish_fails_incomplete(catalog):
    stream = UpstreamStream([_golden("openai", "no_finish.sse")])

    terminal, events = await _run(_job(), catalog, _sse(stream))

    _assert_well_formed(events, terminal)
    assert isinstance(terminal, Failed)
    assert terminal.code == ErrorCode.UPSTREAM_INCOMPLETE
    assert _text(events) == "Il était une fois"


async def test_no_receivers_cancels_job_and_closes_upstream(catalog):
    head, *rest = _frames(_golden("openai", "text.sse"))
    chunks = [head] + [rest[0]] * 200
    stream = UpstreamStream(chunks, delay=0.002, stall=True)

    terminal, events = await _run(_job(), catalog, _sse(stream), sink=MemorySink(receivers=0))

    _assert_well_formed(events, terminal)
    message = "nobody listened to the stream for 0 s (its API process is gone) and no resume followed it"
    assert events[-1] == Failed(seq=len(events), code=ErrorCode.CANCELLED, message=message)
    assert stream.closed
    assert stream.sent < len(chunks)


async def test_no_receivers_cancels_job_while_upstream_silent(catalog):
    # nobody is listening (heartbeat flushes report 0 receivers) while the upstream sends nothing
    # (a reasoning model thinking, or Anthropic sending only pings): the job should still stop
    head, *_ = _frames(_golden("openai", "text.sse"))
    stream = UpstreamStream([head], stall=True)
    sink = MemorySink(receivers=0)

    terminal, events = await _run(_job(), catalog, _sse(stream), sink=sink, total_timeout=1.0, heartbeat_interval=0.05)

    _assert_well_formed(events, terminal)
    assert isinstance(terminal, Failed)
    assert terminal.code == ErrorCode.CANCELLED
    assert stream.closed


async def test_a_detached_job_runs_on_when_nobody_listens(catalog):
    job = msgspec.structs.replace(_job(), on_disconnect="detach")
    stream = UpstreamStream(_frames(_golden("openai", "text.sse")), delay=0.002)

    terminal, events = await _run(job, catalog, _sse(stream), sink=MemorySink(receivers=0))

    assert isinstance(terminal, Done)
    assert _text(events) == "Un café, s'il vous plaît ☕"


async def test_a_job_watched_by_a_resume_runs_on_when_its_own_channel_is_silent(catalog):
    asked: list[str] = []

    async def watched(job: GenerationJob) -> bool:
        asked.append(job.id)
        return True

    stream = UpstreamStream(_frames(_golden("openai", "text.sse")), delay=0.002)
    terminal, _ = await _run(_job(), catalog, _sse(stream), sink=MemorySink(receivers=0), watched=watched)

    assert isinstance(terminal, Done)
    assert asked and set(asked) == {"job_1"}


async def test_nobody_listening_for_less_than_the_orphan_grace_does_not_stop_the_job(catalog):
    stream = UpstreamStream(_frames(_golden("openai", "text.sse")), delay=0.01)  # about 0.1 s in all
    terminal, _ = await _run(_job(), catalog, _sse(stream), sink=MemorySink(receivers=0), orphan_grace=2.0)

    assert isinstance(terminal, Done)


async def test_a_cancelled_job_reports_the_usage_it_saw_estimated_from_its_text(catalog):
    head, *rest = _frames(_golden("openai", "text.sse"))
    stream = UpstreamStream([head, rest[0], rest[1]], stall=True)  # some text, then silence: no usage chunk
    sink = MemorySink()
    settings = WorkerSettings(name=WORKER, credentials=CREDENTIALS, upstream_retries=0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(_sse(stream))) as client:
        ctx = PipelineContext(settings, catalog, client, sink, build_streamers(0.0))
        task = asyncio.create_task(run_job(_job(text="x" * 40), ctx))
        async with asyncio.timeout(2):
            while not _text(sink.events):
                await sink.arrived.wait()
                sink.arrived.clear()
        task.cancel()
        terminal = await task

    assert isinstance(terminal, Failed)
    assert terminal.code == ErrorCode.CANCELLED
    usage = next(event for event in sink.events if isinstance(event, Usage))
    assert usage.estimated
    assert usage.prompt_tokens == 10  # 40 characters
    assert usage.completion_tokens == -(-len(_text(sink.events)) // 4)


async def test_the_first_flush_carries_the_jobs_stream_record_and_entry_ids_follow_seq(catalog):
    view = StreamView(dialect="openai.chat", id="chatcmpl-1", model="gpt-4o-mini", created=5)
    job = msgspec.structs.replace(_job(), view=view)
    sink = MemorySink()

    terminal, events = await _run(job, catalog, _sse(UpstreamStream([_golden("openai", "text.sse")])), sink=sink)

    assert decode_record(sink.flushes[0].record or b"") == StreamRecord(owner="u_1", view=view)
    assert [flush.record is not None for flush in sink.flushes] == [True] + [False] * (len(sink.flushes) - 1)
    assert [flush.last_seq for flush in sink.flushes][-1] == terminal.seq == len(events)
    assert sink.flushes[0].expire and sink.flushes[-1].expire


async def test_cancelling_running_task_publishes_cancelled_and_closes_upstream(catalog):
    head, first, *_ = _frames(_golden("openai", "text.sse"))
    stream = UpstreamStream([head, first], stall=True)
    sink = MemorySink()
    settings = WorkerSettings(name=WORKER, credentials=CREDENTIALS)

    async with httpx.AsyncClient(transport=httpx.MockTransport(_sse(stream))) as client:
        ctx = PipelineContext(settings, load_catalog(), client, sink, build_streamers(0.0))
        task = asyncio.create_task(run_job(_job(), ctx))
        async with asyncio.timeout(2.0):
            while not any(isinstance(e, TextDelta) for e in sink.events):
                sink.arrived.clear()
                await sink.arrived.wait()
        task.cancel()
        terminal = await task

    _assert_well_formed(sink.events, terminal)
    assert sink.events[-1] == Failed(
        seq=len(sink.events), code=ErrorCode.CANCELLED, message="the client cancelled the request"
    )
    assert not task.cancelled()
    assert stream.closed
    assert _text(sink.events) == "Un café"


async def test_total_timeout_fails_upstream_timeout_and_closes_upstream(catalog):
    head, first, *_ = _frames(_golden("openai", "text.sse"))
    stream = UpstreamStream([head, first], stall=True)

    terminal, events = await _run(_job(), catalog, _sse(stream), total_timeout=0.1)

    _assert_well_formed(events, terminal)
    assert events[-1] == Failed(
        seq=len(events), code=ErrorCode.UPSTREAM_TIMEOUT, message="the job exceeded its total deadline of 0.1 s"
    )
    assert _text(events) == "Un café"
    assert stream.closed


async def test_silent_upstream_gets_heartbeats(catalog):
    head, *_ = _frames(_golden("openai", "text.sse"))
    stream = UpstreamStream([head], stall=True)

    terminal, events = await _run(_job(), catalog, _sse(stream), total_timeout=1.0, heartbeat_interval=0.05)

    _assert_well_formed(events, terminal)
    assert any(isinstance(e, Heartbeat) for e in events)
    assert isinstance(terminal, Failed)
    assert terminal.code == ErrorCode.UPSTREAM_TIMEOUT


async def test_transport_error_fails_upstream_connection(catalog):
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    terminal, events = await _run(_job(), catalog, handler)

    assert [type(e) for e in events] == [Started, Failed]
    assert isinstance(terminal, Failed)
    assert terminal.code == ErrorCode.UPSTREAM_CONNECTION
    assert terminal.retryable is True
    assert "api.openai.test" not in terminal.message


# --- resolve_target --------------------------------------------------------------------------------


def test_resolve_target_uses_worker_credentials(catalog):
    target = resolve_target("openai", "gpt-4o-mini", WorkerSettings(credentials=CREDENTIALS), catalog)

    assert (target.provider, target.base_url, target.api_key, target.model) == (
        "openai",
        "https://api.openai.test/v1",
        OPENAI_KEY,
        "gpt-4o-mini",
    )
    assert target.spec == catalog.providers["openai"]


def test_resolve_target_without_credentials_raises_not_configured(catalog):
    with pytest.raises(GatewayError) as info:
        resolve_target("gemini", "gemini-2.5-flash", WorkerSettings(credentials=CREDENTIALS), catalog)

    assert info.value.code == ErrorCode.PROVIDER_NOT_CONFIGURED
    assert "GEMINI_API_KEY" in info.value.message


@pytest.mark.anyio
async def test_cancel_flag_set_while_queued_ends_job_without_upstream_call(catalog: Catalog) -> None:
    asked: list[str] = []

    async def cancel_requested(queued: GenerationJob) -> bool:
        asked.append(queued.id)
        return True

    job = _job()
    terminal, events = await _run(job, catalog, _unreachable, cancel_requested=cancel_requested)
    assert asked == [job.id]
    assert isinstance(terminal, Failed)
    assert terminal.code == ErrorCode.CANCELLED
    assert events == [terminal]
    assert terminal.seq == 1


async def test_a_burst_already_buffered_has_its_first_text_flushed_before_the_rest_is_parsed(catalog):
    """The whole answer arrives in one read: the job still lets its first text out before parsing on."""
    chunk = b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,%s}]}\n\n'
    frames = [chunk % (b'"delta":{"content":"w%d "}' % i) for i in range(3000)]
    finish = chunk % b'"delta":{},"finish_reason":"stop"'
    stream = UpstreamStream([b"".join(frames) + finish + b"data: [DONE]\n\n"])
    sink = MemorySink()
    flushed_while_parsing: list[int] = []

    async def send(flush: Flush) -> int:
        flushed_while_parsing.append(len(_text(decode_events(flush.payload)).split()))
        return await MemorySink.send(sink, flush)

    sink.send = send  # type: ignore[method-assign]
    terminal, events = await _run(_job(), catalog, _sse(stream), sink)
    assert isinstance(terminal, Done)
    assert _text(events) == "".join(f"w{i} " for i in range(3000))
    first_text = next(count for count in flushed_while_parsing if count)
    assert first_text < 3000  # the first text flush did not wait for the whole burst
