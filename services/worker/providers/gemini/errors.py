"""Gemini error bodies ``{"error": {"code", "message", "status", "details"}}`` -> ``GatewayError``.

Two Gemini quirks: a bad API key is HTTP 400 ``INVALID_ARGUMENT`` (reason ``API_KEY_INVALID``), and the
retry delay travels in a ``RetryInfo`` detail (``"34s"``) rather than a header. Some front ends wrap the
body in a one-element JSON array.
"""

import httpx
import msgspec

from services.worker.providers._status import error_for_status, parse_retry_after
from services.worker.providers.base import Target
from shared.errors import ErrorCode, GatewayError

__all__ = ["to_error"]


class _Detail(msgspec.Struct, rename="camel"):
    type: str = msgspec.field(default="", name="@type")
    reason: str | None = None
    retry_delay: str | None = None


class _Error(msgspec.Struct):
    code: int = 0
    message: str = ""
    status: str = ""
    details: list[_Detail] = []


class _Body(msgspec.Struct):
    error: _Error | None = None


_DECODER: msgspec.json.Decoder[_Body | list[_Body]] = msgspec.json.Decoder(_Body | list[_Body])


def _retry_delay(details: list[_Detail]) -> float | None:
    for detail in details:
        if detail.type.endswith("RetryInfo") and detail.retry_delay:
            try:
                return max(0.0, float(detail.retry_delay.removesuffix("s")))
            except ValueError:
                return None
    return None


def _parse(body: bytes) -> _Error | None:
    parsed = _DECODER.decode(body)
    if isinstance(parsed, list):
        return next((item.error for item in parsed if item.error is not None), None)
    return parsed.error


def _is_bad_key(status: int, error: _Error) -> bool:
    return (
        status == httpx.codes.BAD_REQUEST
        and error.status == "INVALID_ARGUMENT"
        and any(d.reason == "API_KEY_INVALID" for d in error.details)
    )


def to_error(status: int, body: bytes, headers: httpx.Headers, target: Target) -> GatewayError:
    try:
        error = _parse(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        error = None
    retry_after = parse_retry_after(headers)
    if error is None:
        detail, code = body[:200].decode("utf-8", errors="replace").strip(), None  # e.g. an HTML proxy page
    else:
        detail = error.message or error.status
        code = ErrorCode.UPSTREAM_AUTH if _is_bad_key(status, error) else None
        retry_after = retry_after if retry_after is not None else _retry_delay(error.details)
    return error_for_status(target.provider, status, detail, secret=target.api_key, code=code, retry_after=retry_after)
