from typing import Any

import pytest

from services.api.caller import NAME_HEADER, POLICY_HEADER
from services.api.cors import ALLOW_HEADERS, EXPOSE_HEADERS, MAX_AGE, CorsMiddleware, parse_origins
from services.api.ratelimit.limiter import _Verdict, ratelimit_headers
from services.api.settings import ApiSettings
from services.api.sse import JOB_HEADER
from services.api.tiers import Limits
from shared.config import SettingsError, load_settings
from tests.unit.api.asgi import body_of, call, headers_of, http_scope, responder

pytestmark = pytest.mark.anyio

APP_ORIGIN = "http://app.example"
PREFLIGHT = {"origin": APP_ORIGIN, "access-control-request-method": "POST"}


def _cors(app: Any, origins: str = f"{APP_ORIGIN}, http://localhost:5173") -> CorsMiddleware:
    return CorsMiddleware(app, parse_origins(origins))


def _cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.startswith("access-control-")}


# --- the setting ------------------------------------------------------------------------------------


def test_origins_are_read_from_the_environment_and_normalised():
    settings = load_settings(
        ApiSettings, {"CONDUIT_CORS_ORIGINS": " https://App.Example.com:443 ,http://localhost:5173,"}
    )

    assert parse_origins(settings.cors_origins) == {"https://app.example.com", "http://localhost:5173"}
    assert parse_origins("") == frozenset()
    assert parse_origins("*") == {"*"}
    assert parse_origins("http://a.test:8080") == {"http://a.test:8080"}


@pytest.mark.parametrize(
    "value", ["https://app.example.com/", "app.example.com", "https://a.test/path", "https://a.test:x"]
)
def test_a_value_that_is_not_an_origin_names_the_variable(value):
    with pytest.raises(SettingsError, match=r"^CONDUIT_CORS_ORIGINS: "):
        parse_origins(f"http://ok.test,{value}")


# --- preflights -------------------------------------------------------------------------------------


async def test_a_preflight_from_an_allowed_origin_is_answered_before_the_app():
    app, seen = responder(status=401)  # the app would refuse it: no Authorization on a preflight
    headers = {**PREFLIGHT, "access-control-request-headers": "Authorization, Content-Type, X-Stainless-OS"}

    sent = await call(_cors(app), http_scope("OPTIONS", "/v1/chat/completions", headers))

    assert seen == []
    assert sent[0]["status"] == 204
    response = headers_of(sent)
    assert response["access-control-allow-origin"] == APP_ORIGIN
    assert "Origin" in response["vary"]
    assert set(response["access-control-allow-methods"].split(", ")) >= {"GET", "HEAD", "POST"}
    allowed = response["access-control-allow-headers"].split(", ")
    assert set(allowed) >= {*ALLOW_HEADERS, "x-stainless-os"}
    assert {"authorization", "content-type", "x-api-key", "last-event-id", "x-request-id"} <= set(allowed)
    assert {NAME_HEADER, POLICY_HEADER} <= set(allowed)
    assert response["access-control-max-age"] == str(MAX_AGE)
    assert "access-control-allow-credentials" not in response
    assert body_of(sent) == b""


async def test_a_preflight_from_another_origin_is_a_403_without_cors_headers():
    app, seen = responder()

    sent = await call(_cors(app), http_scope("OPTIONS", "/v1/models", {**PREFLIGHT, "origin": "http://evil.test"}))

    assert seen == []
    assert sent[0]["status"] == 403
    assert _cors_headers(headers_of(sent)) == {}


async def test_an_options_request_that_is_no_preflight_goes_to_the_app():
    app, seen = responder(status=204, headers=[(b"allow", b"GET, OPTIONS")])

    sent = await call(_cors(app), http_scope("OPTIONS", "/v1/models", {"origin": APP_ORIGIN}))

    assert len(seen) == 1
    assert headers_of(sent)["access-control-allow-origin"] == APP_ORIGIN


async def test_any_origin_with_a_star():
    app, _ = responder()

    sent = await call(_cors(app, "*"), http_scope("OPTIONS", "/x", {**PREFLIGHT, "origin": "https://whoever.test"}))

    assert sent[0]["status"] == 204
    assert headers_of(sent)["access-control-allow-origin"] == "https://whoever.test"


# --- actual responses -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 401, 404, 429, 503])
async def test_responses_to_an_allowed_origin_carry_the_origin_and_expose_headers(status):
    app, _ = responder(status, [(b"content-type", b"application/json"), (b"vary", b"Accept-Encoding")])

    sent = await call(_cors(app), http_scope("POST", "/v1/chat/completions", {"origin": APP_ORIGIN}))

    response = headers_of(sent)
    assert response["access-control-allow-origin"] == APP_ORIGIN
    assert response["access-control-expose-headers"].split(", ") == list(EXPOSE_HEADERS)
    assert response["vary"] == "Accept-Encoding, Origin"
    assert "access-control-allow-credentials" not in response


async def test_responses_to_another_origin_or_none_carry_no_cors_headers():
    app, _ = responder()

    other = headers_of(await call(_cors(app), http_scope("GET", "/v1/models", {"origin": "http://evil.test"})))
    without = headers_of(await call(_cors(app), http_scope("GET", "/v1/models")))

    assert _cors_headers(other) == {} and _cors_headers(without) == {}
    assert other["vary"] == without["vary"] == "Origin"  # a cache must not serve one origin's answer to another


async def test_a_stream_passes_through_part_by_part():
    parts = [b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"]
    app, _ = responder(parts=parts, headers=[(b"content-type", b"text/event-stream")])

    sent = await call(_cors(app), http_scope("POST", "/v1/chat/completions", {"origin": APP_ORIGIN}))

    assert [m["body"] for m in sent[1:]] == parts
    assert headers_of(sent)["access-control-allow-origin"] == APP_ORIGIN


def test_every_header_a_client_reads_is_exposed():
    limits = Limits(requests_per_minute=10, tokens_per_minute=1000)
    verdict = _Verdict(True, "", 0, 9, 6000, 990, 600)

    sent = set(ratelimit_headers(limits, verdict))

    assert len(sent) == 6
    assert sent | {JOB_HEADER, "x-request-id", "retry-after"} == set(EXPOSE_HEADERS)
