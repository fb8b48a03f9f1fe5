"""``services.worker.proxy``: where a proxy job goes, and with which key (pure: no sockets)."""

import pytest

from services.sealing import Sealer
from services.worker.proxy import client_refused, proxy_target
from services.worker.settings import Credentials, WorkerSettings
from shared.errors import ErrorCode, GatewayError
from shared.jobs import ChatMessage, GenerationJob, Principal, UpstreamOverride

SEALER = Sealer("unit-tests-sealing-key-0123456789abcdef")
GEMINI = "https://generativelanguage.googleapis.com"


def _job(upstream: UpstreamOverride, user: str = "ana") -> GenerationJob:
    return GenerationJob(
        id="j1",
        request_id="r1",
        principal=Principal(user_id=user, tier="pro"),
        provider=upstream.origin,
        model="their-model",
        messages=[ChatMessage(role="user", content="hi")],
        upstream=upstream,
    )


def _openai(
    key: str = "sk-theirs", user: str = "ana", base_url: str = "https://llm.example.com/v1"
) -> UpstreamOverride:
    return UpstreamOverride(base_url=base_url, origin="llm.example.com", sealed_key=SEALER.seal(key, user))


def test_the_target_is_the_named_upstream_with_the_clients_key() -> None:
    target = proxy_target(_job(_openai()), WorkerSettings(), SEALER)
    assert (target.provider, target.base_url, target.api_key, target.model) == (
        "llm.example.com",
        "https://llm.example.com/v1",
        "sk-theirs",
        "their-model",
    )
    assert target.spec.kind == "openai_compat" and target.spec.max_tokens_field == "max_tokens"


@pytest.mark.parametrize(
    ("sealer", "user", "says"),
    [
        (None, "ana", "CONDUIT_SEALING_KEY is not set"),
        (Sealer("another-sealing-key-0123456789abcdefghij"), "ana", "is not the API's"),
        (SEALER, "bob", "is not the API's"),  # sealed for ana: bob's job does not open it
    ],
)
def test_a_worker_that_cannot_open_the_key_refuses_the_job(sealer: Sealer | None, user: str, says: str) -> None:
    job = _job(_openai(user="ana"), user=user)
    with pytest.raises(GatewayError) as refused:
        proxy_target(job, WorkerSettings(), sealer)
    assert refused.value.code == ErrorCode.UNAVAILABLE and says in refused.value.message


def test_the_worker_checks_the_upstream_again() -> None:
    job = _job(_openai(base_url="https://127.0.0.1/v1"))
    with pytest.raises(GatewayError) as refused:
        proxy_target(job, WorkerSettings(), SEALER)
    assert refused.value.code == ErrorCode.UPSTREAM_NOT_ALLOWED and "(rule: address/loopback)" in refused.value.message
    allowed = WorkerSettings(proxy_allow="127.0.0.1")
    assert proxy_target(job, allowed, SEALER).base_url == "https://127.0.0.1/v1"


def test_the_gateways_gemini_key_goes_to_its_own_gemini_url_only() -> None:
    own = WorkerSettings(credentials={"gemini": Credentials(api_key="AIza-gateway", base_url=GEMINI)})
    mine = UpstreamOverride(base_url=GEMINI, kind="gemini", origin="generativelanguage.googleapis.com")
    assert proxy_target(_job(mine), own, SEALER).api_key == "AIza-gateway"
    elsewhere = UpstreamOverride(base_url="https://gemini.example.com", kind="gemini", origin="gemini.example.com")
    with pytest.raises(GatewayError) as refused:
        proxy_target(_job(elsewhere), own, SEALER)
    assert refused.value.code == ErrorCode.AUTHENTICATION


def test_an_upstream_refusing_the_clients_key_is_the_clients_401_or_403() -> None:
    job = _job(_openai())
    unauthorized = GatewayError("x returned 401", code=ErrorCode.UPSTREAM_AUTH, upstream_status=401)
    assert client_refused(unauthorized, job).code == ErrorCode.AUTHENTICATION
    forbidden = GatewayError("x returned 403", code=ErrorCode.UPSTREAM_PERMISSION, upstream_status=403)
    assert client_refused(forbidden, job).code == ErrorCode.PERMISSION_DENIED
    gateway_key = _job(UpstreamOverride(base_url=GEMINI, kind="gemini", origin="g"))
    own = GatewayError("x returned 401", code=ErrorCode.UPSTREAM_AUTH, upstream_status=401)
    assert client_refused(own, gateway_key).code == ErrorCode.UPSTREAM_AUTH  # the gateway's key: a 502
