"""One error root for the whole gateway.

    GatewayError                 code, message, retryable, upstream_status
    ├── InvalidRequestError      bad input (400/404/422)
    ├── AuthError                missing or bad credentials (401/403)
    ├── RateLimitedError         over a limit (429)
    ├── UnavailableError         Redis or workers unavailable (503)
    ├── UpstreamError            the provider answered with an error, or the stream broke
    │   └── UpstreamTimeoutError the provider did not answer in time
    └── InternalError            a bug; carries a correlation id in its message

The API maps ``ErrorCode`` to an HTTP status with one table; each dialect renders the body.
"""

from enum import StrEnum
from typing import Literal

__all__ = [
    "FAULTS",
    "AuthError",
    "ErrorCode",
    "Fault",
    "GatewayError",
    "InternalError",
    "InvalidRequestError",
    "RateLimitedError",
    "UnavailableError",
    "UpstreamError",
    "UpstreamTimeoutError",
]


class ErrorCode(StrEnum):
    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    MODEL_NOT_FOUND = "model_not_found"
    PROVIDER_NOT_CONFIGURED = "provider_not_configured"
    #: a proxy endpoint's upstream is one the egress policy refuses (its scheme, host or address)
    UPSTREAM_NOT_ALLOWED = "upstream_not_allowed"
    #: a request field the chosen provider cannot honour (OpenAI's own code for such a 400)
    UNSUPPORTED_PARAMETER = "unsupported_parameter"
    REQUEST_TOO_LARGE = "request_too_large"
    RATE_LIMITED = "rate_limited"
    UPSTREAM_BAD_REQUEST = "upstream_bad_request"
    UPSTREAM_AUTH = "upstream_auth"
    UPSTREAM_PERMISSION = "upstream_permission"
    UPSTREAM_NOT_FOUND = "upstream_not_found"
    UPSTREAM_RATE_LIMITED = "upstream_rate_limited"
    UPSTREAM_OVERLOADED = "upstream_overloaded"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_CONNECTION = "upstream_connection"
    UPSTREAM_INCOMPLETE = "upstream_incomplete"
    NO_WORKER = "no_worker"
    WORKER_LOST = "worker_lost"
    UNAVAILABLE = "unavailable"
    CANCELLED = "cancelled"
    INTERNAL = "internal"


#: whose fault an error is (the metrics' ``error_type``): the caller's request, a policy of the gateway (tier, limit,
#: egress), the provider, or the gateway itself
Fault = Literal["caller", "policy", "provider", "gateway"]

FAULTS: dict[ErrorCode, Fault] = {
    ErrorCode.INVALID_REQUEST: "caller",
    ErrorCode.AUTHENTICATION: "caller",
    ErrorCode.NOT_FOUND: "caller",
    ErrorCode.CONFLICT: "caller",
    ErrorCode.MODEL_NOT_FOUND: "caller",
    ErrorCode.UNSUPPORTED_PARAMETER: "caller",
    ErrorCode.REQUEST_TOO_LARGE: "caller",
    ErrorCode.CANCELLED: "caller",
    ErrorCode.PERMISSION_DENIED: "policy",
    ErrorCode.RATE_LIMITED: "policy",
    ErrorCode.UPSTREAM_NOT_ALLOWED: "policy",
    ErrorCode.PROVIDER_NOT_CONFIGURED: "policy",
    ErrorCode.UPSTREAM_BAD_REQUEST: "provider",
    ErrorCode.UPSTREAM_AUTH: "provider",
    ErrorCode.UPSTREAM_PERMISSION: "provider",
    ErrorCode.UPSTREAM_NOT_FOUND: "provider",
    ErrorCode.UPSTREAM_RATE_LIMITED: "provider",
    ErrorCode.UPSTREAM_OVERLOADED: "provider",
    ErrorCode.UPSTREAM_ERROR: "provider",
    ErrorCode.UPSTREAM_TIMEOUT: "provider",
    ErrorCode.UPSTREAM_CONNECTION: "provider",
    ErrorCode.UPSTREAM_INCOMPLETE: "provider",
    ErrorCode.NO_WORKER: "gateway",
    ErrorCode.WORKER_LOST: "gateway",
    ErrorCode.UNAVAILABLE: "gateway",
    ErrorCode.INTERNAL: "gateway",
}


class GatewayError(Exception):
    code: ErrorCode = ErrorCode.INTERNAL
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        retryable: bool | None = None,
        upstream_status: int | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable
        self.upstream_status = upstream_status
        self.param = param
        self.retry_after = retry_after
        #: extra response headers (a 429's x-ratelimit-*)
        self.headers = headers or {}


class InvalidRequestError(GatewayError):
    code = ErrorCode.INVALID_REQUEST


class AuthError(GatewayError):
    code = ErrorCode.AUTHENTICATION


class RateLimitedError(GatewayError):
    code = ErrorCode.RATE_LIMITED
    retryable = True


class UnavailableError(GatewayError):
    code = ErrorCode.UNAVAILABLE
    retryable = True


class UpstreamError(GatewayError):
    code = ErrorCode.UPSTREAM_ERROR


class UpstreamTimeoutError(UpstreamError):
    code = ErrorCode.UPSTREAM_TIMEOUT
    retryable = True


class InternalError(GatewayError):
    code = ErrorCode.INTERNAL
