"""What every generation endpoint does between its dialect's parsing and its dialect's encoding.

``prepare_job`` resolves the provider (refusing one no live worker serves) and builds the job;
``open_stream`` starts it and holds the HTTP status until the first token or a short timeout, so an
early failure still gets its own status; ``collect`` gathers a whole answer for non-streaming calls,
cancelling the job if the client disconnects meanwhile.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import msgspec
from litestar import Request
from litestar.datastructures import State

from services.api.relay.run import Gateway, JobRun
from services.api.workers import WorkerDirectory
from shared.catalog import Catalog
from shared.errors import ErrorCode, GatewayError, InvalidRequestError, UnavailableError
from shared.events import Done, Event, Failed, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from shared.jobs import ChatMessage, GenerationJob, Principal, SamplingParams, ToolCall

__all__ = ["Answer", "OpenStream", "collect", "failure_error", "open_stream", "prepare_job", "request_id"]

_CONTENT = (TextDelta, ToolCallDelta, ReasoningDelta)


def request_id(request: Request[object, object, State]) -> str:
    rid: str = request.scope.get("state", {}).get("request_id", "") or f"req_{uuid.uuid4().hex}"
    return rid


async def check_provider(directory: WorkerDirectory, catalog: Catalog, provider: str) -> None:
    current = await directory.current()
    if not current.workers:
        raise UnavailableError("no worker is available to run the request; try again shortly", code=ErrorCode.NO_WORKER)
    if provider not in current.providers:
        spec = catalog.providers.get(provider)
        hint = f" (set {spec.api_key_env} for the workers)" if spec and spec.api_key_env else ""
        raise InvalidRequestError(
            f"provider {provider!r} is not configured on this gateway{hint}",
            code=ErrorCode.PROVIDER_NOT_CONFIGURED,
            param="model",
        )


async def prepare_job(
    request: Request[object, object, State],
    principal: Principal,
    provider: str,
    model: str,
    messages: list[ChatMessage],
    params: SamplingParams,
    stream: bool,
) -> GenerationJob:
    state = request.app.state
    await check_provider(state.directory, state.catalog, provider)
    now = time.time()
    return GenerationJob(
        id=uuid.uuid4().hex,
        request_id=request_id(request),
        principal=principal,
        provider=provider,
        model=model,
        messages=messages,
        params=params,
        stream=stream,
        created=now,
        deadline=now + state.settings.queue_timeout,
    )


def failure_error(failed: Failed) -> GatewayError:
    try:
        code = ErrorCode(failed.code)
    except ValueError:
        code = ErrorCode.INTERNAL
    return GatewayError(failed.message, code=code, retryable=failed.retryable, upstream_status=failed.upstream_status)


class OpenStream:
    """A started job whose first events are already read; iterate it, then ``close`` (idempotent)."""

    def __init__(self, run: JobRun, head: list[Event | None]) -> None:
        self.run = run
        self.job = run.job
        self.head = head
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[Event | None]:
        """The events read while the status was held back, then the live rest."""
        for event in self.head:
            yield event
        async for event in self.run:
            yield event

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.run.__aexit__(None, None, None)


async def open_stream(request: Request[object, object, State], job: GenerationJob) -> OpenStream:
    """Start ``job``; raise its failure as an HTTP error if it fails before the first token.

    Until the response starts nothing else watches the connection, so a client that leaves while
    the status is held back is noticed here, and the job cancelled at once.
    """
    gateway: Gateway = request.app.state.gateway
    run = await JobRun(gateway, job).__aenter__()
    head: list[Event | None] = []
    commit_at = time.monotonic() + gateway.settings.commit_timeout
    disconnect = asyncio.create_task(_wait_for_disconnect(request))
    try:
        while (remaining := commit_at - time.monotonic()) > 0:
            step = asyncio.ensure_future(run.next(max_wait=remaining))
            await asyncio.wait({step, disconnect}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                raise GatewayError("the client closed the connection", code=ErrorCode.CANCELLED)
            event = step.result()
            if event is None:
                break  # slow first token: commit to a 200 stream and keep the client company with pings
            if isinstance(event, Failed):
                raise failure_error(event)
            head.append(event)
            if isinstance(event, (*_CONTENT, Done)):
                break
    except BaseException:
        await run.__aexit__(None, None, None)
        raise
    finally:
        disconnect.cancel()
    return OpenStream(run, head)


class Answer(msgspec.Struct, kw_only=True):
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = []
    usage: Usage | None = None
    finish_reason: str = "stop"
    model: str = ""


def _add(answer: Answer, event: Event, parts: list[str], calls: dict[int, list[str]]) -> None:
    match event:
        case TextDelta(text=text):
            parts.append(text)
        case ReasoningDelta(text=text):
            answer.reasoning += text
        case ToolCallDelta(index=index, id=call_id, name=name, arguments=arguments):
            slot = calls.setdefault(index, ["", "", ""])
            slot[0] = call_id or slot[0]
            slot[1] = name or slot[1]
            slot[2] += arguments
        case Usage():
            answer.usage = event
        case Done(finish_reason=reason, model=model):
            answer.finish_reason, answer.model = reason, model
        case Failed():
            raise failure_error(event)


async def _gather(gateway: Gateway, job: GenerationJob) -> Answer:
    answer = Answer(model=job.model)
    parts: list[str] = []
    calls: dict[int, list[str]] = {}
    async with JobRun(gateway, job) as run:
        async for event in run:
            if event is not None:
                _add(answer, event, parts, calls)
    answer.text = "".join(parts)
    answer.tool_calls = [ToolCall(id=c[0], name=c[1], arguments=c[2]) for _, c in sorted(calls.items())]
    return answer


async def collect(request: Request[object, object, State], job: GenerationJob) -> Answer:
    """The whole answer of ``job``; if the client disconnects first, the job is cancelled."""
    gather = asyncio.create_task(_gather(request.app.state.gateway, job))
    disconnect = asyncio.create_task(_wait_for_disconnect(request))
    try:
        await asyncio.wait({gather, disconnect}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        disconnect.cancel()
        if not gather.done():
            gather.cancel()  # the client left: JobRun's exit cancels the job
            with contextlib.suppress(asyncio.CancelledError):
                await gather
    if gather.cancelled():
        raise GatewayError("the client closed the connection", code=ErrorCode.CANCELLED)
    return gather.result()


async def _wait_for_disconnect(request: Request[object, object, State]) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
