"""A client's own names for its jobs (``x-conduit-job-name``), held in Redis while the job may run."""

import redis.asyncio as aioredis

from shared import keys
from shared.errors import UnavailableError

__all__ = ["RedisJobNames"]


class RedisJobNames:
    def __init__(self, redis: "aioredis.Redis") -> None:
        self._redis = redis

    async def claim(self, user_id: str, name: str, job_id: str, hold: float) -> bool:
        try:
            return bool(await self._redis.set(keys.job_name(user_id, name), job_id, nx=True, ex=max(1, int(hold))))
        except Exception as exc:
            raise UnavailableError("the gateway cannot reach Redis; try again shortly") from exc

    async def release(self, user_id: str, name: str) -> None:
        await self._redis.delete(keys.job_name(user_id, name))
