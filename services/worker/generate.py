"""The pipeline of one job: resolve the target, stream the provider, publish events. Celery-free.

A retryable failure before the first token is retried (``retry.backoff``), then the catalog's fallbacks
are tried in order; after the first token nothing is retried, and the failure ends the job.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import httpx

from services.sealing import Sealer
from services.telemetry.logs import JOB_ID, REQUEST_ID
from services.worker.job_end import JobEnd, JobEndHook, run_hooks
from services.worker.metrics import JobMetrics
from services.worker.outcome import Outcome, announce, publish_piece, usage_of
from services.worker.providers.base import FinishPiece, SourcePiece, Target
from services.worker.providers.fan_out import fan_out
from services.worker.providers.registry import NATIVE, Streamer
from services.worker.proxy import client_refused, proxy_target
from services.worker.publisher import JobPublisher
from services.worker.retry import backoff
from services.worker.settings import WorkerSettings
from services.worker.sink import EventSink
from services.worker.tracing import end_job_span, job_span
from shared import keys
from shared.catalog import Catalog
from shared.codec import encode_record
from shared.errors import ErrorCode, GatewayError
from shared.events import Done, Failed, Started
from shared.jobs import GenerationJob, SamplingParams, StreamRecord

__all__ = ["JobCancelledError", "PipelineContext", "resolve_target", "run_job"]

log = logging.getLogger("conduit.worker")

#: longest a job parses without letting the loop run (its flusher, other jobs): the first token of a burst
#: that arrived in one read goes out before the rest is parsed
TIME_SLICE = 0.0005
#: the provider kinds that give one answer per call: ``n > 1`` is ``n`` calls at once (``fan_out``)
FANNED_OUT = frozenset({"anthropic", "echo"})
#: how long ``Started`` waits for the first tokens so that both take one flush (it is bookkeeping for the API's
#: queue deadline, while the first token is what the client waits for)
START_HOLD = 0.05


class JobCancelledError(Exception):
    """The client went away (cancel flag, cancel message, or nobody listening any more)."""

    def __init__(self, message: str = "the client cancelled the request") -> None:
        super().__init__(message)
        self.message = message


class PipelineContext:
    """What every job of a worker process shares."""

    def __init__(
        self,
        settings: WorkerSettings,
        catalog: Catalog,
        client: httpx.AsyncClient,
        sink: EventSink,
        streamers: dict[str, Streamer],
        cancel_requested: Callable[[GenerationJob], Awaitable[bool]] | None = None,
        watched: Callable[[GenerationJob], Awaitable[bool]] | None = None,
        ends: Sequence[JobEndHook] = (),
        proxy_client: httpx.AsyncClient | None = None,
        sealer: Sealer | None = None,
        metrics: JobMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.client = client
        self.sink = sink
        self.streamers = streamers
        #: whether a job's client left while it waited in the queue (its cancel flag)
        self.cancel_requested = cancel_requested
        #: whether an API replica is relaying a resume of the job (its own reply channel may be silent)
        self.watched = watched
        #: what runs at the end of every job: usage accounting, saving a chat's reply (``JobEndHook``)
        self.ends = ends
        #: set when the worker stops: jobs cancelled from then on end ``worker_lost``, not ``cancelled``
        self.shutting_down = False
        #: the client for upstreams a client named (``egress.GuardedTransport``), and what opens their keys
        self.proxy_client = proxy_client
        self.sealer = sealer
        #: the worker's metrics (first chunks, retries, fallbacks, upstream errors; the job-end hook counts the rest)
        self.metrics = metrics


def resolve_target(provider: str, model: str, settings: WorkerSettings, catalog: Catalog) -> Target:
    spec = catalog.providers.get(provider)
    if spec is None:
        raise GatewayError(f"unknown provider {provider!r}", code=ErrorCode.MODEL_NOT_FOUND)
    credentials = settings.credentials.get(provider)
    if credentials is None:
        raise GatewayError(
            f"provider {provider!r} is not configured on this worker (set {spec.api_key_env})",
            code=ErrorCode.PROVIDER_NOT_CONFIGURED,
        )
    return Target(provider=provider, spec=spec, base_url=credentials.base_url, api_key=credentials.api_key, model=model)


def _targets(job: GenerationJob, ctx: PipelineContext) -> list[Target]:
    """The job's own target, then the catalog's fallbacks for it that this worker holds keys for (a proxy job:
    the upstream its client named, alone)."""
    if job.upstream is not None:
        return [proxy_target(job, ctx.settings, ctx.sealer)]
    targets = [resolve_target(job.provider, job.model, ctx.settings, ctx.catalog)]
    for provider, model in ctx.catalog.fallbacks_for(job.provider, job.model):
        if provider in ctx.settings.credentials:
            targets.append(resolve_target(provider, model, ctx.settings, ctx.catalog))
    return targets


def _wanted(source: SourcePiece, params: SamplingParams) -> bool:
    """A cited source unless ``citations: false``; a listed search result only with ``raw: true``."""
    return params.citations is not False if source.start >= 0 else bool(params.raw)


async def _stream(
    job: GenerationJob,
    ctx: PipelineContext,
    target: Target,
    publisher: JobPublisher,
    outcome: Outcome,
    started: float,
) -> None:
    """``started``: when the worker took the job (``time.monotonic()``)."""
    upstream, client = job.upstream, ctx.client
    kind: str = target.spec.kind
    if upstream is not None:
        if ctx.proxy_client is None:
            raise GatewayError("this worker does not call client-named upstreams", code=ErrorCode.INTERNAL)
        client, kind = ctx.proxy_client, NATIVE if upstream.kind == "gemini" else kind
    streamer = ctx.streamers[kind]
    outcome.provider, outcome.model = target.provider, target.model
    loop = asyncio.get_running_loop()
    turn_ends = 0.0  # the first piece ends the first turn: it goes out before the rest of a burst is parsed
    n = job.params.n or 1
    called = (
        fan_out(streamer, client, job, target, n) if n > 1 and kind in FANNED_OUT else streamer(client, job, target)
    )
    async with contextlib.aclosing(called) as pieces:
        async for piece in pieces:
            if isinstance(piece, SourcePiece) and not _wanted(piece, job.params):
                continue
            had_content = outcome.content
            publish_piece(piece, publisher, outcome)
            if not had_content and outcome.content and ctx.metrics is not None:
                ctx.metrics.first_chunk(job, target.provider, target.model, time.monotonic() - started)
            publisher.raise_if_broken()
            if loop.time() >= turn_ends:  # a burst already buffered would otherwise be parsed in one go
                await asyncio.sleep(0)
                turn_ends = loop.time() + TIME_SLICE
    if outcome.finish is None:
        raise GatewayError(f"{target.provider} stream ended without a finish", code=ErrorCode.UPSTREAM_INCOMPLETE)


async def _generate(
    job: GenerationJob, ctx: PipelineContext, publisher: JobPublisher, outcome: Outcome, started: float
) -> None:
    """Stream the first target that answers: retryable failures before the first token are retried after a
    backoff, then the next fallback is tried; the last failure is raised. A fallback that cannot take the
    request's fields (``unsupported_parameter``) is passed over: the failure reported stays the one before."""
    settings = ctx.settings
    targets = _targets(job, ctx)
    failure: GatewayError | None = None
    for index, target in enumerate(targets):
        for attempt in range(settings.upstream_retries + 1):
            try:
                await _stream(job, ctx, target, publisher, outcome, started)
                return
            except GatewayError as exc:
                exc = client_refused(exc, job)
                if ctx.metrics is not None:
                    ctx.metrics.upstream_error(job, target.provider, exc.code)
                if index and exc.code == ErrorCode.UNSUPPORTED_PARAMETER and failure is not None:
                    log.warning("job %s: fallback %s passed over: %s", job.id, target.provider, exc.message)
                    break
                if not exc.retryable or outcome.content:
                    raise
                failure = exc
                outcome.usage = outcome.finish = outcome.meta = None
                wait = None
                if attempt < settings.upstream_retries:
                    wait = backoff(attempt, settings.retry_base_delay, settings.retry_max_delay, exc.retry_after)
                if wait is None:
                    if index < len(targets) - 1:
                        log.warning("job %s: %s; falling back to %s", job.id, exc.message, targets[index + 1].provider)
                        if ctx.metrics is not None:
                            ctx.metrics.fallback(job, target.provider, targets[index + 1].provider)
                    break
                log.info("job %s: %s; retrying in %.2f s", job.id, exc.message, wait)
                if ctx.metrics is not None:
                    ctx.metrics.retry(job, target.provider)
                await asyncio.sleep(wait)
    raise failure or GatewayError("no provider could take the job", code=ErrorCode.INTERNAL)


