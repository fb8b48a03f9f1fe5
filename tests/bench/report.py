"""The benchmark's markdown report: every figure as the median of its repetitions with [min-max], and the
gateway's cost over the direct upstream ("added") beside it."""

import statistics
from typing import Any

from tests.bench.scale import scale_markdown

__all__ = ["markdown"]


def _values(reps: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in reps if key in r and r[key] == r[key]]


def _median(reps: list[dict[str, Any]], key: str) -> float | None:
    values = _values(reps, key)
    return statistics.median(values) if values else None


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _spread(reps: list[dict[str, Any]], key: str, digits: int) -> str:
    values = _values(reps, key)
    if not values:
        return "-"
    middle = _fmt(statistics.median(values), digits)
    if len(values) == 1:
        return middle
    return f"{middle} [{_fmt(min(values), digits)}-{_fmt(max(values), digits)}]"


def _added(reps: list[dict[str, Any]], base: list[dict[str, Any]] | None, key: str) -> str:
    mine, theirs = _median(reps, key), _median(base or [], key)
    if mine is None or theirs is None or base is None:
        return "-"
    return f"{mine - theirs:+,.2f}"


def _errors(reps: list[dict[str, Any]]) -> str:
    total = sum(int(r["errors"]) for r in reps)
    requests = sum(int(r["requests"]) for r in reps)
    return f"{total}/{requests}"


def _cpu(reps: list[dict[str, Any]]) -> str:
    if not reps or not reps[0].get("cpu_cores"):
        return "-"
    names = sorted(reps[0]["cpu_cores"])
    parts = [f"{statistics.median(r['cpu_cores'].get(n, 0.0) for r in reps):.2f}" for n in names]
    return " / ".join(parts)


def _rss(reps: list[dict[str, Any]]) -> str:
    if not reps or not reps[0].get("peak_rss_mb"):
        return "-"
    names = sorted(reps[0]["peak_rss_mb"])
    parts = [f"{max(r['peak_rss_mb'].get(n, 0.0) for r in reps):.0f}" for n in names]
    return " / ".join(parts) + f" (Σ {sum(max(r['peak_rss_mb'].get(n, 0.0) for r in reps) for n in names):.0f})"


def _admission(figures: dict[str, float] | None) -> list[str]:
    if not figures:
        return []
    return [
        "",
        "### Admission (the rate-limit Lua call of every generation request)",
        "",
        f"- {figures['calls']:.0f} sequential calls: p50 {figures['p50_us']:.0f} µs, p99 {figures['p99_us']:.0f} µs, "
        f"mean {figures['mean_us']:.0f} µs (every limit on, none reached)",
    ]


def _handoff(figures: dict[str, float] | None) -> list[str]:
    if not figures:
        return []
    lines = [
        "",
        '### Job hand-off: what "no job lost, none run twice" costs (median µs per call, and per job)',
        "",
        "| jobs per message / group | enqueue, LPUSH alone | enqueue + pending record | added | worker's claim |",
        "|---|---|---|---|---|",
    ]
    for size in (1, 32):
        plain, send, claim = (figures[f"{what}_{size}_us"] for what in ("lpush", "send", "claim"))
        lines.append(
            f"| {size} | {plain:.0f} ({plain / size:.1f}/job) | {send:.0f} ({send / size:.1f}/job) "
            f"| {send - plain:.0f} ({(send - plain) / size:.1f}/job) | {claim:.0f} ({claim / size:.1f}/job) |"
        )
    return lines


#: the chat section's rows: label, and the target (the figure, its limit) where there is one
_CHAT_TURN: dict[str, tuple[str, tuple[str, float] | None]] = {
    "direct": ("the upstream directly: POST /v1/chat/completions", None),
    "completions": ("Conduit: POST /v1/chat/completions", None),
    "generate": ("Conduit: POST /api/v1/chat/generate?chatId=…", ("added p50", 2.0)),
}
_CHAT_READ: dict[str, tuple[str, tuple[str, float] | None]] = {
    "personas": ("GET /api/v1/personas (the floor: authenticated, no chat store call)", None),
    "history": ("GET /api/v1/chat/history?limit=20 (first page)", ("p99", 5.0)),
    "history-after": ("GET /api/v1/chat/history?limit=20&after=… (a page from the middle)", ("p99", 5.0)),
    "fetch": ("GET /api/v1/chat/fetch/{chatId} ({messages} messages)", ("p99", 5.0)),
}


