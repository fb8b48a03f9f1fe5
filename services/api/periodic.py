"""A step an API process runs every few seconds in the background (the sweeper's, the batch keeper's)."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Periodic"]

log = logging.getLogger("conduit.api")


class Periodic:
    """Runs ``step`` every ``interval`` seconds on a task of its own, from ``start`` to ``stop``; a step that
    fails is logged once per outage (``what`` it could not do), not at every round."""

    def __init__(self, name: str, interval: float, step: Callable[[], Awaitable[object]], what: str) -> None:
        self._name, self._interval, self._step, self._what = name, interval, step, what
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._step()
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("could not %s: %s", self._what, exc)
                failing = True
