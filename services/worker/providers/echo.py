"""The offline provider: answers with the last user message, token by token. Deterministic; no network."""

import asyncio
import re
from collections.abc import AsyncGenerator

import httpx

from services.worker.providers.base import FinishPiece, ModelPiece, Piece, Target, TextPiece, UsagePiece
from shared.jobs import GenerationJob, message_text

__all__ = ["count_tokens", "echo_tokens", "stream_echo"]

_TOKEN = re.compile(r"\s*\S+")


def echo_tokens(text: str) -> list[str]:
    """Word-sized tokens that join back to ``text`` (leading spaces kept on each word)."""
    tokens = _TOKEN.findall(text)
    tail = text[sum(map(len, tokens)) :]
    if tail and tokens:
        tokens[-1] += tail
    elif tail:
        tokens = [tail]  # nothing but whitespace
    return tokens


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _answer(job: GenerationJob) -> tuple[list[str], str]:
    last_user = next((m for m in reversed(job.messages) if m.role == "user"), None)
    text = message_text(last_user) if last_user else ""
    tokens = echo_tokens(text or "(empty message)")
    reason = "stop"
    for stop in job.params.stop:
        joined = "".join(tokens)
        if stop and stop in joined:
            tokens = echo_tokens(joined[: joined.index(stop)])
    limit = job.params.max_tokens
    if limit is not None and len(tokens) > limit:
        tokens, reason = tokens[:limit], "length"
    return tokens, reason


async def stream_echo(
    client: httpx.AsyncClient, job: GenerationJob, target: Target, *, delay: float = 0.0
) -> AsyncGenerator[Piece, None]:
    tokens, reason = _answer(job)
    prompt = sum(count_tokens(message_text(m)) for m in job.messages)
    yield ModelPiece(target.model)
    for index, token in enumerate(tokens):
        if delay and index:
            await asyncio.sleep(delay)
        yield TextPiece(token)
    yield UsagePiece(prompt_tokens=prompt, completion_tokens=len(tokens))
    yield FinishPiece(reason, target.model)
