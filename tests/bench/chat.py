"""The chat API's costs on the bench's stack, from sequential requests (one in flight, so no figure is queueing):

- a turn: ``POST /api/v1/chat/generate?chatId=…`` (non-stream) on a chat of ``messages`` saved messages, the
  client re-sending all of them plus one new question, as a real client does; beside it, the same
  ``messages + 1`` messages as a plain ``POST /v1/chat/completions`` through Conduit and straight to the fake
  upstream (same provider, model and answer). Every turn has a fresh chat of its own, so each one really
  finds ``messages`` saved (a turn adds two, and two turns on one chat could not run at once anyway);
- reads, for a user with ``chats`` chats: ``GET /api/v1/chat/history?limit=20`` (the first page, and a page
  from the middle via ``after``) and ``GET /api/v1/chat/fetch/{id}`` of a chat of ``messages`` messages.

The chats are written through ``RedisChatStore`` (``chat_seed``). Every answer is checked, not only timed: a
turn's reply must carry every upstream token and leave its chat holding exactly two more messages (nothing
stored twice); a page must hold the expected chats; a fetch every message. Every loop is bounded by a count
and by ``budget`` seconds.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import msgspec
import redis.asyncio as aioredis

from services.stores.chats import ChatLimits
from services.stores.redis_chats import RedisChatStore
from tests.bench.chat_probes import READER, TURN_USER, Probe, question, read_probes, turn_probes, wire
from tests.bench.chat_seed import Line, conversation, create_chats, delete_chats, gather_bounded
from tests.bench.client import Reply
from tests.bench.stack import BenchStack

__all__ = ["GENERATE_ROWS", "READ_ROWS", "ChatPlan", "chat_bench", "chat_plan"]

#: the turn's rows: straight to the upstream, Conduit's OpenAI dialect, Conduit's chat API
GENERATE_ROWS = ("direct", "completions", "generate")
READ_ROWS = ("personas", "history", "history-after", "fetch")
WARM = 3


@dataclass(frozen=True)
class ChatPlan:
    reps: int
    #: timed turns per repetition (each on a fresh chat), and samples of each read per repetition
    turns: int
    reads: int
    #: the reading user's chats, and the messages of a turn's chat and of the fetched chat
    chats: int
    messages: int = 200
    tokens: int = 16
    budget: float = 60.0
    timeout: float = 10.0


def chat_plan(reps: int, quick: bool, smoke: bool) -> ChatPlan:
    if smoke:
        return ChatPlan(reps=reps, turns=3, reads=10, chats=60, budget=20.0)
    if quick:
        return ChatPlan(reps=reps, turns=150, reads=400, chats=10_000, budget=30.0)
    return ChatPlan(reps=reps, turns=300, reads=1000, chats=10_000)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _figures(replies: list[Reply]) -> dict[str, Any]:
    ms = [r.latency * 1000 for r in replies if r.error is None]
    errors = [r.error for r in replies if r.error is not None]
    return {
        "requests": len(replies),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
        "p50_ms": _pct(ms, 0.5),
        "p90_ms": _pct(ms, 0.9),
        "p99_ms": _pct(ms, 0.99),
    }


def _brief(found: dict[str, Any]) -> str:
    errors = f" errors={found['errors']} {found['error_samples'][:1]}" if found["errors"] else ""
    return f"p50={found['p50_ms']:.2f} ms p99={found['p99_ms']:.2f} ms ({found['requests']} requests){errors}"


async def _interleaved(probes: list[Probe], count: int, plan: ChatPlan) -> dict[str, list[Reply]]:
    """``WARM`` + ``count`` rounds, each sending every probe's request in turn (the order rotating, so no
    probe always follows the same one), one at a time; the warm-up rounds are not kept."""
    replies: dict[str, list[Reply]] = {probe.name: [] for probe in probes}
    deadline = time.perf_counter() + plan.budget
    for index in range(WARM + count):
        if time.perf_counter() > deadline:
            break
        for shift in range(len(probes)):
            probe = probes[(index + shift) % len(probes)]
            request = probe.request(index)
            reply = await probe.conn.send(request, plan.timeout)
            reply.error = reply.error or probe.check(index, reply)
            if index >= WARM:
                replies[probe.name].append(reply)
    return replies


async def _configure_upstream(stack: BenchStack, tokens: int) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        config = {"tokens": tokens, "delay": 0.0}
        response = await client.put(f"http://127.0.0.1:{stack.upstream_port}/_bench/config", json=config)
        response.raise_for_status()


async def _miscounted(store: RedisChatStore, chat_ids: list[str], expected: int) -> list[str]:
    """The chats that do not hold ``expected`` messages after their turn (a duplicate or a lost reply)."""
    summaries = await gather_bounded(store.summary(TURN_USER, chat_id) for chat_id in chat_ids)
    counts = [s.message_count if s is not None else -1 for s in summaries]
    return [f"chat holds {n} messages after its turn, expected {expected}" for n in counts if n != expected]


async def _turns(stack: BenchStack, store: RedisChatStore, plan: ChatPlan, history: list[Line]) -> dict[str, Any]:
    chat_ids = await create_chats(store, TURN_USER, [history] * (WARM + plan.turns))
    probes = turn_probes(stack, plan.tokens, history, chat_ids)
    try:
        replies = await _interleaved(probes, plan.turns, plan)
        used = chat_ids[WARM : WARM + len(replies["generate"])]
        bad = await _miscounted(store, used, plan.messages + 2)
        figures = {name: _figures(found) for name, found in replies.items()}
        figures["generate"]["errors"] += len(bad)
        figures["generate"]["error_samples"] = sorted({*figures["generate"]["error_samples"], *bad})[:3]
        return figures
    finally:
        for probe in probes:
            probe.conn.close()
        await delete_chats(store, TURN_USER, chat_ids)


async def _seed_reader(store: RedisChatStore, plan: ChatPlan, history: list[Line]) -> tuple[list[str], str]:
    """The reader's chats in list order (two pinned ones first), and the id of the one holding ``messages``."""
    chats = [history[:2]] * plan.chats
    chats[1] = history
    ids = await create_chats(store, READER, chats)
    for chat_id in ids[-2:]:
        await store.update(READER, chat_id, pinned=True, now=time.time())
    return [*ids[-2:], *ids[:-2]], ids[1]


