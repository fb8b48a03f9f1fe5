"""``conduit batches watch``'s progress line."""

from services.batches_cli import progress


def _batch(completed: int, failed: int, total: int, status: str = "in_progress") -> dict[str, object]:
    counts = {"total": total, "completed": completed, "failed": failed}
    return {"id": "batch_1", "status": status, "request_counts": counts}


def test_the_line_shows_the_bar_the_counts_the_rate_and_the_time_left() -> None:
    line = progress(_batch(40, 2, 100), elapsed=4.0, done_at_start=2)
    assert "[############..................] 42/100 (2 failed)" in line
    assert "10.0 lines/s" in line and "6 s left" in line


def test_nothing_left_to_estimate_before_any_progress_or_at_the_end() -> None:
    assert progress(_batch(0, 0, 10), elapsed=0.0, done_at_start=0).endswith("0.0 lines/s  -")
    done = progress(_batch(10, 0, 10, "completed"), elapsed=2.0, done_at_start=0)
    assert "[" + "#" * 30 + "] 10/10" in done and done.endswith("-")
