"""When a job ends: its usage counted per user, day, provider and model, and the tokens its admission
reserved settled with what it really used.

The worker does this, not the API, because only the worker always sees the end: a client that hung up
took its API relay with it, and a detached job ends long after. A job that failed before the provider
reported any usage used nothing: its whole reservation comes back.

The ledger adds jobs up in memory and writes the sums every ``interval`` (0.5 s) in one round trip, so a
busy worker pays a few Redis commands per user and model each interval, not a script per job: one
``HINCRBY`` per counter, and one refund per limit subject (``refund.lua``). Stopping writes what is left.
"""

import asyncio
import contextlib
import importlib.resources
import logging
import time
from collections import defaultdict

import redis.asyncio as aioredis

from services.worker.job_end import JobEnd
from shared import keys
from shared.events import Usage
from shared.jobs import GenerationJob

__all__ = ["Ledger"]

log = logging.getLogger("conduit.worker")


class Ledger:
    def __init__(self, redis: "aioredis.Redis", interval: float = 0.5) -> None:
        self._redis = redis
        self._interval = interval
        self._refund = redis.register_script(
            importlib.resources.files("services.worker").joinpath("refund.lua").read_text()
        )
        self._usage: defaultdict[tuple[str, str], defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._refunds: defaultdict[str, int] = defaultdict(int)
        self._task: asyncio.Task[None] | None = None

    async def on_end(self, job: GenerationJob, end: JobEnd) -> None:
        """The job-end hook: count the job."""
        self.add(job, end.usage, end.provider, end.model)

    def add(self, job: GenerationJob, usage: Usage | None, provider: str, model: str) -> None:
        """Count a finished job; written with the next flush."""
        prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
        counters = self._usage[(job.principal.user_id, time.strftime("%Y-%m-%d", time.gmtime()))]
        for counter, value in zip(keys.USAGE_COUNTERS, (1, prompt, completion), strict=True):
            counters[keys.usage_field(provider, model, counter)] += value
        admission = job.admission
        if admission is not None and admission.tokens_per_minute and admission.reserved != prompt + completion:
            self._refunds[admission.subject] += admission.reserved - (prompt + completion)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_soon(), name="usage-ledger")

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._interval)
        await self.flush()

    async def flush(self) -> None:
        usage, self._usage = self._usage, defaultdict(lambda: defaultdict(int))
        refunds, self._refunds = self._refunds, defaultdict(int)
        if not usage and not refunds:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for (user, day), counters in usage.items():
                    key = keys.usage(user, day)
                    for field, value in counters.items():
                        pipe.hincrby(key, field, value)
                    pipe.expire(key, keys.USAGE_TTL)
                for subject, tokens in refunds.items():
                    await self._refund(keys=[keys.rate_tokens(subject)], args=[tokens], client=pipe)
                await pipe.execute()
        except Exception as exc:  # the answers are out; lost counts are logged, not raised
            log.warning("could not write the usage of %d users: %s", len(usage), exc)

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
