"""``GenerationService``: what every generation endpoint does between its dialect's parsing and its
dialect's encoding. It never sees a Litestar ``Request``: routes hand it a ``Caller`` and a ``JobRequest``.

``prepare`` resolves the provider (refusing one no live worker serves), claims the client's job name,
admits the job against the caller's limits and builds it, with the ``StreamView`` a resume needs;
``open_stream`` starts it and holds the HTTP status until the first token or a short timeout, so an early
failure still gets its own status; ``stream_body`` relays it as SSE; ``collect`` gathers a whole answer
for non-streaming calls, ending the job as its policy says if the client disconnects meanwhile.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import NamedTuple

import msgspec

from services.api.answer import Answer, failure_error, gather_answer
from services.api.caller import Caller
from services.api.metrics import first_token
from services.api.ports import Directory, JobHandle, JobNames, JobStarter, Limiter
from services.api.ratelimit.limiter import Admitted
from services.api.settings import ApiSettings
from services.api.sse import FrameEncoder, render
from services.api.tiers import Limits, TierPolicy
from services.telemetry.traces import current_traceparent
from shared.catalog import Catalog
from shared.errors import ErrorCode, GatewayError, InvalidRequestError, UnavailableError
from shared.events import Done, Event, Failed, ReasoningDelta, TextDelta, ToolCallDelta
from shared.jobs import ChatMessage, ChatTurn, GenerationJob, SamplingParams, StreamView, UpstreamOverride, message_text
from shared.tokens import estimate_tokens

__all__ = ["GenerationService", "JobRequest", "OpenStream", "Prepared", "Rendering", "stream_body"]

_CONTENT = (TextDelta, ToolCallDelta, ReasoningDelta)
#: how long a name is held for a job no worker has started yet (the worker then keeps it as long as the job's
#: record), so a job that never ran frees its name by itself
NAME_GRACE = 60.0
#: tokens reserved for the answer of a request that names no max_tokens when its tier sets no cap
DEFAULT_RESERVE = 1024


class Rendering(NamedTuple):
    """How a dialect renders a job: its encoder's name (a key of its ``Dialect.encoders``), the prefix of the
    response id (``chatcmpl-``), the model as the client named it, the usage chunk, and labels its frames
    carry (``StreamView.labels``)."""

    dialect: str
    id_prefix: str
    model: str
    include_usage: bool = False
    labels: Mapping[str, str] = {}


class JobRequest(NamedTuple):
    """What a route asks to run, in canonical form. ``prompt``: a legacy completion's; ``chat``: where the
    worker saves the reply of a chat's generation."""

    provider: str
    model: str
    messages: list[ChatMessage]
    params: SamplingParams
    stream: bool
    rendering: Rendering
    prompt: str | None = None
    chat: ChatTurn | None = None
    #: the job's id, when the route needed it before (a chat's lock); else a new one
    job_id: str = ""
    #: a proxy endpoint's: the upstream its client named (``provider`` is then that upstream's origin)
    upstream: UpstreamOverride | None = None


class Prepared(NamedTuple):
    job: GenerationJob
    view: StreamView
    #: the x-ratelimit-* headers of the admission, for the response
    headers: dict[str, str]


class OpenStream:
    """A started job whose first events are already read; iterate it, then ``close`` (idempotent)."""

    def __init__(self, run: JobHandle, head: list[Event | None]) -> None:
        self.run = run
        self.job = run.job
        self.head = head
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[Event | None]:
        """The events read while the status was held back, then the live rest; the first token is timed."""
        waiting = True
        for event in self.head:
            waiting = waiting and not first_token(event, self.job)
            yield event
        async for event in self.run:
            if waiting:
                waiting = not first_token(event, self.job)
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


