"""Scale-out on one Redis: 1, 2 and 4 API processes with as many worker processes, the same closed-loop load
spread evenly over the APIs (as a load balancer would), non-streaming then streaming; for each size the requests
per second, the streamed tokens per second, and Redis' own CPU time per 1,000 requests (``INFO cpu``), which
says how far one Redis goes: one core of Redis CPU per second, divided by that cost.

Each size runs on a fresh Redis, workers and APIs of its own against the run's fake upstream; the other
processes of the run are stopped first, so the machine's cores are theirs (and the load generator's)."""

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.bench.load import Run, Target, closed_loop
from tests.bench.stack import BenchStack

__all__ = ["ScalePlan", "scale_bench", "scale_plan"]

TOKENS = 50  # tokens per answer, streamed as fast as the fake upstream sends them


@dataclass(frozen=True)
class ScalePlan:
    sizes: tuple[int, ...]
    window: float
    concurrency: int


def scale_plan(quick: bool, smoke: bool) -> ScalePlan:
    if smoke:
        return ScalePlan(sizes=(2,), window=0.3, concurrency=8)  # two of each: the spreading and the counting
    return ScalePlan(sizes=(1, 2, 4), window=2.0 if quick else 4.0, concurrency=64)


def _redis_cpu(url: str) -> float:
    """Seconds of CPU the Redis server used so far (system and user)."""
    client = redis.Redis.from_url(url)
    try:
        info: dict[str, Any] = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def _spread(targets: list[Target], concurrency: int, window: float, stream: bool) -> Run:
    """``concurrency`` clients split evenly over ``targets``, for ``window`` seconds."""
    share = max(1, concurrency // len(targets))
    runs = await asyncio.gather(*(closed_loop(t, share, window, stream, TOKENS) for t in targets))
    merged = Run(elapsed=max(run.elapsed for run in runs))
    for run in runs:
        merged.outcomes += run.outcomes
    return merged


async def _measure(stack: BenchStack, targets: list[Target], plan: ScalePlan, stream: bool) -> dict[str, Any]:
    before = _redis_cpu(stack.redis_url)
    run = await _spread(targets, plan.concurrency, plan.window, stream)
    used = _redis_cpu(stack.redis_url) - before
    ok = run.ok
    figures: dict[str, Any] = {
        "requests": len(run.outcomes),
        "errors": len(run.errors),
        "rps": len(ok) / run.elapsed if run.elapsed else 0.0,
        "redis_cpu_ms_per_1000": 1000 * 1000 * used / len(ok) if ok else None,
    }
    if stream:
        figures["tokens_per_s"] = sum(o.tokens for o in ok) / run.elapsed if run.elapsed else 0.0
    return figures


async def scale_bench(upstream_port: int, plan: ScalePlan, say: Callable[[str], None]) -> list[dict[str, Any]]:
    rows = []
    for size in plan.sizes:
        stack = BenchStack(Path(tempfile.mkdtemp(prefix=f"conduit-bench-scale{size}-")), upstream_port=upstream_port)
        try:
            stack.start_conduit(workers=size, apis=size)
            say(f"scale-out: {size} API and {size} worker processes on one Redis")
            targets = [
                Target(f"api{i}", f"http://127.0.0.1:{port}/v1", stack.token())
                for i, port in enumerate(stack.api_ports)
            ]
            await _spread(targets, plan.concurrency, min(plan.window, 1.0), True)  # warm-up
            row: dict[str, Any] = {"processes": size}
            row["nonstream"] = await _measure(stack, targets, plan, False)
            row["stream"] = await _measure(stack, targets, plan, True)
            rows.append(row)
        finally:
            with contextlib.suppress(Exception):
                stack.stop()
    return rows


def scale_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The report's scale-out table."""
    lines = [
        "",
        "### Scale-out on one Redis (N API + N worker processes, load spread over the APIs)",
        "",
        "| N | non-stream req/s | Redis CPU ms / 1,000 non-stream | streams/s | streamed tokens/s "
        "| Redis CPU ms / 1,000 streams | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ns, st = row["nonstream"], row["stream"]
        errors = f"{ns['errors'] + st['errors']}/{ns['requests'] + st['requests']}"

        def cpu(figures: dict[str, Any]) -> str:
            value = figures["redis_cpu_ms_per_1000"]
            return "-" if value is None else f"{value:,.0f}"

        lines.append(
            f"| {row['processes']} | {ns['rps']:,.0f} | {cpu(ns)} | {st['rps']:,.0f} | {st['tokens_per_s']:,.0f} "
            f"| {cpu(st)} | {errors} |"
        )
    return lines