def _failure(exc: BaseException, job: GenerationJob, total: float) -> Failed:
    if isinstance(exc, GatewayError):
        return Failed(
            seq=0,
            code=exc.code,
            message=exc.message,
            retryable=exc.retryable,
            upstream_status=exc.upstream_status,
            param=exc.param,
        )
    if isinstance(exc, JobCancelledError):
        return Failed(seq=0, code=ErrorCode.CANCELLED, message=exc.message)
    if isinstance(exc, TimeoutError):
        return Failed(
            seq=0, code=ErrorCode.UPSTREAM_TIMEOUT, message=f"the job exceeded its total deadline of {total:g} s"
        )
    correlation = uuid.uuid4().hex[:12]
    log.error("job %s failed (correlation id %s)", job.id, correlation, exc_info=exc)
    return Failed(seq=0, code=ErrorCode.INTERNAL, message=f"internal error (correlation id {correlation})")


def _publisher(
    job: GenerationJob, ctx: PipelineContext, task: "asyncio.Task[object] | None", orphans: set[str]
) -> JobPublisher:
    async def orphaned() -> None:
        """Nobody has heard the job's flushes for a while: its API process is gone (or its pub/sub
        connection has not come back). A detached job runs on for a resume; so does one a resume on
        another replica is watching; any other stops."""
        if job.on_disconnect == "detach" or task is None:
            return
        if ctx.watched is not None and await ctx.watched(job):
            return
        log.info("job %s: nobody has listened for %g s; cancelling", job.id, ctx.settings.orphan_grace)
        orphans.add(job.id)
        task.cancel()

    record = None
    if job.view is not None:
        owner = job.principal.user_id
        record = encode_record(
            StreamRecord(owner=owner, view=job.view, stream=job.stream, on_disconnect=job.on_disconnect)
        )
    return JobPublisher(
        ctx.sink,
        job.id,
        ctx.settings.heartbeat_interval,
        job.reply_to,
        orphaned,
        START_HOLD,
        record,
        ctx.settings.orphan_grace,
        keys.job_name(job.principal.user_id, job.name) if job.name else "",
    )


