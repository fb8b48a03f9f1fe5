"""The benchmark's own code runs end to end: ``SMOKE=1 python -m tests.bench`` (a few requests per scenario)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bench.chat import GENERATE_ROWS, READ_ROWS

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("direct", "conduit")
SCALE_OUT = ("ns-c64", "st-c64", "st-c256")  # also measured with a second worker process, as "conduit-2w"
# variables the benchmark reads that would change what a smoke run does
BENCH_ENV = ("QUICK", "REPS", "COMPARE_URL", "COMPARE_KEY", "COMPARE_MODEL", "COMPARE_NAME", "BENCH_UPSTREAM_PORT")


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.mark.timeout(300)
def test_bench_smoke_run_writes_a_complete_report_without_errors(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in BENCH_ENV} | {"SMOKE": "1", "BENCH_OUT": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n--- stderr\n{_tail(done.stderr)}"

    reports, tables = sorted(tmp_path.glob("bench-*.json")), sorted(tmp_path.glob("bench-*.md"))
    assert len(reports) == 1, reports
    assert len(tables) == 1, tables

    report: dict[str, Any] = json.loads(reports[0].read_text())
    scenarios = list(report["scenarios"])
    assert scenarios, "no scenarios in the report"
    assert set(SCALE_OUT) <= set(scenarios)
    results = report["results"]
    assert set(results) == set(scenarios)
    reps = report["environment"]["reps"]
    assert reps >= 1
    for key in scenarios:
        expected = {*TARGETS, "conduit-2w"} if key in SCALE_OUT else set(TARGETS)
        assert set(results[key]) == expected, key
        for target, repetitions in results[key].items():
            assert len(repetitions) == reps, (key, target)
            for figures in repetitions:
                assert figures["requests"] > 0, (key, target, figures)
                assert figures["errors"] == 0, (key, target, figures["error_samples"])

    assert 0 < report["admission"]["p50_us"] <= report["admission"]["p99_us"]
    scale = report["scale"]
    assert [row["processes"] for row in scale] == [2]
    for row in scale:
        for kind in ("nonstream", "stream"):
            figures = row[kind]
            assert figures["requests"] > 0 and figures["errors"] == 0, (row["processes"], kind, figures)
            assert figures["redis_cpu_ms_per_1000"] is not None and figures["redis_cpu_ms_per_1000"] > 0
        assert row["stream"]["tokens_per_s"] > 0
    _check_chat(report["chat"], reps)
    table = tables[0].read_text()
    assert "### Admission" in table
    assert "### Non-stream" in table
    assert "### Streaming" in table
    assert "### Chat API" in table
    assert "POST /api/v1/chat/generate" in table
    assert "GET /api/v1/chat/fetch" in table


def _check_chat(chat: dict[str, Any], reps: int) -> None:
    """Every chat row ran every repetition, checked answers only (a turn stores exactly its two messages)."""
    assert chat["plan"]["messages"] == 200
    assert chat["body_bytes"] > 200 * 100, "the turn's body does not carry a 200-message history"
    assert set(chat["results"]) == {*GENERATE_ROWS, *READ_ROWS}
    for row, repetitions in chat["results"].items():
        assert len(repetitions) == reps, row
        for figures in repetitions:
            assert figures["requests"] > 0, (row, figures)
            assert figures["errors"] == 0, (row, figures["error_samples"])
            assert 0 < figures["p50_ms"] <= figures["p99_ms"], (row, figures)
