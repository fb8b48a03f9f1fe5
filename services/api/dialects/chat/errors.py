"""The chat API's error body, on every ``/api/v1/*`` path it serves:
``{"error": {"status": 404, "code": "not_found", "message": "...", "param": "chatId"}}`` (all four keys)."""

from services.api.errors import GatewayProblem
from services.api.wire import encode_json

__all__ = ["error_object", "render_error"]


def error_object(status: int, code: str, message: str, param: str | None = None) -> dict[str, object]:
    return {"status": status, "code": code, "message": message, "param": param}


def render_error(problem: GatewayProblem) -> bytes:
    return encode_json({"error": error_object(problem.status, problem.code, problem.message, problem.param)})
