"""What every generation endpoint does between its dialect's parsing and its dialect's encoding.

``prepare_job`` resolves the provider (refusing one no live worker serves) and builds the job, with the
``StreamView`` a resume needs and the client's disconnect policy (``x-conduit-on-disconnect: cancel``,
the default, or ``detach``); ``open_stream`` starts it and holds the HTTP status until the first token or
a short timeout, so an early failure still gets its own status; ``stream_body`` relays it as SSE;
``collect`` gathers a whole answer for non-streaming calls, ending the job as its policy says if the
client disconnects meanwhile.
"""

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, NamedTuple, get_args

import msgspec
import redis.asyncio as aioredis
from litestar import Request
from litestar.datastructures import State

from services.api.auth.deps import api_key_of
from services.api.ratelimit.limiter import Admitted
from services.api.relay.run import Gateway, JobRun
from services.api.sse import FrameEncoder, render
from services.api.tiers import Limits, TierPolicy
from services.api.workers import WorkerDirectory
from shared import keys
from shared.catalog import Catalog
from shared.errors import ErrorCode, GatewayError, InvalidRequestError, UnavailableError
from shared.events import Done, Event, Failed, ModelInfo, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from shared.jobs import (
    ChatMessage,
    GenerationJob,
    OnDisconnect,
    Principal,
    SamplingParams,
    StreamView,
    ToolCall,
    message_text,
)
from shared.tokens import estimate_tokens

__all__ = [
    "Answer",
    "OpenStream",
    "Prepared",
    "Rendering",
    "collect",
    "failure_error",
    "open_stream",
    "prepare_job",
    "gather_answer",
    "request_id",
    "stream_body",
]

_CONTENT = (TextDelta, ToolCallDelta, ReasoningDelta)
POLICY_HEADER = "x-conduit-on-disconnect"
_POLICIES: tuple[str, ...] = get_args(OnDisconnect)
#: a client's own name for its job, to fetch or resume it by (``GET /v1/streams/{name}``) even if it hung up
#: before the response told it the job's id
NAME_HEADER = "x-conduit-job-name"
#: how long a name is held for a job no worker has started yet (the worker then keeps it as long as the job's
#: record), so a job that never ran frees its name by itself
NAME_GRACE = 60.0
_NAME = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


#: tokens reserved for the answer of a request that names no max_tokens when its tier sets no cap
DEFAULT_RESERVE = 1024


class Prepared(NamedTuple):
    job: GenerationJob
    view: StreamView
    #: the x-ratelimit-* headers of the admission, for the response
    headers: dict[str, str]


class Rendering(NamedTuple):
    """How a dialect renders a job: its encoder's name (``services.api.streams``), the prefix of the
    response id (``chatcmpl-``), the model as the client named it, and the usage chunk."""

    dialect: str
    id_prefix: str
    model: str
    include_usage: bool = False


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


async def _claim_name(request: Request[object, object, State], principal: Principal, job_id: str) -> str:
    name = request.headers.get(NAME_HEADER)
    if name is None:
        return ""
    if not _NAME.match(name):
        raise InvalidRequestError(f"{NAME_HEADER} must be 1-128 letters, digits or ._:-", param=NAME_HEADER)
    redis: aioredis.Redis = request.app.state.redis
    hold = int(request.app.state.settings.queue_timeout + NAME_GRACE)
    try:
        claimed = await redis.set(keys.job_name(principal.user_id, name), job_id, nx=True, ex=hold)
    except Exception as exc:
        raise UnavailableError("the gateway cannot reach Redis; try again shortly") from exc
    if not claimed:
        raise GatewayError(
            f"you already have a job named {name!r}; fetch it with GET /v1/streams/{name}", code=ErrorCode.CONFLICT
        )
    return name


def _policy(request: Request[object, object, State]) -> OnDisconnect:
    value = request.headers.get(POLICY_HEADER, "cancel").strip().lower() or "cancel"
    if value not in _POLICIES:
        raise InvalidRequestError(f"{POLICY_HEADER} must be cancel or detach, not {value!r}", param=POLICY_HEADER)
    return value  # type: ignore[return-value]  # checked against the Literal's values just above


