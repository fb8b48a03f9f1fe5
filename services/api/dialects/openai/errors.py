"""OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}`` (all four keys, always)."""

from services.api.errors import GatewayProblem
from services.api.wire import encode_json
from shared.errors import ErrorCode

__all__ = ["error_object", "render_error"]

_TYPE: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}

_CODE: dict[ErrorCode, str] = {
    ErrorCode.AUTHENTICATION: "invalid_api_key",
    ErrorCode.MODEL_NOT_FOUND: "model_not_found",
    ErrorCode.RATE_LIMITED: "rate_limit_exceeded",
    ErrorCode.UPSTREAM_RATE_LIMITED: "rate_limit_exceeded",
}


def error_object(status: int, code: str, message: str, param: str | None = None) -> dict[str, object]:
    try:
        wire_code = _CODE.get(ErrorCode(code), code)
    except ValueError:
        wire_code = code
    return {
        "message": message,
        "type": _TYPE.get(status, "server_error" if status >= 500 else "invalid_request_error"),  # noqa: PLR2004
        "param": param,
        "code": wire_code,
    }


def render_error(problem: GatewayProblem) -> bytes:
    return encode_json({"error": error_object(problem.status, problem.code, problem.message, problem.param)})
