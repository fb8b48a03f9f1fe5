"""Upstream statuses and transport failures -> coded errors; secrets never survive into messages."""

import httpx
import pytest

from services.worker.providers._status import error_for_status, parse_retry_after, redact, transport_error
from shared.errors import ErrorCode


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (httpx.ReadTimeout("slow"), ErrorCode.UPSTREAM_TIMEOUT, True),
        (httpx.ConnectTimeout("slow"), ErrorCode.UPSTREAM_TIMEOUT, True),
        (httpx.RemoteProtocolError("peer closed connection"), ErrorCode.UPSTREAM_INCOMPLETE, True),
        (httpx.ConnectError("refused"), ErrorCode.UPSTREAM_CONNECTION, True),
        (httpx.ReadError("reset"), ErrorCode.UPSTREAM_CONNECTION, True),
    ],
)
def test_transport_failures_map_to_codes(exc: httpx.HTTPError, code: ErrorCode, retryable: bool) -> None:
    error = transport_error("openai", exc)
    assert error.code == code
    assert error.retryable is retryable
    assert error.message.startswith(("openai ", "could not reach openai"))


def test_read_timeout_message_names_the_phase() -> None:
    assert transport_error("gemini", httpx.ReadTimeout("x")).message == "gemini did not answer in time (read timeout)"


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (401, ErrorCode.UPSTREAM_AUTH, False),
        (403, ErrorCode.UPSTREAM_PERMISSION, False),
        (404, ErrorCode.UPSTREAM_NOT_FOUND, False),
        (429, ErrorCode.UPSTREAM_RATE_LIMITED, True),
        (500, ErrorCode.UPSTREAM_ERROR, True),
        (503, ErrorCode.UPSTREAM_OVERLOADED, True),
        (529, ErrorCode.UPSTREAM_OVERLOADED, True),
        (418, ErrorCode.UPSTREAM_ERROR, False),
    ],
)
def test_statuses_map_to_codes(status: int, code: ErrorCode, retryable: bool) -> None:
    error = error_for_status("anthropic", status, "nope")
    assert (error.code, error.retryable, error.upstream_status) == (code, retryable, status)
    assert error.message == f"anthropic returned HTTP {status}: nope"


def test_redact_masks_the_key_and_key_shaped_text() -> None:
    text = "Incorrect API key provided: sk-proj-abcdef123456 (Bearer abc.def) key=AIzaSyA123456789012 and mysecret"
    masked = redact(text, secret="mysecret")
    for secret in ("sk-proj-abcdef123456", "abc.def", "AIzaSyA123456789012", "mysecret"):
        assert secret not in masked


def test_retry_after_prefers_milliseconds_and_ignores_dates() -> None:
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    assert parse_retry_after(httpx.Headers({"retry-after": "7"})) == 7.0
    assert parse_retry_after(httpx.Headers({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"})) is None
