"""Upstream HTTP statuses and transport failures -> coded ``GatewayError``s (one table for every adapter)."""

import re

import httpx

from shared.errors import ErrorCode, GatewayError, UpstreamError, UpstreamTimeoutError

__all__ = ["error_for_status", "parse_retry_after", "redact", "transport_error"]

_STATUS: dict[int, tuple[ErrorCode, bool]] = {
    400: (ErrorCode.UPSTREAM_BAD_REQUEST, False),
    401: (ErrorCode.UPSTREAM_AUTH, False),
    402: (ErrorCode.UPSTREAM_PERMISSION, False),
    403: (ErrorCode.UPSTREAM_PERMISSION, False),
    404: (ErrorCode.UPSTREAM_NOT_FOUND, False),
    408: (ErrorCode.UPSTREAM_TIMEOUT, True),
    409: (ErrorCode.UPSTREAM_ERROR, True),
    413: (ErrorCode.UPSTREAM_BAD_REQUEST, False),
    422: (ErrorCode.UPSTREAM_BAD_REQUEST, False),
    429: (ErrorCode.UPSTREAM_RATE_LIMITED, True),
    503: (ErrorCode.UPSTREAM_OVERLOADED, True),
    504: (ErrorCode.UPSTREAM_TIMEOUT, True),
    529: (ErrorCode.UPSTREAM_OVERLOADED, True),
}

# things that look like credentials, whatever the provider echoed back
_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{10,}|Bearer\s+\S+|key=[^&\s]+)")


def redact(text: str, secret: str = "") -> str:
    """``text`` with ``secret`` and anything key-shaped masked."""
    if secret:
        text = text.replace(secret, "***")
    return _SECRET.sub("***", text)


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (numeric form), if present."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def error_for_status(
    provider: str,
    status: int,
    detail: str,
    *,
    secret: str = "",
    code: ErrorCode | None = None,
    retry_after: float | None = None,
) -> GatewayError:
    """A ``GatewayError`` for an upstream error status, its message naming the provider and status."""
    mapped, retryable = _STATUS.get(status, (ErrorCode.UPSTREAM_ERROR, status >= 500))  # noqa: PLR2004
    message = f"{provider} returned HTTP {status}"
    if detail:
        message += f": {redact(detail, secret)[:500]}"
    return UpstreamError(
        message, code=code or mapped, retryable=retryable, upstream_status=status, retry_after=retry_after
    )


def transport_error(provider: str, exc: httpx.HTTPError) -> GatewayError:
    """A timeout or a broken connection talking to ``provider`` (no URL in the message: it may hold a key)."""
    if isinstance(exc, httpx.TimeoutException):
        kind = type(exc).__name__.replace("Timeout", " timeout").strip().lower()
        return UpstreamTimeoutError(f"{provider} did not answer in time ({kind})")
    if isinstance(exc, httpx.RemoteProtocolError):
        return UpstreamError(
            f"{provider} closed the connection before the response was complete",
            code=ErrorCode.UPSTREAM_INCOMPLETE,
            retryable=True,
        )
    return UpstreamError(
        f"could not reach {provider}: {type(exc).__name__}", code=ErrorCode.UPSTREAM_CONNECTION, retryable=True
    )