def _target(value: float | None, target: tuple[str, float] | None) -> str:
    if target is None:
        return ""
    name, limit = target
    sign = "+" if name.startswith("added") else ""
    verdict = "-" if value is None else "met" if value <= limit else "**missed**"
    return f"{name} ≤ {sign}{limit:g} ms: {verdict}"


def _chat_turns(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines, base = [], results.get("completions")
    for key, (label, target) in _CHAT_TURN.items():
        reps = results.get(key, [])
        added = key == "generate"
        mine, theirs = _median(reps, "p50_ms"), _median(base or [], "p50_ms")
        value = mine - theirs if added and mine is not None and theirs is not None else None
        lines.append(
            f"| {label} | {_spread(reps, 'p50_ms', 2)} | {_fmt(_median(reps, 'p90_ms'), 2)} "
            f"| {_fmt(_median(reps, 'p99_ms'), 2)} | {_added(reps, base, 'p50_ms') if added else ''} "
            f"| {_added(reps, base, 'p99_ms') if added else ''} | {_target(value, target)} | {_errors(reps)} |"
        )
    return lines


def _chat(chat: dict[str, Any] | None) -> list[str]:
    if not chat:
        return []
    results, plan = chat["results"], chat["plan"]
    messages = plan["messages"]
    lines = [
        "",
        "### Chat API (one request in flight; every turn on a fresh chat)",
        "",
        f"A turn on a chat of {messages} saved messages: the client re-sends them all plus one new question "
        f"({messages + 1} messages, {chat['body_bytes'] / 1024:.0f} kB), non-stream, {plan['tokens']}-token "
        "answers; the plain completions carry the same messages to the same model. *added* is the row's median "
        "minus Conduit's plain `/v1/chat/completions`.",
        "",
        "| request | p50 ms | p90 ms | p99 ms | added p50 ms | added p99 ms | target | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += _chat_turns(results)
    lines += [
        "",
        f"Reads of one user's {plan['chats']:,} chats (two of them pinned):",
        "",
        "| request | p50 ms | p90 ms | p99 ms | target | errors |",
        "|---|---|---|---|---|---|",
    ]
    for key, (label, target) in _CHAT_READ.items():
        reps = results.get(key, [])
        lines.append(
            f"| {label.replace('{messages}', str(messages))} | {_spread(reps, 'p50_ms', 2)} "
            f"| {_fmt(_median(reps, 'p90_ms'), 2)} | {_spread(reps, 'p99_ms', 2)} "
            f"| {_target(_median(reps, 'p99_ms'), target)} | {_errors(reps)} |"
        )
    return lines


def _batch(batch: dict[str, Any] | None) -> list[str]:
    if not batch:
        return []
    plan, idle, busy = batch["plan"], batch["idle"], batch["busy"]
    rate = batch["lines_per_s"]
    added = busy["p99_ms"] / idle["p99_ms"] - 1 if idle["p99_ms"] else float("nan")
    return [
        "",
        "### Batches (one batch worker, `conduit worker --queues batch`)",
        "",
        f"A batch of {plan['lines']:,} chat completion lines against the fake upstream, from its creation to its "
        f"end; and non-stream chat completions, one in flight, with the batch idle and while it runs.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| batch: {batch['status']}, lines answered / failed | {batch['completed']:,} / {batch['failed']:,} | |",
        f"| batch: lines per second | {rate:,.0f} | ≥ 1,000: {'met' if rate >= 1000 else '**missed**'} |",
        f"| interactive p50 / p99 ms, batch idle | {idle['p50_ms']:.2f} / {idle['p99_ms']:.2f} | |",
        f"| interactive p50 / p99 ms, batch running | {busy['p50_ms']:.2f} / {busy['p99_ms']:.2f} "
        f"({busy['requests']} requests, {busy['errors']} errors) | "
        f"p99 within +10 %: {added:+.0%} {'met' if added <= 0.1 else '**missed**'} |",
    ]


def markdown(report: dict[str, Any], scenarios: list[Any]) -> str:
    results: dict[str, dict[str, list[dict[str, Any]]]] = report["results"]
    env = report["environment"]
    lines = [
        "## Conduit benchmark",
        "",
        f"Python {env['python']}, {env['cpus']} CPUs; {env['reps']} repetitions per figure: median [min-max]. "
        "Every target gets the same load from the same generator in the same run; *added* is the target's median "
        "minus the direct upstream's. Conduit = 1 API process + 1 worker process + Redis, default settings; "
        "CPU columns are cores used by the API / worker processes.",
        "",
        "### Non-stream (16-token answers, closed loop)",
        "",
        "| c | target | req/s | p50 ms | p90 ms | p99 ms | added p50 ms | added p99 ms | errors | CPU api / worker |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scenarios:
        if s.kind != "nonstream":
            continue
        base = results.get(s.key, {}).get("direct")
        for target, reps in results.get(s.key, {}).items():
            added = target != "direct"
            lines.append(
                f"| {s.concurrency} | {target} | {_spread(reps, 'rps', 0)} | {_spread(reps, 'p50_ms', 2)} "
                f"| {_fmt(_median(reps, 'p90_ms'), 2)} | {_fmt(_median(reps, 'p99_ms'), 2)} "
                f"| {_added(reps, base, 'p50_ms') if added else ''} | {_added(reps, base, 'p99_ms') if added else ''} "
                f"| {_errors(reps)} | {_cpu(reps)} |"
            )
    lines += [
        "",
        "### Streaming (closed loop; time to first token = first content frame)",
        "",
        "| scenario | target | tokens/s | TTFT p50 ms | TTFT p99 ms | added TTFT p50 | added TTFT p99 | errors "
        "| CPU api / worker |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scenarios:
        if s.kind != "stream":
            continue
        base = results.get(s.key, {}).get("direct")
        for target, reps in results.get(s.key, {}).items():
            added = target != "direct"
            lines.append(
                f"| {s.title} | {target} | {_spread(reps, 'tokens_per_s', 0)} | {_spread(reps, 'ttft_p50_ms', 2)} "
                f"| {_fmt(_median(reps, 'ttft_p99_ms'), 2)} "
                f"| {_added(reps, base, 'ttft_p50_ms') if added else ''} "
                f"| {_added(reps, base, 'ttft_p99_ms') if added else ''} | {_errors(reps)} | {_cpu(reps)} |"
            )
    lines += [
        "",
        "### Many paced streams at once",
        "",
        "| scenario | target | errors | TTFT p50 ms | TTFT p99 ms | stream p50 s | slowest s | tokens/s "
        "| peak RSS MB api / worker |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scenarios:
        if s.kind != "crowd":
            continue
        for target, reps in results.get(s.key, {}).items():
            lines.append(
                f"| {s.title} | {target} | {_errors(reps)} | {_spread(reps, 'ttft_p50_ms', 1)} "
                f"| {_fmt(_median(reps, 'ttft_p99_ms'), 1)} | {_fmt(_median(reps, 'stream_p50_s'), 2)} "
                f"| {_fmt(_median(reps, 'stream_max_s'), 2)} | {_spread(reps, 'tokens_per_s', 0)} | {_rss(reps)} |"
            )
    lines += [
        "",
        "### Scale-out: the same load with 2 worker processes",
        "",
        "| scenario | 1 worker | 2 workers | ratio | CPU api / worker / worker (2 workers) |",
        "|---|---|---|---|---|",
    ]
    for s in scenarios:
        two = results.get(s.key, {}).get("conduit-2w")
        one = results.get(s.key, {}).get("conduit")
        if not two or not one:
            continue
        key = "rps" if s.kind == "nonstream" else "tokens_per_s"
        unit = "req/s" if key == "rps" else "tok/s"
        a, b = _median(one, key), _median(two, key)
        ratio = f"{b / a:.2f}x" if a and b else "-"
        lines.append(
            f"| {s.title} | {_spread(one, key, 0)} {unit} | {_spread(two, key, 0)} {unit} | {ratio} | {_cpu(two)} |"
        )
    idle, after = report.get("idle_rss_mb", {}), report.get("idle_after_rss_mb", {})
    lines += _admission(report.get("admission"))
    lines += _handoff(report.get("handoff"))
    lines += _chat(report.get("chat"))
    lines += _batch(report.get("batch"))
    lines += scale_markdown(report.get("scale", []))
    lines += [
        "",
        "### Memory (RSS, MB)",
        "",
        f"- idle after start: {', '.join(f'{k} {v:.0f}' for k, v in sorted(idle.items()))} "
        f"(Σ {sum(idle.values()):.0f})",
        f"- idle after the run: {', '.join(f'{k} {v:.0f}' for k, v in sorted(after.items()))} "
        f"(Σ {sum(after.values()):.0f})",
        "",
        f"Wall time {report.get('wall_s', 0)} s.",
    ]
    return "\n".join(lines) + "\n"
