"""Anthropic error bodies ``{"type": "error", "error": {"type", "message"}, "request_id"}`` -> ``GatewayError``."""

import httpx
import msgspec

from services.worker.providers._status import error_for_status, parse_retry_after
from services.worker.providers.base import Target
from shared.errors import GatewayError

__all__ = ["to_error"]


class _Error(msgspec.Struct):
    type: str = ""
    message: str = ""


class _Body(msgspec.Struct):
    error: _Error | None = None


def to_error(status: int, body: bytes, headers: httpx.Headers, target: Target) -> GatewayError:
    try:
        parsed = msgspec.json.decode(body, type=_Body)
        error = parsed.error or _Error()
        detail = error.message or error.type
    except (msgspec.DecodeError, msgspec.ValidationError):
        detail = body[:200].decode("utf-8", errors="replace").strip()  # e.g. an HTML page from a proxy
    return error_for_status(
        target.provider, status, detail, secret=target.api_key, retry_after=parse_retry_after(headers)
    )
