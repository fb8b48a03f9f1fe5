"""A batch input file, checked line by line as its bytes stream in (at upload), each refusal naming its line.

A line is OpenAI's batch request (``{"custom_id", "method": "POST", "url", "body"}``); its ``body`` is checked
exactly as the synchronous endpoint at ``url`` checks a request (``requests.py``), model included, and becomes
the canonical job the batch workers will run (``shared.batches.BatchLine``). All lines of a file call one
endpoint (a batch has one), ``custom_id`` is unique, and the caps on lines and bytes hold. What the file needs
of the gateway at run time (its endpoint, the providers its lines use) is kept for the batch's creation, which
checks it against the workers then present.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

from services.api.dialects.openai.requests import chat_request, completion_request
from services.api.generation import JobRequest
from services.api.settings import ApiSettings
from shared.batches import BatchLine
from shared.catalog import Catalog
from shared.errors import GatewayError, InvalidRequestError

__all__ = ["ENDPOINTS", "BatchInput", "LineChecker"]

#: the endpoints a batch may call, and how a line's body becomes a job for each
ENDPOINTS: dict[str, Callable[[bytes, ApiSettings, Catalog], tuple[Any, JobRequest]]] = {
    "/v1/chat/completions": chat_request,
    "/v1/completions": completion_request,
}
#: the longest custom_id (OpenAI's guide sets none; this keeps records and error lines bounded)
MAX_CUSTOM_ID = 512


class _Line(msgspec.Struct, forbid_unknown_fields=True):
    custom_id: str
    method: str
    url: str
    body: msgspec.Raw


_LINE = msgspec.json.Decoder(_Line)


class BatchInput(NamedTuple):
    """What a checked input file holds: its request lines, the endpoint they call, the providers they use."""

    lines: int
    endpoint: str
    providers: tuple[str, ...]


def _refused(number: int, message: str, param: str | None = None) -> GatewayError:
    return InvalidRequestError(f"line {number}: {message}", param=param or "file")


class LineChecker:
    def __init__(self, settings: ApiSettings, catalog: Catalog, *, max_lines: int, max_line_bytes: int) -> None:
        self._settings = settings
        self._catalog = catalog
        self._max_lines = max_lines
        self._max_line_bytes = max_line_bytes
        self._pending = bytearray()
        self._number = 0  # lines seen (blank ones included: a refusal names the line an editor shows)
        self._requests = 0
        self._seen: set[str] = set()
        self._endpoint = ""
        self._providers: set[str] = set()

    def feed(self, chunk: bytes) -> list[BatchLine]:
        """The lines ``chunk`` completes, checked and translated; the first refused raises
        ``InvalidRequestError``."""
        self._pending += chunk
        start, lines = 0, []
        while (end := self._pending.find(b"\n", start)) >= 0:
            if (line := self._line(bytes(self._pending[start:end]))) is not None:
                lines.append(line)
            start = end + 1
        del self._pending[:start]
        if len(self._pending) > self._max_line_bytes:
            raise _refused(self._number + 1, f"longer than {self._max_line_bytes} bytes")
        return lines

    def close(self) -> tuple[BatchInput, list[BatchLine]]:
        """The file ended: what it holds, and its last line (one with no newline after it), translated."""
        last = self._line(bytes(self._pending)) if self._pending else None
        self._pending.clear()
        if not self._requests:
            raise InvalidRequestError("the file holds no request lines; a batch input is JSONL", param="file")
        found = BatchInput(self._requests, self._endpoint, tuple(sorted(self._providers)))
        return found, [last] if last is not None else []

    def _line(self, raw: bytes) -> BatchLine | None:
        self._number += 1
        if not raw.strip():
            return None
        self._requests += 1
        number = self._number
        if self._requests > self._max_lines:
            raise _refused(number, f"a batch input may hold at most {self._max_lines} requests")
        line = self._request(number, raw)
        build = ENDPOINTS.get(line.url)
        if build is None:
            known = ", ".join(ENDPOINTS)
            raise _refused(number, f"url {line.url!r} is not an endpoint a batch can call ({known})", "url")
        if self._endpoint and line.url != self._endpoint:
            raise _refused(number, f"url {line.url!r} differs from the file's earlier lines ({self._endpoint})", "url")
        self._endpoint = line.url
        try:
            body, job = build(bytes(line.body), self._settings, self._catalog)
        except GatewayError as exc:
            raise _refused(number, exc.message, f"body.{exc.param}" if exc.param else "body") from None
        if body.stream:
            raise _refused(number, "stream is not supported in a batch (results go to the output file)", "body.stream")
        self._providers.add(job.provider)
        rendering = job.rendering
        return BatchLine(
            custom_id=line.custom_id,
            provider=job.provider,
            model=job.model,
            messages=job.messages,
            params=job.params,
            prompt=job.prompt,
            dialect=rendering.dialect,
            id_prefix=rendering.id_prefix,
            model_named=rendering.model,
        )

    def _request(self, number: int, raw: bytes) -> _Line:
        """The line as a batch request with a new ``custom_id`` and method POST."""
        try:
            line = _LINE.decode(raw)
        except msgspec.ValidationError as exc:
            raise _refused(number, f"not a batch request line: {exc}") from None
        except msgspec.DecodeError as exc:
            raise _refused(number, f"not JSON (a batch input is JSONL, one request per line): {exc}") from None
        if not line.custom_id:
            raise _refused(number, "custom_id is empty", "custom_id")
        if len(line.custom_id) > MAX_CUSTOM_ID:
            raise _refused(number, f"custom_id is longer than {MAX_CUSTOM_ID} characters", "custom_id")
        if line.custom_id in self._seen:
            raise _refused(number, f"custom_id {line.custom_id!r} is used by an earlier line", "custom_id")
        self._seen.add(line.custom_id)
        if line.method != "POST":
            raise _refused(number, f"method must be POST, not {line.method!r}", "method")
        return line
