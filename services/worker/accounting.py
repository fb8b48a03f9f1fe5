"""When a job ends: its usage counted per user, day, provider and model, and the tokens its admission
reserved settled with what it really used, in one Lua call (``settle.lua``), once per job whoever asks.

The worker does this, not the API, because only the worker always sees the end: a client that hung up
took its API relay with it, and a detached job ends long after. A job that failed before the provider
reported any usage used nothing: its whole reservation comes back.
"""

import importlib.resources
import logging
import time

import redis.asyncio as aioredis

from shared import keys
from shared.events import Usage
from shared.jobs import GenerationJob

__all__ = ["USAGE_TTL", "Accounting", "usage_field"]

log = logging.getLogger("conduit.worker")

#: how long a day's usage counters are kept (seconds)
USAGE_TTL = 400 * 86400
SETTLED_TTL = 86400


def usage_field(provider: str, model: str, counter: str) -> str:
    return f"{provider}/{model}|{counter}"


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


class Accounting:
    def __init__(self, redis: "aioredis.Redis") -> None:
        self._script = redis.register_script(
            importlib.resources.files("services.worker").joinpath("settle.lua").read_text()
        )

    async def settle(self, job: GenerationJob, usage: Usage | None, provider: str, model: str) -> None:
        prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
        admission = job.admission
        subject_keys = [keys.job_settled(job.id), keys.rate_tokens(admission.subject if admission else "-")]
        args: list[str | int] = [
            SETTLED_TTL,
            admission.tokens_per_minute if admission else 0,
            admission.reserved if admission else 0,
            prompt + completion,
            f"{provider}/{model}",  # the usage_field prefix
            prompt,
            completion,
            USAGE_TTL,
        ]
        try:
            await self._script(keys=[*subject_keys, keys.usage(job.principal.user_id, today())], args=args)
        except Exception as exc:  # the answer is out already; a lost count is logged, not raised
            log.warning("could not count the usage of job %s: %s", job.id, exc)
