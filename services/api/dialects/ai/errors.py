"""The simple AI API's error body: ``{"detail": message, "code": code}`` (plus ``param`` for bad input)."""

from services.api.errors import GatewayProblem
from services.api.wire import encode_json

__all__ = ["error_object", "render_error"]


def error_object(code: str, message: str, param: str | None = None) -> dict[str, str]:
    body = {"detail": message, "code": code}
    if param:
        body["param"] = param
    return body


def render_error(problem: GatewayProblem) -> bytes:
    return encode_json(error_object(problem.code, problem.message, problem.param))
