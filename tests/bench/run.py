"""``make bench``: the same load against the fake upstream directly, through Conduit and (optionally) through any
other OpenAI-compatible gateway, in one run; a markdown table on stdout and the raw figures as JSON.

Environment:
  QUICK=1          the short set (under 2 minutes): fewer repetitions, shorter windows, a smaller crowd
                   (the chat section, tests/bench/chat.py, runs in every set, smaller in QUICK and SMOKE)
  SMOKE=1          a few requests per scenario, to check the benchmark's own code (used by the tests)
  REPS=N           repetitions of each figure (default 3; QUICK 2)
  COMPARE_URL=…    another gateway's OpenAI base URL (e.g. http://127.0.0.1:4000/v1), run beside Conduit
  COMPARE_KEY=…    its API key; COMPARE_MODEL=… the model name it routes to the fake upstream (gpt-4o-mini)
  BENCH_UPSTREAM_PORT=N   a fixed port for the fake upstream, so the other gateway can be pointed at it first
  BENCH_OUT=DIR    where the JSON and markdown go (default bench-results/)
"""

import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop

from tests.bench.admission import admission_cost
from tests.bench.batch import batch_bench, batch_plan
from tests.bench.chat import chat_bench, chat_plan
from tests.bench.handoff import handoff_cost
from tests.bench.load import Run, Target, closed_loop, crowd
from tests.bench.scale import TOKENS as SCALE_TOKENS
from tests.bench.scale import scale_bench, scale_plan
from tests.bench.stack import ROOT, BenchStack, Sampler

__all__ = ["main"]

MB = 1024 * 1024


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    kind: str  # "nonstream" | "stream" | "crowd"
    concurrency: int
    tokens: int
    delay: float = 0.0


@dataclass
class Plan:
    reps: int
    window: float
    crowd: int
    crowd_tokens: int
    crowd_timeout: float
    admission_calls: int = 2000
    scenarios: list[Scenario] = field(default_factory=list)
    scale_out: list[Scenario] = field(default_factory=list)


def _plan() -> Plan:
    quick, smoke = os.environ.get("QUICK") == "1", os.environ.get("SMOKE") == "1"
    if smoke:
        plan = Plan(reps=1, window=0.3, crowd=20, crowd_tokens=10, crowd_timeout=30, admission_calls=50)
    elif quick:
        plan = Plan(reps=2, window=1.5, crowd=500, crowd_tokens=50, crowd_timeout=60)
    else:
        plan = Plan(reps=3, window=4.0, crowd=2000, crowd_tokens=50, crowd_timeout=90)
    plan.reps = int(os.environ.get("REPS", plan.reps))
    paced = 10 if smoke else 50
    plan.scenarios = [
        Scenario("ns-c1", "non-stream, c=1", "nonstream", 1, 16),
        Scenario("ns-c16", "non-stream, c=16", "nonstream", 16, 16),
        Scenario("ns-c64", "non-stream, c=64", "nonstream", 64, 16),
        Scenario("st-c1", "stream 200 tokens, full speed, 1 stream", "stream", 1, 200),
        Scenario("st-c64", "stream 200 tokens, full speed, 64 streams", "stream", 64, 200),
        Scenario("st-c256", "stream 200 tokens, full speed, 256 streams", "stream", 256, 200),
        Scenario("paced-c64", f"stream {paced} tokens, 20 ms apart, 64 staggered streams", "stream", 64, paced, 0.02),
        Scenario(
            "crowd",
            f"{plan.crowd} streams at once, {plan.crowd_tokens} tokens 20 ms apart",
            "crowd",
            plan.crowd,
            plan.crowd_tokens,
            0.02,
        ),
    ]
    plan.scale_out = [s for s in plan.scenarios if s.key in {"ns-c64", "st-c64", "st-c256"}]
    return plan


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _figures(scenario: Scenario, run: Run, sampler: Sampler) -> dict[str, Any]:
    ok = run.ok
    ms = [o.latency * 1000 for o in ok]
    ttft = [o.ttft * 1000 for o in ok if o.ttft is not None]
    errors = run.errors
    figures: dict[str, Any] = {
        "requests": len(run.outcomes),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
        "elapsed_s": round(run.elapsed, 3),
        "cpu_cores": {name: round(value, 2) for name, value in sampler.cpu.items()},
        "peak_rss_mb": {name: round(value / MB, 1) for name, value in sampler.peak.items()},
    }
    if scenario.kind == "nonstream":
        figures |= {
            "rps": len(ok) / run.elapsed if run.elapsed else 0.0,
            "p50_ms": _pct(ms, 0.5),
            "p90_ms": _pct(ms, 0.9),
            "p99_ms": _pct(ms, 0.99),
        }
    else:
        figures |= {
            "tokens_per_s": sum(o.tokens for o in run.outcomes) / run.elapsed if run.elapsed else 0.0,
            "ttft_p50_ms": _pct(ttft, 0.5),
            "ttft_p99_ms": _pct(ttft, 0.99),
            "stream_p50_s": _pct(ms, 0.5) / 1000,
            "stream_max_s": max(ms, default=float("nan")) / 1000,
        }
    return figures