async def chat_bench(stack: BenchStack, plan: ChatPlan, say: Callable[[str], None]) -> dict[str, Any]:
    """Every repetition's figures per row (``GENERATE_ROWS``, ``READ_ROWS``), and what was measured."""
    await _configure_upstream(stack, plan.tokens)
    client = aioredis.Redis.from_url(stack.redis_url)
    store = RedisChatStore(client, ChatLimits())
    history = conversation(plan.messages)
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        started = time.perf_counter()
        order, fetched = await _seed_reader(store, plan, history)
        say(f"  chat: {plan.chats:,} chats for one user written in {time.perf_counter() - started:.1f} s")
        reads = read_probes(stack, plan.messages, order, fetched)
        for rep in range(plan.reps):
            stack.check_alive()
            figures = await _turns(stack, store, plan, history)
            figures |= {k: _figures(v) for k, v in (await _interleaved(reads, plan.reads, plan)).items()}
            for name, found in figures.items():
                results.setdefault(name, []).append(found)
                say(f"  chat {name:<14} rep {rep + 1}: {_brief(found)}")
            await asyncio.sleep(0.3)
        reads[0].conn.close()
        await delete_chats(store, READER, order)
    finally:
        await store.aclose()
        await client.aclose()
    sent = len(msgspec.json.encode({"chat_history": wire([*history, question(0)])}))
    return {"plan": asdict(plan), "results": results, "body_bytes": sent}
