"""What the API's and the workers' metrics share: the process's registry, the OpenTelemetry GenAI buckets,
bounded labels, and the text exposition.

Names follow the OpenTelemetry GenAI semantic conventions where one exists, in Prometheus form (dots become
underscores, the unit is a suffix: ``gen_ai.client.token.usage`` is ``gen_ai_client_token_usage``); Conduit's
own are ``conduit_*``. Every label set is bounded: a model is named only when the catalog lists it (else
``other``), a provider only when the catalog has it, an error by its code (a closed enum) and its fault
(``shared.errors.FAULTS``), a route by its template, a tier by the tier policy's names.
"""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest

from shared.catalog import Catalog
from shared.jobs import GenerationJob

__all__ = [
    "CONTENT_TYPE",
    "DURATION_BUCKETS",
    "FAST_BUCKETS",
    "OTHER",
    "REGISTRY",
    "TOKEN_BUCKETS",
    "Labels",
    "exposition",
    "operation",
]

#: the metrics of this process (an API or a worker), with its own CPU, memory and file descriptors
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

#: ``gen_ai.client.operation.duration``'s advised buckets (seconds)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
#: ``gen_ai.client.token.usage``'s advised buckets (tokens)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
#: the gateway's own latencies (seconds): HTTP handling, Redis round trips
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
#: a label value outside the bounded set (a model the catalog does not list, a proxy's upstream)
OTHER = "other"
#: the exposition's media type, without its charset (the web framework adds it)
CONTENT_TYPE = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")


class Labels:
    """Bounded label values of a job's call: the catalog's providers and the models it lists, else ``OTHER``, and
    always ``OTHER`` for a proxy job's upstream (its client named it)."""

    def __init__(self, catalog: Catalog) -> None:
        self._providers = frozenset(catalog.providers)
        self._models = frozenset(
            (route.provider, name) for route in catalog.models for name in (route.upstream_model, route.id)
        ) | frozenset((name, spec.default_model) for name, spec in catalog.providers.items())

    def provider(self, job: GenerationJob, provider: str) -> str:
        return provider if job.upstream is None and provider in self._providers else OTHER

    def model(self, job: GenerationJob, provider: str, model: str) -> str:
        return model if job.upstream is None and (provider, model) in self._models else OTHER


def exposition() -> bytes:
    """The registry in Prometheus' text format (``CONTENT_TYPE``)."""
    return generate_latest(REGISTRY)


def operation(job: GenerationJob) -> str:
    """The GenAI operation name of a job: ``chat``, ``text_completion`` (a legacy prompt), ``generate_content``
    (Gemini's own API passed through)."""
    if job.upstream is not None and job.upstream.kind == "gemini":
        return "generate_content"
    return "text_completion" if job.prompt is not None else "chat"