async def _set_upstream(stack: BenchStack, scenario: Scenario) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        config = {"tokens": scenario.tokens, "delay": scenario.delay}
        response = await client.put(f"http://127.0.0.1:{stack.upstream_port}/_bench/config", json=config)
        response.raise_for_status()


async def _measure(plan: Plan, scenario: Scenario, target: Target) -> Run:
    if scenario.kind == "crowd":
        return await crowd(target, scenario.concurrency, scenario.tokens, plan.crowd_timeout)
    window, ramp = plan.window, 0.0
    if scenario.delay:  # paced streams last tokens x delay: give each client at least two, after they all started
        ramp = scenario.tokens * scenario.delay
        window = max(window, 2 * ramp)
    stream = scenario.kind == "stream"
    return await closed_loop(target, scenario.concurrency, window, stream, scenario.tokens, ramp=ramp)


Results = dict[str, dict[str, list[dict[str, Any]]]]  # scenario key -> target name -> one dict per repetition


async def _run_scenarios(
    plan: Plan,
    scenarios: list[Scenario],
    targets: list[Target],
    stack: BenchStack,
    results: Results,
    say: Callable[[str], None],
) -> None:
    for scenario in scenarios:
        await _set_upstream(stack, scenario)
        for rep in range(plan.reps):
            for target in targets:  # interleaved, so drift on a shared machine hits every target alike
                stack.check_alive()
                with Sampler(stack.gateway_pids() if target.name.startswith("conduit") else {}) as sampler:
                    run = await _measure(plan, scenario, target)
                figures = _figures(scenario, run, sampler)
                results.setdefault(scenario.key, {}).setdefault(target.name, []).append(figures)
                say(f"  {scenario.key:<10} {target.name:<16} rep {rep + 1}: {_brief(scenario, figures)}")
                await asyncio.sleep(0.3)


def _brief(scenario: Scenario, f: dict[str, Any]) -> str:
    errors = f" errors={f['errors']} {f['error_samples'][:1]}" if f["errors"] else ""
    if scenario.kind == "nonstream":
        return f"{f['rps']:.0f} req/s p50={f['p50_ms']:.2f} ms p99={f['p99_ms']:.2f} ms{errors}"
    return f"{f['tokens_per_s']:.0f} tok/s ttft p50={f['ttft_p50_ms']:.2f} ms p99={f['ttft_p99_ms']:.1f} ms{errors}"


async def _warm_up(targets: list[Target], stack: BenchStack) -> None:
    await _set_upstream(stack, Scenario("warm", "", "stream", 8, 50))
    for target in targets:
        await closed_loop(target, 8, 1.0, True, 50)
        await closed_loop(target, 8, 1.0, False, 50)


def _targets(stack: BenchStack) -> list[Target]:
    targets = [
        Target("direct", stack.upstream_url, "sk-bench"),
        Target("conduit", f"{stack.api_url}/v1", stack.token()),
    ]
    if os.environ.get("COMPARE_URL"):
        name = os.environ.get("COMPARE_NAME", "compare")
        model = os.environ.get("COMPARE_MODEL", "gpt-4o-mini")
        targets.append(Target(name, os.environ["COMPARE_URL"], os.environ.get("COMPARE_KEY", ""), model))
    return targets


