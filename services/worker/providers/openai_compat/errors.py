"""OpenAI error bodies ``{"error": {"message", "type", "param", "code"}}`` -> ``GatewayError``."""

from typing import Any

import httpx
import msgspec

from services.worker.providers._status import error_for_status, parse_retry_after
from services.worker.providers.base import Target
from shared.errors import GatewayError

__all__ = ["to_error"]


class _Error(msgspec.Struct):
    message: str = ""
    type: str | None = None
    code: Any = None


class _Body(msgspec.Struct):
    error: _Error | str | None = None


def to_error(status: int, body: bytes, headers: httpx.Headers, target: Target) -> GatewayError:
    detail = ""
    quota = False
    try:
        parsed = msgspec.json.decode(body, type=_Body)
        if isinstance(parsed.error, _Error):
            detail = parsed.error.message
            quota = "insufficient_quota" in (str(parsed.error.code), str(parsed.error.type))
        elif isinstance(parsed.error, str):
            detail = parsed.error
    except (msgspec.DecodeError, msgspec.ValidationError):
        detail = body[:200].decode("utf-8", errors="replace").strip()
    error = error_for_status(
        target.provider, status, detail, secret=target.api_key, retry_after=parse_retry_after(headers)
    )
    if quota:
        error.retryable = False  # billing, not a passing limit
    return error
