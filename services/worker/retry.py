"""How long to wait before trying a failed upstream call again (the pipeline decides whether to).

Only a failure before the first token is tried again, and only a retryable one (a 429, a 5xx, a timeout,
a refused connection): after the first token the client has seen text that a second call would repeat.
Waits grow exponentially with jitter, so retries from many jobs do not arrive in step, and honour the
upstream's ``Retry-After``; an upstream that asks for longer than the cap is not waited for, the next
fallback is tried instead.
"""

import random
from collections.abc import Callable

__all__ = ["backoff"]


def backoff(
    attempt: int, base: float, cap: float, retry_after: float | None = None, rng: Callable[[], float] = random.random
) -> float | None:
    """Seconds before retry ``attempt + 1`` (attempt 0 is the first call), or None: do not wait that long.

    ``base * 2**attempt`` with "equal jitter" (between half of it and all of it), at least ``retry_after``,
    at most ``cap``."""
    if retry_after is not None and retry_after > cap:
        return None
    wait = min(cap, base * 2.0**attempt)
    wait = wait / 2 + wait / 2 * rng()
    if retry_after is not None:
        wait = max(wait, retry_after)
    return min(wait, cap)
