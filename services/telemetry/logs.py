"""Log lines: human-readable by default, or one JSON object per line (``CONDUIT_LOG_FORMAT=json``).

A JSON line holds ``time`` (UTC, milliseconds), ``level``, ``logger`` and ``message``, then the request and job it
belongs to (``request_id``, ``job_id``: from the record, or from the context the API's request or the worker's job
set) and what the record carries of ``dialect``, ``provider``, ``model``, ``status``, ``route``, ``method``,
``duration_ms`` and token counts. Records never carry a key: the API logs a route template, never a raw path (a
proxy endpoint's path holds its client's key), and providers' errors are redacted before anything logs them.
"""

import contextvars
import datetime
import logging
import sys
from typing import Any, Literal

import msgspec

__all__ = ["FIELDS", "JOB_ID", "REQUEST_ID", "JsonFormatter", "LogFormat", "configure_logging"]

LogFormat = Literal["text", "json"]

#: the request and the job a line belongs to, where the record itself names none
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("conduit_request_id", default="")
JOB_ID: contextvars.ContextVar[str] = contextvars.ContextVar("conduit_job_id", default="")

#: what a record may carry as ``extra``, in the order a line shows it
FIELDS = (
    "request_id",
    "job_id",
    "dialect",
    "route",
    "method",
    "status",
    "provider",
    "model",
    "tier",
    "duration_ms",
    "prompt_tokens",
    "completion_tokens",
    "error_code",
)
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_encode = msgspec.json.Encoder().encode


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        line: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = {"request_id": REQUEST_ID.get(), "job_id": JOB_ID.get()}
        for name in FIELDS:
            value = getattr(record, name, None) or context.get(name)
            if value not in (None, ""):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encode(line).decode()


def configure_logging(fmt: LogFormat, level: int = logging.INFO) -> None:
    """The root logger's one handler, on stderr, in ``fmt``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # a library's warnings are lines of the same format
