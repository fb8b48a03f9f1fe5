"""A worker's metrics, served on a port of its own (``CONDUIT_WORKER_METRICS_PORT``; ``services.telemetry``).

What only a worker sees: each job's provider call (its duration, its time to the first chunk, the tokens it
used by provider, model and tier), retries, fallbacks and upstream errors by their fault, and the jobs it runs.
The job-end hook (``on_end``) records a job once, whatever ended it.
"""

import time

from prometheus_client import Counter, Gauge, Histogram

from services.telemetry.metrics import DURATION_BUCKETS, REGISTRY, TOKEN_BUCKETS, Labels, operation
from services.worker.job_end import Command, JobEnd
from shared.catalog import Catalog
from shared.errors import FAULTS, ErrorCode
from shared.events import Failed
from shared.jobs import GenerationJob

__all__ = ["IN_FLIGHT", "JobMetrics"]

_MODEL = ("gen_ai_provider_name", "gen_ai_request_model")
_CODES = frozenset(code.value for code in ErrorCode)

TOKENS = Histogram(
    "gen_ai_client_token_usage",
    "Tokens each job used (billable: input and output), by provider, model and tier",
    ["gen_ai_token_type", *_MODEL, "tier"],
    buckets=TOKEN_BUCKETS,
    registry=REGISTRY,
)
DURATION = Histogram(
    "gen_ai_client_operation_duration_seconds",
    "How long each job's provider call took, from the worker taking the job to its end",
    ["gen_ai_operation_name", *_MODEL, "error_type"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
FIRST_CHUNK = Histogram(
    "gen_ai_client_operation_time_to_first_chunk_seconds",
    "From the worker taking a job to the provider's first chunk of content",
    ["gen_ai_operation_name", *_MODEL],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
JOBS = Counter(
    "conduit_jobs",
    "Jobs ended, by outcome (done, failed) and, for a failure, whose fault and its code",
    ["outcome", "error_type", "code"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge("conduit_jobs_in_flight", "Jobs this worker is running now", ["kind"], registry=REGISTRY)
RETRIES = Counter(
    "conduit_upstream_retries",
    "Provider calls retried before the first token",
    ["gen_ai_provider_name"],
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "conduit_fallbacks",
    "Jobs handed to the catalog's next provider after the first failed",
    ["gen_ai_provider_name", "fallback_provider_name"],
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    "conduit_upstream_errors",
    "Provider calls that failed, by provider, fault and code",
    ["gen_ai_provider_name", "error_type", "code"],
    registry=REGISTRY,
)


class JobMetrics:
    """Labels bounded by the worker's catalog; ``on_end`` is a job-end hook."""

    def __init__(self, catalog: Catalog) -> None:
        self.labels = Labels(catalog)

    def first_chunk(self, job: GenerationJob, provider: str, model: str, seconds: float) -> None:
        labels = self.labels
        FIRST_CHUNK.labels(operation(job), labels.provider(job, provider), labels.model(job, provider, model)).observe(
            seconds
        )

    async def on_end(self, job: GenerationJob, end: JobEnd) -> Command | None:
        provider, model = self.labels.provider(job, end.provider), self.labels.model(job, end.provider, end.model)
        code, fault = "", ""
        if isinstance(end.terminal, Failed):
            code = end.terminal.code if end.terminal.code in _CODES else ErrorCode.INTERNAL.value
            fault = FAULTS.get(ErrorCode(code), "gateway")
        JOBS.labels("failed" if code else "done", fault, code).inc()
        if end.started:
            DURATION.labels(operation(job), provider, model, fault).observe(time.monotonic() - end.started)
        if end.usage is not None:
            tier = job.principal.tier
            TOKENS.labels("input", provider, model, tier).observe(end.usage.prompt_tokens)
            TOKENS.labels("output", provider, model, tier).observe(end.usage.completion_tokens)
        return None

    def retry(self, job: GenerationJob, provider: str) -> None:
        RETRIES.labels(self.labels.provider(job, provider)).inc()

    def fallback(self, job: GenerationJob, provider: str, to: str) -> None:
        FALLBACKS.labels(self.labels.provider(job, provider), self.labels.provider(job, to)).inc()

    def upstream_error(self, job: GenerationJob, provider: str, code: ErrorCode) -> None:
        UPSTREAM_ERRORS.labels(self.labels.provider(job, provider), FAULTS[code], code.value).inc()
