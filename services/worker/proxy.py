"""Where a proxy endpoint's job goes: the upstream its client named, with the key its client gave.

The upstream's base URL is checked against the egress policy again here (the API checked it, but the worker
is the one that connects; its transport, ``egress.py``, then checks every address it resolves). The key
travels sealed (``services.sealing``) and is opened here, for this job's owner only; a worker without the
sealing key, or with another one, refuses the job with a clear error. A Gemini job without a key of its
client's uses the gateway's own Gemini key, and only if the upstream is the gateway's configured Gemini base
URL: the gateway's key is never sent to a host a client chose.

No fallbacks: the client chose the upstream.
"""

import httpx

from services.proxy_config import proxy_policy
from services.sealing import Sealer, SealError
from services.worker.egress import refused
from services.worker.providers.base import Target
from services.worker.settings import WorkerSettings
from shared.catalog import ProviderKind, ProviderSpec
from shared.egress import EgressRefusedError, parse_upstream
from shared.errors import ErrorCode, GatewayError
from shared.jobs import GenerationJob, UpstreamOverride

__all__ = ["client_refused", "proxy_target"]

GEMINI = "gemini"


def _same_place(configured: str, named: str) -> bool:
    a, b = httpx.URL(configured), httpx.URL(named)
    return (a.scheme, a.host, a.port, a.path.rstrip("/")) == (b.scheme, b.host, b.port, b.path.rstrip("/"))


def _key(job: GenerationJob, upstream: UpstreamOverride, settings: WorkerSettings, sealer: Sealer | None) -> str:
    if upstream.sealed_key:
        if sealer is None:
            raise GatewayError(
                "this worker cannot open the job's upstream key: CONDUIT_SEALING_KEY is not set on it",
                code=ErrorCode.UNAVAILABLE,
            )
        try:
            return sealer.open(upstream.sealed_key, job.principal.user_id)
        except SealError:
            raise GatewayError(
                "this worker cannot open the job's upstream key: its CONDUIT_SEALING_KEY is not the API's",
                code=ErrorCode.UNAVAILABLE,
            ) from None
    own = settings.credentials.get(GEMINI) if upstream.kind == GEMINI else None
    if own is None or not _same_place(own.base_url, upstream.base_url):
        raise GatewayError(
            "no upstream key was given (send x-goog-api-key, or the key query parameter); the gateway's own "
            "Gemini key is used only for its own Gemini base URL",
            code=ErrorCode.AUTHENTICATION,
        )
    return own.api_key


def proxy_target(job: GenerationJob, settings: WorkerSettings, sealer: Sealer | None) -> Target:
    upstream = job.upstream
    if upstream is None:
        raise GatewayError("not a proxy job", code=ErrorCode.INTERNAL)
    policy = proxy_policy(settings)
    try:
        checked = parse_upstream(upstream.base_url, policy)
    except EgressRefusedError as exc:
        raise refused(exc) from None
    kind: ProviderKind = "gemini" if upstream.kind == GEMINI else "openai_compat"
    field = upstream.max_tokens_field
    spec = ProviderSpec(kind=kind, base_url=checked.base_url, default_model=job.model, max_tokens_field=field)
    key = _key(job, upstream, settings, sealer)
    return Target(provider=checked.origin, spec=spec, base_url=checked.base_url, api_key=key, model=job.model)


def client_refused(exc: GatewayError, job: GenerationJob) -> GatewayError:
    """The upstream refusing the client's own key is the client's 401 or 403 (the upstream's message, the key
    redacted), not a gateway fault (a 502, as when the gateway's own key is refused)."""
    upstream = job.upstream
    if upstream is None or not upstream.sealed_key:
        return exc
    if exc.code == ErrorCode.UPSTREAM_AUTH:
        exc.code = ErrorCode.AUTHENTICATION
    elif exc.code == ErrorCode.UPSTREAM_PERMISSION and exc.upstream_status == 403:  # noqa: PLR2004
        exc.code = ErrorCode.PERMISSION_DENIED
    return exc
