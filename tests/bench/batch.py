"""The batch section of ``make bench``: a batch of ``lines`` requests, uploaded and run through Conduit by one
batch worker (``conduit worker --queues batch``) against the bench's fake upstream: lines per second from the
batch's creation to its end, with nothing else running; then interactive requests (sequential non-stream chat
completions, one in flight) timed with no batch, and beside the same batch run again, in turns over a few
rounds, to show what a batch costs interactive traffic. Every line's result is checked (the batch must complete
with every line answered), and every loop is bounded by a count and by ``budget`` seconds.
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from tests.bench.client import Connection, Reply
from tests.bench.stack import BenchStack

__all__ = ["BatchPlan", "batch_bench", "batch_plan"]


@dataclass(frozen=True)
class BatchPlan:
    lines: int
    #: interactive requests timed with the batch idle (and at most as many while it runs), per round
    probes: int
    budget: float = 120.0
    tokens: int = 16
    #: rounds of (probes with no batch, probes beside a new batch), their requests pooled: a p99 of a few
    #: thousand requests, measured in turns, is not one scheduler hiccup
    rounds: int = 1


#: seconds between two reads of a running batch
POLL = 0.05
ENDED = ("completed", "failed", "expired", "cancelled")


async def _poll(client: httpx.AsyncClient, batch_id: str, until: float) -> None:
    """Read a batch every ``POLL`` seconds until cancelled or ``until`` (as a batch's watcher does)."""
    while time.monotonic() < until:
        await asyncio.sleep(POLL)
        (await client.get(f"/v1/batches/{batch_id}")).raise_for_status()


def batch_plan(quick: bool, smoke: bool) -> BatchPlan:
    if smoke:
        return BatchPlan(lines=200, probes=30, budget=30.0)
    if quick:
        return BatchPlan(lines=3000, probes=300, budget=60.0)
    return BatchPlan(lines=10_000, probes=1000, rounds=3)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _figures(replies: list[Reply]) -> dict[str, Any]:
    ms = [r.latency * 1000 for r in replies if r.error is None and r.status == 200]
    return {
        "requests": len(replies),
        "errors": len(replies) - len(ms),
        "p50_ms": _pct(ms, 0.5),
        "p90_ms": _pct(ms, 0.9),
        "p99_ms": _pct(ms, 0.99),
    }


def _input(count: int) -> bytes:
    lines = (
        {
            "custom_id": f"r{index}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Question number {index}"}]},
        }
        for index in range(count)
    )
    return "\n".join(json.dumps(line) for line in lines).encode() + b"\n"


async def _probe(conn: Connection, request: bytes, count: int, until: Callable[[], bool]) -> list[Reply]:
    """Up to ``count`` sequential requests, while ``until()`` is false."""
    replies: list[Reply] = []
    for _ in range(count):
        if until():
            break
        replies.append(await conn.send(request, 10.0))
    return replies


async def _run_batch(
    client: httpx.AsyncClient, plan: BatchPlan, beside: Callable[["asyncio.Task[None]"], Awaitable[list[Reply]]]
) -> tuple[dict[str, Any], float, list[Reply]]:
    """Upload and run a batch of ``plan.lines``, ``beside(watching)`` running meanwhile (``watching`` ends with
    the batch); the batch as it ended, seconds from its creation to its end, and what ``beside`` returned."""
    upload = await client.post(
        "/v1/files", files={"file": ("bench.jsonl", _input(plan.lines))}, data={"purpose": "batch"}
    )
    upload.raise_for_status()
    body = {"input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    made = await client.post("/v1/batches", json=body)
    made.raise_for_status()
    batch_id, started = made.json()["id"], time.monotonic()
    state: dict[str, Any] = made.json()

    async def watch() -> None:
        nonlocal state
        while state["status"] not in ENDED:
            if time.monotonic() > started + plan.budget:
                await client.post(f"/v1/batches/{batch_id}/cancel")
                return
            await asyncio.sleep(POLL)
            state = (await client.get(f"/v1/batches/{batch_id}")).json()

    watching = asyncio.create_task(watch())
    found = await beside(watching)
    await watching
    return state, time.monotonic() - started, found


async def batch_bench(stack: BenchStack, plan: BatchPlan, say: Callable[[str], None]) -> dict[str, Any]:
    """A batch alone (its lines/s), then ``rounds`` times: interactive requests with no batch, and the same
    requests beside the same batch run again (their latency, pooled over the rounds)."""
    headers = {"authorization": f"Bearer {stack.token()}"}
    conn = Connection("127.0.0.1", stack.api_port, headers)
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64})
    request = conn.encode("POST", "/v1/chat/completions", body.encode())

    async def nothing(watching: "asyncio.Task[None]") -> list[Reply]:
        await asyncio.shield(watching)
        return []

    async def probes(watching: "asyncio.Task[None]") -> list[Reply]:
        return await _probe(conn, request, plan.probes, watching.done)

    idle: list[Reply] = []
    busy: list[Reply] = []
    failed = 0
    try:
        async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=60) as client:
            state, seconds, _ = await _run_batch(client, plan, nothing)
            for _ in range(plan.rounds):
                # the idle probes beside the same polling of a batch as the busy ones (an ended one's), so that
                # the two differ by the batch alone, not by the bench's own reads of it
                polling = asyncio.create_task(_poll(client, state["id"], time.monotonic() + plan.budget))
                try:
                    idle += await _probe(conn, request, plan.probes, lambda: False)
                finally:
                    polling.cancel()
                beside, _, found = await _run_batch(client, plan, probes)
                busy += found
                failed += beside["request_counts"]["failed"] + (beside["status"] != "completed")
    finally:
        conn.close()
    counts = state["request_counts"]
    rate = counts["completed"] / seconds if seconds else 0.0
    say(
        f"  batch: {plan.lines:,} lines {state['status']} in {seconds:.1f} s ({rate:,.0f} lines/s, "
        f"{counts['failed']} failed); interactive p99 idle {_figures(idle)['p99_ms']:.2f} ms, beside a batch "
        f"{_figures(busy)['p99_ms']:.2f} ms ({len(busy)} requests)"
    )
    failed += counts["failed"]
    return {
        "plan": asdict(plan),
        "status": state["status"],
        "completed": counts["completed"],
        "failed": failed,
        "seconds": seconds,
        "lines_per_s": rate,
        "idle": _figures(idle),
        "busy": _figures(busy),
    }