async def _bench(plan: Plan, say: Callable[[str], None]) -> dict[str, Any]:
    log_dir = Path(tempfile.mkdtemp(prefix="conduit-bench-logs-"))
    stack = BenchStack(log_dir, upstream_port=int(os.environ.get("BENCH_UPSTREAM_PORT", "0")))
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "logs": str(log_dir)}
    try:
        stack.start_upstream()
        say(f"fake upstream at {stack.upstream_url}")
        stack.start_conduit(workers=1)
        say(f"Conduit at {stack.api_url} (1 API process, 1 worker process, Redis {stack.redis_url})")
        targets = _targets(stack)
        await asyncio.sleep(1.0)
        report["idle_rss_mb"] = {k: round(v / MB, 1) for k, v in Sampler(stack.gateway_pids()).rss().items()}
        report["admission"] = await admission_cost(stack.redis_url, plan.admission_calls)
        report["handoff"] = await handoff_cost(stack.redis_url, plan.admission_calls // 2)
        say("warming up")
        await _warm_up(targets, stack)
        results: Results = {}
        await _run_scenarios(plan, plan.scenarios, targets, stack, results, say)
        await asyncio.sleep(2.0)
        report["idle_after_rss_mb"] = {k: round(v / MB, 1) for k, v in Sampler(stack.gateway_pids()).rss().items()}
        say("chat API: turns on 200-message chats, and reads of one user's many chats")
        smoke, quick = os.environ.get("SMOKE") == "1", os.environ.get("QUICK") == "1"
        report["chat"] = await chat_bench(stack, chat_plan(plan.reps, quick, smoke), say)
        say("batches: one batch worker runs a batch; interactive requests beside it")
        stack.add_worker(0, queues="batch")
        stack.wait_workers(2)
        report["batch"] = await batch_bench(stack, batch_plan(quick, smoke), say)
        say("scale-out: adding a second worker process")
        stack.add_worker(1)
        stack.wait_workers(3)
        await _warm_up(targets[1:2], stack)
        scaled = Target("conduit-2w", targets[1].base_url, targets[1].key)
        await _run_scenarios(plan, plan.scale_out, [scaled], stack, results, say)
        report |= {"results": results, "targets": [t.name for t in targets]}
        stack.stop([name for name in stack.procs if name != "upstream"])  # the cores go to the scale-out stacks
        await _set_upstream(stack, Scenario("scale", "", "stream", 0, SCALE_TOKENS))
        report["scale"] = await scale_bench(stack.upstream_port, scale_plan(quick, smoke), say)
        shutil.rmtree(log_dir, ignore_errors=True)  # kept only when something failed
        report["logs"] = ""
    finally:
        stack.stop()
    return report


def _environment(plan: Plan) -> dict[str, Any]:
    import importlib.metadata as md

    versions = {p: md.version(p) for p in ("litestar", "uvicorn", "celery", "redis", "httpx", "msgspec")}
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "versions": versions,
        "reps": plan.reps,
        "window_s": plan.window,
    }


def main() -> int:
    from tests.bench.report import markdown

    plan = _plan()
    out = Path(os.environ.get("BENCH_OUT", ROOT / "bench-results"))
    out.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    report = uvloop.run(_bench(plan, say))
    report["environment"] = _environment(plan)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["scenarios"] = {s.key: s.title for s in plan.scenarios}
    text = markdown(report, plan.scenarios)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"bench-{stamp}.json").write_text(json.dumps(report, indent=1, default=str))
    (out / f"bench-{stamp}.md").write_text(text)
    print(text)
    say(f"wrote {out / f'bench-{stamp}.json'} and .md ({report['wall_s']} s)")
    errors = sum(f["errors"] for per in report["results"].values() for reps in per.values() for f in reps)
    errors += sum(f["errors"] for reps in report["chat"]["results"].values() for f in reps)
    batch = report["batch"]
    errors += batch["failed"] + batch["busy"]["errors"] + batch["idle"]["errors"] + (batch["status"] != "completed")
    errors += sum(row[kind]["errors"] for row in report["scale"] for kind in ("nonstream", "stream"))
    return 1 if errors and os.environ.get("SMOKE") == "1" else 0
