"""The JSON log format: one object per line, the context's ids, a record's fields, its exception."""

import json
import logging
import sys

from services.telemetry.logs import JOB_ID, REQUEST_ID, JsonFormatter


def _line(record: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_a_line_holds_the_time_level_logger_message_and_the_fields_a_record_carries() -> None:
    record = logging.makeLogRecord(
        {"name": "conduit.worker", "levelno": 20, "levelname": "INFO", "msg": "job %s done", "args": ("j1",)}
    )
    record.provider, record.model, record.duration_ms, record.unknown = "openai", "gpt-4o-mini", 12.5, "left out"
    line = _line(record)
    assert line["level"] == "info" and line["logger"] == "conduit.worker" and line["message"] == "job j1 done"
    assert str(line["time"]).endswith("Z") and "T" in str(line["time"])
    assert (line["provider"], line["model"], line["duration_ms"]) == ("openai", "gpt-4o-mini", 12.5)
    assert "unknown" not in line and "request_id" not in line


def test_the_ids_come_from_the_context_unless_the_record_names_its_own() -> None:
    request, job = REQUEST_ID.set("req_1"), JOB_ID.set("job_1")
    try:
        plain = _line(logging.makeLogRecord({"msg": "hello"}))
        named = logging.makeLogRecord({"msg": "hello"})
        named.job_id = "job_2"
        assert (plain["request_id"], plain["job_id"]) == ("req_1", "job_1")
        assert _line(named)["job_id"] == "job_2"
    finally:
        REQUEST_ID.reset(request)
        JOB_ID.reset(job)


def test_an_exception_stays_inside_its_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = _line(record)
    assert "ValueError: boom" in str(line["exception"])
