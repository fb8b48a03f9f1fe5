"""The worker's span of a job's provider call (only when tracing is on: ``services.telemetry.traces``).

A ``CLIENT`` span named ``{gen_ai.operation.name} {gen_ai.request.model}``, a child of the API request's span
(the job's ``trace``), with the GenAI semantic conventions' attributes: the system, the request's model and
parameters, the model that answered, the token counts, the finish reasons, and ``error.type`` for a failure.
"""

from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from services.telemetry.metrics import operation
from services.telemetry.traces import parent_context, tracer
from shared.events import Done, Failed, Usage
from shared.jobs import GenerationJob

__all__ = ["end_job_span", "job_span"]

#: ``gen_ai.provider.name`` of the catalog's provider kinds that have one in the conventions
_SYSTEMS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}


def job_span(job: GenerationJob) -> Span | None:
    found = tracer()
    if found is None:
        return None
    name = operation(job)
    params = job.params
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": name,
        "gen_ai.provider.name": _SYSTEMS.get(job.provider, job.provider or "proxy"),
        "gen_ai.request.model": job.model,
        "gen_ai.request.stream": job.stream,
        "conduit.job.id": job.id,
        "conduit.request_id": job.request_id,
        "conduit.tier": job.principal.tier,
    }
    optional = {
        "gen_ai.request.max_tokens": params.max_tokens,
        "gen_ai.request.temperature": params.temperature,
        "gen_ai.request.top_p": params.top_p,
        "gen_ai.request.seed": params.seed,
        "gen_ai.request.choice.count": params.n,
        "gen_ai.request.stop_sequences": list(params.stop) or None,
    }
    attributes |= {key: value for key, value in optional.items() if value is not None}
    context = parent_context({"traceparent": job.trace}) if job.trace else None
    return found.start_span(f"{name} {job.model}", context=context, kind=SpanKind.CLIENT, attributes=attributes)


def end_job_span(span: Span, terminal: Done | Failed, usage: Usage | None, provider: str, model: str) -> None:
    span.set_attribute("conduit.provider", provider)  # the one that answered (a fallback's, a proxy's host)
    answered = terminal.model if isinstance(terminal, Done) and terminal.model else model
    span.set_attribute("gen_ai.response.model", answered)  # the upstream's own name (its dated snapshot)
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if usage.cached_tokens:
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", usage.cached_tokens)
        if usage.reasoning_tokens:
            span.set_attribute("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens)
    if isinstance(terminal, Done):
        span.set_attribute("gen_ai.response.finish_reasons", terminal.finish_reasons or [terminal.finish_reason])
    else:
        span.set_attribute("error.type", terminal.code)
        span.set_status(Status(StatusCode.ERROR, terminal.message[:200]))
    span.end()
