"""The cost of one admission (the Lua call every generation request makes), measured on the bench's Redis:
sequential calls from one asyncio client, as the API makes them, with every limit on and never reached."""

import time
import uuid

import redis.asyncio as aioredis

from services.api.ratelimit.limiter import RedisLimiter
from services.api.tiers import Limits

__all__ = ["admission_cost"]

LIMITS = Limits(requests_per_minute=10**9, tokens_per_minute=10**12, concurrent_streams=10**6, max_tokens=0)


async def admission_cost(redis_url: str, calls: int) -> dict[str, float]:
    client = aioredis.Redis.from_url(redis_url)
    limiter = RedisLimiter(client, lease_ttl=30)
    subject = f"user:bench-admission-{uuid.uuid4().hex[:8]}"
    took: list[float] = []
    try:
        for index in range(calls + 50):
            job = f"job{index}"
            started = time.perf_counter()
            admitted = await limiter.admit(subject, LIMITS, job, 300)
            elapsed = time.perf_counter() - started
            await limiter.release(admitted.admission, job)
            if index >= 50:  # after the script is cached and the connection warm
                took.append(elapsed * 1e6)
    finally:
        await client.aclose()
    took.sort()
    return {
        "calls": calls,
        "p50_us": took[len(took) // 2],
        "p99_us": took[min(len(took) - 1, int(len(took) * 0.99))],
        "mean_us": sum(took) / len(took),
    }