async def prepare_job(
    request: Request[object, object, State],
    principal: Principal,
    provider: str,
    model: str,
    messages: list[ChatMessage],
    params: SamplingParams,
    stream: bool,
    rendering: Rendering,
    prompt: str | None = None,
) -> Prepared:
    """The admitted job, how its events are rendered (also in the job, for resumes), and the rate-limit
    headers for the response; 429 when the principal is over a limit. ``prompt``: a legacy completion's."""
    state = request.app.state
    policy = _policy(request)
    await check_provider(state.directory, state.catalog, provider)
    job_id = uuid.uuid4().hex
    name = await _claim_name(request, principal, job_id)
    try:
        params, admitted = await _admit(request, principal, job_id, messages, params)
    except BaseException:
        if name:  # the name goes with a job that was not admitted
            with contextlib.suppress(Exception):
                await state.redis.delete(keys.job_name(principal.user_id, name))
        raise
    now = time.time()
    dialect, prefix, named, include_usage = rendering
    view = StreamView(dialect=dialect, id=prefix + job_id, model=named, created=int(now), include_usage=include_usage)
    job = GenerationJob(
        id=job_id,
        request_id=request_id(request),
        principal=principal,
        provider=provider,
        model=model,
        messages=messages,
        params=params,
        stream=stream,
        created=now,
        deadline=now + state.settings.queue_timeout,
        view=view,
        on_disconnect=policy,
        name=name,
        admission=admitted.admission,
        prompt=prompt,
    )
    return Prepared(job, view, admitted.headers)


async def _admit(
    request: Request[object, object, State],
    principal: Principal,
    job_id: str,
    messages: list[ChatMessage],
    params: SamplingParams,
) -> tuple[SamplingParams, Admitted]:
    """The principal's limits (its tier's, or its key's own), its max_tokens cap applied, and the admission."""
    state = request.app.state
    tier: TierPolicy = state.tiers[principal.tier]
    key = api_key_of(request)
    own = key is not None and key.limits != Limits()
    limits = key.limits.over(tier.limits) if key is not None and own else tier.limits
    cap = limits.max_tokens or 0
    if cap and params.max_tokens is not None and params.max_tokens > cap:
        raise InvalidRequestError(f"max_tokens may be at most {cap} for your tier", param="max_tokens")
    if cap and params.max_tokens is None:
        params = msgspec.structs.replace(params, max_tokens=cap)
    cost = sum(estimate_tokens(message_text(message)) for message in messages) + (params.max_tokens or DEFAULT_RESERVE)
    tpm = limits.tokens_per_minute or 0
    if tpm and cost > tpm:
        raise InvalidRequestError(
            f"the request needs about {cost} tokens (prompt and max_tokens), more than your {tpm} tokens per minute",
            param="max_tokens",
        )
    subject = f"key:{key.id}" if key is not None and own else f"user:{principal.user_id}"
    gateway: Gateway = state.gateway
    return params, await gateway.limiter.admit(subject, limits, job_id, cost)


def failure_error(failed: Failed) -> GatewayError:
    try:
        code = ErrorCode(failed.code)
    except ValueError:
        code = ErrorCode.INTERNAL
    return GatewayError(
        failed.message,
        code=code,
        retryable=failed.retryable,
        upstream_status=failed.upstream_status,
        param=failed.param,
    )


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


async def stream_body(stream: OpenStream, encoder: FrameEncoder) -> AsyncIterator[bytes]:
    """The SSE bytes of a started job; the job is closed (cancelled if unfinished, unless detached) after."""
    try:
        async for chunk in render(stream, encoder):
            yield chunk
    finally:
        await stream.close()


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
    system_fingerprint: str = ""
    #: the upstream's logprobs objects of the whole text, their lists joined (when the client asked for them)
    logprobs: dict[str, Any] | None = None


def _join_logprobs(answer: Answer, logprobs: dict[str, Any]) -> None:
    if answer.logprobs is None:
        answer.logprobs = {}
    for key, value in logprobs.items():
        if isinstance(value, list) and isinstance(answer.logprobs.get(key), list):
            answer.logprobs[key] = answer.logprobs[key] + value
        elif value is not None or key not in answer.logprobs:
            answer.logprobs[key] = value


def _add(answer: Answer, event: Event, parts: list[str], calls: dict[int, list[str]]) -> None:
    match event:
        case TextDelta(text=text, logprobs=logprobs):
            parts.append(text)
            if logprobs is not None:
                _join_logprobs(answer, logprobs)
        case ModelInfo(model=model, system_fingerprint=fingerprint):
            answer.model, answer.system_fingerprint = model or answer.model, fingerprint
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
            answer.finish_reason, answer.model = reason, model or answer.model
        case Failed():
            raise failure_error(event)


async def _gather(gateway: Gateway, job: GenerationJob) -> Answer:
    async with JobRun(gateway, job) as run:
        return await gather_answer(run, job.model)


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


async def gather_answer(events: AsyncIterator[Event | None], model: str) -> Answer:
    """A whole answer from a job's events (a ``Failed`` raises its error)."""
    answer = Answer(model=model)
    parts: list[str] = []
    calls: dict[int, list[str]] = {}
    async for event in events:
        if event is not None:
            _add(answer, event, parts, calls)
    answer.text = "".join(parts)
    answer.tool_calls = [ToolCall(id=c[0], name=c[1], arguments=c[2]) for _, c in sorted(calls.items())]
    return answer


async def _wait_for_disconnect(request: Request[object, object, State]) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