def _log_end(job: GenerationJob, published: Failed | Done, end: JobEnd) -> None:
    """The job's end line: readable as text, its fields apart in JSON logs (``services.telemetry.logs``)."""
    principal, provider, model, usage = job.principal, end.provider, end.model, end.usage
    tokens = "" if usage is None else f", {usage.prompt_tokens} + {usage.completion_tokens} tokens"
    fields: dict[str, object] = {"provider": provider, "model": model, "tier": principal.tier}
    elapsed = round((time.monotonic() - end.started) * 1000, 1)
    fields |= {"status": type(published).__name__.lower(), "duration_ms": elapsed}
    if usage is not None:
        fields |= {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
    if isinstance(published, Failed):
        fields["error_code"] = published.code
    log.info(
        "job %s %s (user %s, tier %s, key %s, %s/%s%s%s)",
        job.id,
        type(published).__name__.lower(),
        principal.user_id,
        principal.tier,
        principal.key_id or "-",
        provider,
        model,
        tokens,
        " estimated" if usage is not None and usage.estimated else "",
        extra=fields,
    )


async def run_job(job: GenerationJob, ctx: PipelineContext) -> Failed | Done:
    """Run ``job`` to exactly one terminal event, which is published and returned.

    Cancellation of the calling task (the client's cancel message, or flushes that reached nobody for
    ``orphan_grace``) ends the job with ``cancelled``, after the usage it saw.
    """
    started, span = time.monotonic(), job_span(job)
    JOB_ID.set(job.id)  # the job's own task: its log lines name it, and its request
    REQUEST_ID.set(job.request_id)
    task = asyncio.current_task()
    orphans: set[str] = set()  # holds the job's id once nobody listened (or resumed) for orphan_grace
    publisher = _publisher(job, ctx, task, orphans)
    outcome = Outcome()
    if job.chat is not None:
        outcome.parts = []
    terminal: Failed | Done
    try:
        if job.deadline and time.time() > job.deadline:
            raise GatewayError("no worker took the job before its queue deadline", code=ErrorCode.NO_WORKER)
        if ctx.cancel_requested is not None and await ctx.cancel_requested(job):
            raise JobCancelledError
        publisher.emit(Started(seq=0, worker=ctx.settings.worker_name))
        async with asyncio.timeout(ctx.settings.total_timeout):
            await _generate(job, ctx, publisher, outcome, started)
        finish = outcome.finish or FinishPiece("stop")  # _stream raised if the upstream never finished
        announce(publisher, outcome)
        elapsed = int((time.time() - job.created) * 1000) if job.created else 0
        model = finish.model or outcome.model or job.model
        terminal = Done(
            seq=0,
            finish_reason=finish.reason,
            model=model,
            elapsed_ms=max(0, elapsed),
            finish_reasons=list(finish.reasons),
        )
    except asyncio.CancelledError:
        if task is not None:
            task.uncancel()
        reason: Exception = (
            GatewayError(
                "the worker shut down before the answer was complete", code=ErrorCode.WORKER_LOST, retryable=True
            )
            if ctx.shutting_down
            else JobCancelledError(
                f"nobody listened to the stream for {ctx.settings.orphan_grace:g} s (its API process is gone) "
                "and no resume followed it"
            )
            if orphans
            else JobCancelledError()
        )
        terminal = _failure(reason, job, ctx.settings.total_timeout)
    except Exception as exc:
        terminal = _failure(exc, job, ctx.settings.total_timeout)
    usage = usage_of(job, outcome)
    if usage is not None:
        publisher.emit(usage)
    provider, model = outcome.provider or job.provider, outcome.model or job.model
    if span is not None:
        end_job_span(span, terminal, usage, provider, model)
    end = JobEnd(terminal, usage, provider, model, "".join(outcome.parts or ()), started)
    saves = await run_hooks(ctx.ends, job, end)
    admission = job.admission
    release = ("ZREM", keys.lease(admission.subject), job.id) if admission is not None and admission.lease else None
    published = await publisher.close(terminal, release, saves)  # the lease and the saves go with the end
    _log_end(job, published, end)
    return published
