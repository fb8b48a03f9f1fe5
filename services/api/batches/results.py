"""A batch line's result as a line of its output or error file, in OpenAI's shape:
``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``.

The ``body`` of an answered line is what the synchronous endpoint would have answered, byte for byte: drawn by
the same dialect body builder (``Drawing``) from the line's events; a failed line's is that
endpoint's error body, with its status. A line never run (the batch expired or was cancelled first) has no
response, and an ``error`` saying why.
"""

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

import msgspec

from services.api.answer import Answer, answer_of
from services.api.errors import ErrorRenderer, GatewayProblem, status_for
from services.stores.batches import BatchRecord, LineResult, read_lines
from services.stores.files import FileStore
from services.stores.redis_batches import RedisBatchStore
from shared.batches import BatchLine
from shared.codec import decode_events
from shared.errors import ErrorCode, GatewayError
from shared.jobs import StreamView

__all__ = ["CHUNK", "Drawing", "rendered", "result_line"]

#: lines rendered per read of their results
CHUNK = 512

_encode = msgspec.json.Encoder().encode
OK = 200
_NOT_RUN = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request was not executed: the batch was cancelled first."),
}


class Drawing(NamedTuple):
    """How a line's answer and error are drawn: the endpoint's body builder (by the job's dialect name, as
    ``registry.body_for``; ``None``: not its), and its error renderer."""

    body: Callable[[StreamView, Answer], bytes | None]
    error: ErrorRenderer


def result_line(line: BatchLine, result: LineResult | None, ends_as: str, draw: Drawing) -> tuple[bool, bytes]:
    """(whether it goes to the output file, not the error file; the JSONL line, newline included)."""
    out: dict[str, Any] = {"id": f"batch_req_{secrets.token_hex(12)}", "custom_id": line.custom_id}
    if result is None:
        code, message = _NOT_RUN.get(ends_as, _NOT_RUN["cancelled"])
        return False, _encode({**out, "response": None, "error": {"code": code, "message": message}}) + b"\n"
    view = StreamView(
        dialect=line.dialect, id=f"{line.id_prefix}{result.job_id}", model=line.model_named, created=result.created
    )
    try:
        body = draw.body(view, answer_of(decode_events(result.events), line.model))
        status = OK
    except GatewayError as exc:
        status = status_for(exc.code)
        problem = GatewayProblem(status=status, code=ErrorCode(exc.code), message=exc.message, param=exc.param)
        body = draw.error(problem)
    if body is None:  # a dialect no longer served: the line's answer cannot be drawn
        status = 500
        body = draw.error(GatewayProblem(status=status, code=ErrorCode.INTERNAL, message="no renderer"))
    response = {"status_code": status, "request_id": result.job_id, "body": msgspec.Raw(body)}
    return status == OK, _encode({**out, "response": response, "error": None}) + b"\n"


async def rendered(
    store: RedisBatchStore, files: FileStore, record: BatchRecord, ends_as: str | None, draw: Drawing
) -> AsyncIterator[tuple[bool, bytes]]:
    """The batch's lines as output or error file lines, in input order (``result_line``); with ``ends_as``
    ``None`` (a batch still running) only the lines that have a result."""
    async for chunk in read_lines(files, record.lines_file_id, CHUNK):
        results = await store.results(record.id, [line.custom_id for line in chunk])
        for line, result in zip(chunk, results, strict=True):
            if result is not None or ends_as is not None:
                yield result_line(line, result, ends_as or "completed", draw)
