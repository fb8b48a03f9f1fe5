"""A batch line's result as a line of its output or error file, in OpenAI's shape:
``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``.

The ``body`` of an answered line is what the synchronous endpoint would have answered, byte for byte: drawn by
the same dialect body builder (``registry.body_for``) from the line's events; a failed line's is that
endpoint's error body, with its status. A line never run (the batch expired or was cancelled first) has no
response, and an ``error`` saying why.
"""

import secrets
from typing import Any

import msgspec

from services.api.answer import answer_of
from services.api.dialects import registry
from services.api.errors import GatewayProblem, status_for
from services.stores.batches import LineResult
from shared.batches import BatchLine
from shared.codec import decode_events
from shared.errors import ErrorCode, GatewayError
from shared.jobs import StreamView

__all__ = ["result_line"]

_encode = msgspec.json.Encoder().encode
OK = 200
_NOT_RUN = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request was not executed: the batch was cancelled first."),
}


def _renderer(endpoint: str) -> Any:
    return next(render for prefix, render in registry.error_renderers() if endpoint.startswith(prefix))


def result_line(endpoint: str, line: BatchLine, result: LineResult | None, ends_as: str) -> tuple[bool, bytes]:
    """(whether it goes to the output file, not the error file; the JSONL line, newline included)."""
    out: dict[str, Any] = {"id": f"batch_req_{secrets.token_hex(12)}", "custom_id": line.custom_id}
    if result is None:
        code, message = _NOT_RUN.get(ends_as, _NOT_RUN["cancelled"])
        return False, _encode({**out, "response": None, "error": {"code": code, "message": message}}) + b"\n"
    view = StreamView(
        dialect=line.dialect, id=f"{line.id_prefix}{result.job_id}", model=line.model_named, created=result.created
    )
    try:
        body = registry.body_for(view, answer_of(decode_events(result.events), line.model))
        status = OK
    except GatewayError as exc:
        status = status_for(exc.code)
        problem = GatewayProblem(status=status, code=ErrorCode(exc.code), message=exc.message, param=exc.param)
        body = _renderer(endpoint)(problem)
    if body is None:  # a dialect no longer served: the line's answer cannot be drawn
        status, body = (
            500,
            _renderer(endpoint)(GatewayProblem(status=500, code=ErrorCode.INTERNAL, message="no renderer")),
        )
    response = {"status_code": status, "request_id": result.job_id, "body": msgspec.Raw(body)}
    return status == OK, _encode({**out, "response": response, "error": None}) + b"\n"
