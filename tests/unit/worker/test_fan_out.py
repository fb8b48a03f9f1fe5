"""``fan_out``: ``n`` calls of one request at once, merged into one answer per index (pure: in-process streamers)."""

import asyncio
from collections.abc import AsyncGenerator

import httpx
import pytest

from services.worker.providers.base import (
    FinishPiece,
    ModelPiece,
    Piece,
    Target,
    TextPiece,
    ToolCallPiece,
    UsagePiece,
)
from services.worker.providers.fan_out import fan_out
from shared.catalog import ProviderSpec
from shared.errors import UpstreamError
from shared.jobs import ChatMessage, GenerationJob, Principal, SamplingParams

pytestmark = pytest.mark.anyio
TARGET = Target(
    provider="anthropic",
    spec=ProviderSpec(kind="anthropic", default_model="m"),
    base_url="https://x",
    api_key="k",
    model="m",
)
JOB = GenerationJob(
    id="j",
    request_id="r",
    principal=Principal(user_id="u", tier="pro"),
    provider="anthropic",
    model="m",
    messages=[ChatMessage(role="user", content="hi")],
    params=SamplingParams(n=3),
)


async def test_n_calls_merge_into_n_answers_with_summed_usage() -> None:
    seen: list[int | None] = []

    async def streamer(client: httpx.AsyncClient, job: GenerationJob, target: Target) -> AsyncGenerator[Piece, None]:
        mine = len(seen)
        seen.append(job.params.n)
        yield ModelPiece("m-1")
        for word in ("a", "b"):
            await asyncio.sleep(0)
            yield TextPiece(word)
        yield ToolCallPiece(0, "call", "f", "{}")
        yield UsagePiece(prompt_tokens=5, completion_tokens=2)
        yield FinishPiece("length" if mine == 1 else "stop", "m-1")

    async with httpx.AsyncClient() as client:
        pieces = [piece async for piece in fan_out(streamer, client, JOB, TARGET, 3)]
    assert seen == [None, None, None]  # each call asks for one answer
    assert [p for p in pieces if isinstance(p, ModelPiece)] == [ModelPiece("m-1")]
    for choice in range(3):
        assert "".join(p.text for p in pieces if isinstance(p, TextPiece) and p.choice == choice) == "ab"
        assert [p.choice for p in pieces if isinstance(p, ToolCallPiece)].count(choice) == 1
    assert pieces[-2] == UsagePiece(prompt_tokens=15, completion_tokens=6)
    assert pieces[-1].reason == "stop" and sorted(pieces[-1].reasons) == ["length", "stop", "stop"]  # type: ignore[union-attr]


async def test_one_call_failing_fails_the_answer_and_closes_the_others() -> None:
    closed: list[int] = []
    calls = 0

    async def streamer(client: httpx.AsyncClient, job: GenerationJob, target: Target) -> AsyncGenerator[Piece, None]:
        nonlocal calls
        mine, calls = calls, calls + 1
        try:
            if mine == 1:
                raise UpstreamError("overloaded", retryable=True)
            yield TextPiece("x")
            await asyncio.sleep(10)
            yield FinishPiece("stop")
        finally:
            closed.append(mine)

    async with httpx.AsyncClient() as client:
        with pytest.raises(UpstreamError, match="overloaded"):
            async with asyncio.timeout(5):
                async for _ in fan_out(streamer, client, JOB, TARGET, 3):
                    pass
    assert sorted(closed) == [0, 1, 2]