class GenerationService:
    def __init__(
        self,
        *,
        settings: ApiSettings,
        catalog: Catalog,
        tiers: Mapping[str, TierPolicy],
        jobs: JobStarter,
        limiter: Limiter,
        directory: Directory,
        names: JobNames,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.tiers = tiers
        self.jobs = jobs
        self.limiter = limiter
        self.directory = directory
        self.names = names

    async def providers(self) -> frozenset[str]:
        """The providers live workers serve now."""
        return (await self.directory.current()).providers

    async def check_provider(self, provider: str, upstream: UpstreamOverride | None = None) -> None:
        """A live worker can run a job for ``provider`` (any worker for a proxy job with its client's key; one
        with the gateway's Gemini key for a Gemini proxy job without one)."""
        current = await self.directory.current()
        if not current.workers:
            raise UnavailableError(
                "no worker is available to run the request; try again shortly", code=ErrorCode.NO_WORKER
            )
        if upstream is not None:
            if upstream.sealed_key or "gemini" in current.providers:
                return
            raise InvalidRequestError(
                "no upstream key was given (send x-goog-api-key, or the key query parameter), and this gateway "
                "has no Gemini key of its own",
                code=ErrorCode.AUTHENTICATION,
            )
        if provider not in current.providers:
            spec = self.catalog.providers.get(provider)
            hint = f" (set {spec.api_key_env} for the workers)" if spec and spec.api_key_env else ""
            raise InvalidRequestError(
                f"provider {provider!r} is not configured on this gateway{hint}",
                code=ErrorCode.PROVIDER_NOT_CONFIGURED,
                param="model",
            )

    async def prepare(self, caller: Caller, spec: JobRequest) -> Prepared:
        """The admitted job, how its events are rendered (also in the job, for resumes), and the rate-limit
        headers for the response; 429 when the caller is over a limit."""
        await self.check_provider(spec.provider, spec.upstream)
        job_id = spec.job_id or uuid.uuid4().hex
        name = await self._claim_name(caller, job_id)
        try:
            params, admitted = await self._admit(caller, job_id, spec.messages, spec.params)
        except BaseException:
            if name:  # the name goes with a job that was not admitted
                with contextlib.suppress(Exception):
                    await self.names.release(caller.principal.user_id, name)
            raise
        now = time.time()
        rendering = spec.rendering
        view = StreamView(
            dialect=rendering.dialect,
            id=rendering.id_prefix + job_id,
            model=rendering.model,
            created=int(now),
            include_usage=rendering.include_usage,
            labels=dict(rendering.labels),
        )
        job = GenerationJob(
            id=job_id,
            request_id=caller.request_id,
            principal=caller.principal,
            provider=spec.provider,
            model=spec.model,
            messages=spec.messages,
            params=params,
            stream=spec.stream,
            created=now,
            deadline=now + self.settings.queue_timeout,
            view=view,
            on_disconnect=caller.on_disconnect,
            name=name,
            admission=admitted.admission,
            prompt=spec.prompt,
            chat=spec.chat,
            upstream=spec.upstream,
            trace=current_traceparent(),
        )
        return Prepared(job, view, admitted.headers)

    async def _claim_name(self, caller: Caller, job_id: str) -> str:
        name = caller.job_name
        if not name:
            return ""
        hold = self.settings.queue_timeout + NAME_GRACE
        if not await self.names.claim(caller.principal.user_id, name, job_id, hold):
            raise GatewayError(
                f"you already have a job named {name!r}; fetch it with GET /v1/streams/{name}", code=ErrorCode.CONFLICT
            )
        return name

    def limits_of(self, caller: Caller) -> tuple[Limits, str]:
        """The caller's limits (its tier's, or its key's own) and their subject."""
        tier = self.tiers[caller.principal.tier]
        key = caller.api_key
        if key is not None and key.limits != Limits():
            return key.limits.over(tier.limits), f"key:{key.id}"
        return tier.limits, f"user:{caller.principal.user_id}"

    async def _admit(
        self, caller: Caller, job_id: str, messages: list[ChatMessage], params: SamplingParams
    ) -> tuple[SamplingParams, Admitted]:
        """The caller's max_tokens cap applied, and the admission."""
        limits, subject = self.limits_of(caller)
        cap = limits.max_tokens or 0
        if cap and params.max_tokens is not None and params.max_tokens > cap:
            raise InvalidRequestError(f"max_tokens may be at most {cap} for your tier", param="max_tokens")
        if cap and params.max_tokens is None:
            params = msgspec.structs.replace(params, max_tokens=cap)
        prompt = sum(estimate_tokens(message_text(message)) for message in messages)
        cost = (prompt + (params.max_tokens or DEFAULT_RESERVE)) * (params.n or 1)  # n answers: n times as much
        tpm = limits.tokens_per_minute or 0
        if tpm and cost > tpm:
            raise InvalidRequestError(
                f"the request needs about {cost} tokens (prompt and max_tokens), more than your {tpm} tokens per "
                "minute",
                param="max_tokens",
            )
        return params, await self.limiter.admit(subject, limits, job_id, cost)

    async def open_stream(self, caller: Caller, job: GenerationJob) -> OpenStream:
        """Start ``job``; raise its failure as an HTTP error if it fails before the first token.

        Until the response starts nothing else watches the connection, so a client that leaves while
        the status is held back is noticed here, and the job cancelled at once.
        """
        run = await self.jobs.run(job).__aenter__()
        head: list[Event | None] = []
        commit_at = time.monotonic() + self.jobs.commit_timeout
        disconnect = asyncio.ensure_future(caller.disconnected())
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

    async def _gather(self, job: GenerationJob) -> Answer:
        async with self.jobs.run(job) as run:
            return await gather_answer(aiter(run), job.model)

    async def collect(self, caller: Caller, job: GenerationJob) -> Answer:
        """The whole answer of ``job``; if the client disconnects first, the job ends as its policy says."""
        gather = asyncio.create_task(self._gather(job))
        disconnect = asyncio.ensure_future(caller.disconnected())
        try:
            await asyncio.wait({gather, disconnect}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            disconnect.cancel()
            if not gather.done():
                gather.cancel()  # the client left: the handle's exit cancels the job
                with contextlib.suppress(asyncio.CancelledError):
                    await gather
        if gather.cancelled():
            raise GatewayError("the client closed the connection", code=ErrorCode.CANCELLED)
        return gather.result()
