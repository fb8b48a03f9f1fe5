"""The worker's usage ledger against a real redis-server: sums per user, day and model, refunds per subject."""

import time

import pytest
import redis.asyncio as aioredis

from services.worker.accounting import Ledger
from shared import keys
from shared.events import Usage
from shared.jobs import Admission, ChatMessage, GenerationJob, Principal

pytestmark = pytest.mark.anyio


def _job(user: str, admission: Admission | None = None) -> GenerationJob:
    return GenerationJob(
        id=f"job-{user}-{time.monotonic_ns()}",
        request_id="r",
        principal=Principal(user_id=user, tier="pro"),
        provider="openai",
        model="gpt-4o-mini",
        messages=[ChatMessage(role="user", content="hi")],
        admission=admission,
    )


async def test_the_ledger_writes_sums_per_user_day_model_and_refunds_per_subject(client: aioredis.Redis) -> None:
    ledger = Ledger(client, interval=60)  # written by aclose here, not by its timer
    await client.hset(keys.rate_tokens("user:a"), mapping={"tokens": 100, "ts": 0})
    reserved = Admission(subject="user:a", reserved=600, tokens_per_minute=1000)
    ledger.add(_job("a", reserved), Usage(seq=1, prompt_tokens=10, completion_tokens=20), "openai", "gpt-4o-mini")
    ledger.add(_job("a", reserved), None, "openai", "gpt-4o-mini")  # failed before any usage: all comes back
    ledger.add(_job("b"), Usage(seq=1, prompt_tokens=1, completion_tokens=2), "anthropic", "claude-haiku-4-5")
    expired = Admission(subject="user:gone", reserved=50, tokens_per_minute=1000)
    ledger.add(_job("c", expired), None, "openai", "gpt-4o-mini")
    await ledger.aclose()
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert await client.hgetall(keys.usage("a", day)) == {
        b"openai/gpt-4o-mini|requests": b"2",
        b"openai/gpt-4o-mini|prompt_tokens": b"10",
        b"openai/gpt-4o-mini|completion_tokens": b"20",
    }
    assert (await client.hgetall(keys.usage("b", day)))[b"anthropic/claude-haiku-4-5|completion_tokens"] == b"2"
    assert float(await client.hget(keys.rate_tokens("user:a"), "tokens") or 0) == 100 + (600 - 30) + 600
    assert not await client.exists(keys.rate_tokens("user:gone"))  # an expired bucket is full: not recreated
    assert await client.ttl(keys.usage("a", day)) > 0
