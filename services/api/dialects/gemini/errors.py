"""Google's error body: ``{"error": {"code", "message", "status"}}``, indented by two, a newline at the end.

A refusal of the request's own fields adds ``details``: one ``google.rpc.BadRequest`` whose
``fieldViolations`` name each refused field (``error_body``); every other error, the gateway's own
included, is the three keys alone (``render_error``).
"""

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from services.api.errors import GatewayProblem
from services.api.wire import escape_line_breaks
from shared.errors import ErrorCode, InvalidRequestError

__all__ = [
    "GOOGLE_STATUS",
    "GeminiRequestError",
    "Violation",
    "error_body",
    "google_status",
    "render_error",
]

#: HTTP status -> ``google.rpc.Code`` name, as Google's error bodies pair them
GOOGLE_STATUS: Final[dict[int, str]] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
Violation = tuple[str | None, str]  # (field path, description)


def google_status(status: int) -> str:
    """Google's status name for an HTTP status (``UNKNOWN`` for one it does not pair)."""
    return GOOGLE_STATUS.get(status, "UNKNOWN")


def error_body(code: int, message: str, status: str, *, violations: Sequence[Violation] = ()) -> bytes:
    """Google's error body: indented by two, a newline at the end, ``details`` only for field violations."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if violations:
        found = [{"field": f, "description": d} if f else {"description": d} for f, d in violations]
        error["details"] = [{"@type": _BAD_REQUEST, "fieldViolations": found}]
    return escape_line_breaks(msgspec.json.format(msgspec.json.encode({"error": error}), indent=2)) + b"\n"


def render_error(problem: GatewayProblem) -> bytes:
    """The gateway's error in Google's shape: the HTTP status, its ``google.rpc.Code`` name, the message."""
    return error_body(problem.status, problem.message, google_status(problem.status))


class GeminiRequestError(InvalidRequestError):
    """A request Google would refuse; ``body()`` is Google's answer. ``code`` stays the gateway's
    ``ErrorCode``: the HTTP status Google would send is ``http_status``."""

    def __init__(
        self,
        message: str,
        *,
        status: str = "INVALID_ARGUMENT",
        code: int = 400,
        field_path: str | None = None,
        violations: Sequence[Violation] = (),
    ) -> None:
        field_path = field_path or next((f for f, _ in violations if f), None)
        error_code = ErrorCode.NOT_FOUND if code == 404 else ErrorCode.INVALID_REQUEST  # noqa: PLR2004
        super().__init__(message, code=error_code, param=field_path)
        self.status = status
        self.http_status = code
        self.field_path = field_path
        self.violations = tuple(violations)

    def body(self) -> bytes:
        return error_body(self.http_status, self.message, self.status, violations=self.violations)
