"""``n`` answers from a provider that gives one per call (Anthropic, echo): ``n`` calls of the same request at
once, their pieces merged as they come, each tagged with its answer's index (``choice``). The usage is the sum
of the calls' (what the provider bills); the model is the first call's; the finish names each answer's reason.
One call failing fails them all (the rest are closed), as one upstream call failing would.
"""

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable

import httpx
import msgspec

from services.worker.providers.base import (
    FinishPiece,
    ModelPiece,
    Piece,
    ReasoningPiece,
    Target,
    TextPiece,
    ToolCallPiece,
    UsagePiece,
)
from shared.jobs import GenerationJob

__all__ = ["fan_out"]

Streamer = Callable[[httpx.AsyncClient, GenerationJob, Target], AsyncGenerator[Piece, None]]
_END = object()


async def _call(pieces: AsyncGenerator[Piece, None], index: int, queue: "asyncio.Queue[tuple[int, object]]") -> None:
    """One call's pieces into ``queue``, then its end (or the exception it raised, for the merge to raise)."""
    try:
        async with contextlib.aclosing(pieces):
            async for piece in pieces:
                await queue.put((index, piece))
    except Exception as exc:
        await queue.put((index, exc))
        return
    await queue.put((index, _END))


def _total(usage: list[UsagePiece]) -> UsagePiece:
    return UsagePiece(
        prompt_tokens=sum(u.prompt_tokens for u in usage),
        completion_tokens=sum(u.completion_tokens for u in usage),
        cached_tokens=sum(u.cached_tokens for u in usage),
        reasoning_tokens=sum(u.reasoning_tokens for u in usage),
    )


async def fan_out(
    streamer: Streamer, client: httpx.AsyncClient, job: GenerationJob, target: Target, n: int
) -> AsyncGenerator[Piece, None]:
    one = msgspec.structs.replace(job, params=msgspec.structs.replace(job.params, n=None))
    queue: asyncio.Queue[tuple[int, object]] = asyncio.Queue()
    calls = [
        asyncio.create_task(_call(streamer(client, one, target), index, queue), name=f"fan-out:{job.id}:{index}")
        for index in range(n)
    ]
    usage: dict[int, UsagePiece] = {}
    finishes: dict[int, str] = {}
    model, ended = "", 0
    try:
        while ended < n:
            index, item = await queue.get()
            match item:
                case Exception():
                    raise item
                case TextPiece() | ReasoningPiece() | ToolCallPiece():
                    yield msgspec.structs.replace(item, choice=index)
                case ModelPiece() if not model:
                    model = item.model
                    yield item
                case UsagePiece():
                    usage[index] = item
                case FinishPiece():
                    finishes[index] = item.reason
                    model = model or item.model
                case _ if item is _END:
                    ended += 1
    finally:
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
    if usage:
        yield _total(list(usage.values()))
    reasons = [finishes.get(index, "stop") for index in range(n)]
    yield FinishPiece(reasons[0], model, reasons)
