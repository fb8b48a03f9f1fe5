"""Running a batch: its lines, handed out at its owner's pace, each recorded once.

One runner holds a batch at a time (a hold it renews; a runner that dies lets go when the hold runs out, and
the batch is handed to another). It reads the batch's translated lines (``shared.batches.BatchLine``) from the
file store in order, skips those with a result already (a batch taken over after its runner died goes on
where that one stopped), and runs the rest, ``concurrency`` at a time, no faster than the requests and tokens
per minute the batch may spend (its owner's tier's, at its creation): lines wait for their turn instead of
failing with 429s of the gateway's own. Every result is recorded the moment its line ends, so a restart loses
nothing done and a line run twice is counted once (``RedisBatchStore.record``). A result that cannot be
recorded (Redis restarting) is tried again for a while; a line still without one is run again in a further
pass over the file, and a batch with lines left unrecorded is never finished: its runner lets go, and the API's
keeper hands it to a runner again.

It stops handing out lines when a cancel is asked or the batch's window passes, lets the lines in flight end,
and leaves the batch ``finalizing``: the API writes its output and error files (it renders the lines' bodies,
which are its dialects').
"""

import asyncio
import contextlib
import logging
import time

from services.stores.batches import BatchRecord, read_lines
from services.stores.files import FileStore
from services.stores.redis_batches import RedisBatchStore
from services.worker.batch_lines import CollectingSink, run_line
from services.worker.generate import PipelineContext
from services.worker.interactive import InteractiveWatch
from shared.batches import BatchLine
from shared.jobs import Principal, message_text
from shared.tokens import estimate_tokens

__all__ = ["BatchRunner", "Pacer", "UnrecordedError"]

log = logging.getLogger("conduit.worker")

#: lines read (and checked for a result) at a time
CHUNK = 256
#: seconds between two looks at whether a cancel was asked
CANCEL_CHECK = 0.5
#: passes over the file, each running the lines left without a result by the one before
PASSES = 3
#: pauses before trying again to record a line's result (Redis away a moment): about 20 s in all
RECORD_PAUSES = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0)


class UnrecordedError(Exception):
    """Lines of a batch were left without a result: the batch is not finished, another runner goes on."""


class Pacer:
    """Requests and tokens per minute as two buckets, full at the start; ``wait`` takes from both, waiting until
    they hold enough (0: no limit)."""

    def __init__(self, requests_per_minute: int, tokens_per_minute: int) -> None:
        self._rates = (requests_per_minute / 60.0, tokens_per_minute / 60.0)
        self._sizes = (float(requests_per_minute), float(tokens_per_minute))
        self._levels = list(self._sizes)
        self._at = time.monotonic()

    async def wait(self, tokens: int) -> None:
        wanted = (1.0, float(min(tokens, self._sizes[1])))  # a line larger than a minute's tokens still runs
        while True:
            now = time.monotonic()
            elapsed, self._at = now - self._at, now
            self._levels = [
                min(size, level + rate * elapsed)
                for size, level, rate in zip(self._sizes, self._levels, self._rates, strict=True)
            ]
            short = [
                (want - level) / rate
                for want, level, rate in zip(wanted, self._levels, self._rates, strict=True)
                if rate and level < want
            ]
            if not short:
                self._levels = [
                    level - want if rate else level
                    for level, want, rate in zip(self._levels, wanted, self._rates, strict=True)
                ]
                return
            await asyncio.sleep(max(short))


def _tokens(line: BatchLine) -> int:
    prompt = sum(estimate_tokens(message_text(message)) for message in line.messages)
    return prompt + (line.params.max_tokens or 0)


class BatchRunner:
    def __init__(
        self,
        store: RedisBatchStore,
        files: FileStore,
        ctx: PipelineContext,
        sink: CollectingSink,
        *,
        name: str,
        concurrency: int = 64,
        attempts: int = 3,
        hold: float = 15.0,
        interactive: InteractiveWatch | None = None,
        give_way: float = 0.0,
    ) -> None:
        """``ctx`` publishes to ``sink`` and runs no job-end hooks (``run_line``). While ``interactive`` jobs
        run, a line is handed out every ``give_way`` seconds at most (0: the batch never gives way)."""
        self._store, self._files, self._ctx, self._sink = store, files, ctx, sink
        self._interactive = interactive if give_way > 0 else None
        self._give_way = give_way
        self._name = name
        self._concurrency = concurrency
        self._attempts = attempts
        self._hold_for = hold  # seconds; renewed every third of it

    async def run(self, batch_id: str) -> None:
        """Run the batch to ``finalizing``, unless another runner holds it or it is past running."""
        if not await self._store.take(batch_id, self._name, self._hold_for):
            log.info("batch %s: another runner holds it", batch_id)
            return
        holding = asyncio.create_task(self._hold(batch_id), name=f"batch-hold:{batch_id}")
        try:
            record = await self._store.start(batch_id, int(time.time()))
            if record is None or record.status not in ("in_progress", "cancelling"):
                return
            ends_as = await self._lines(record)
            await self._store.finish(batch_id, int(time.time()), ends_as)
            log.info("batch %s: its lines are done; it ends %s", batch_id, ends_as)
        finally:
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding
            with contextlib.suppress(Exception):
                await self._store.let_go(batch_id, self._name)

    async def _hold(self, batch_id: str) -> None:
        while True:
            await asyncio.sleep(self._hold_for / 3)
            try:
                await self._store.take(batch_id, self._name, self._hold_for)
            except Exception as exc:  # Redis away a moment: the next renewal may reach it
                log.warning("batch %s: could not renew the hold: %s", batch_id, exc)

    async def _lines(self, record: BatchRecord) -> str:
        """Hand out the lines not yet done; how the batch ends: ``completed``, ``cancelled`` or ``expired``."""
        owner = Principal(user_id=record.owner, tier=record.tier or "pro")
        pacer = Pacer(record.requests_per_minute, record.tokens_per_minute)
        missed = 0
        for _ in range(PASSES):
            ends_as, missed = await self._pass(record, owner, pacer)
            if ends_as != "completed" or not missed:
                return ends_as
            log.warning("batch %s: %d lines left without a result; another pass", record.id, missed)
        raise UnrecordedError(f"batch {record.id}: {missed} lines left without a result")

    async def _pass(self, record: BatchRecord, owner: Principal, pacer: Pacer) -> tuple[str, int]:
        """One pass over the file: how the batch ends, and how many lines this pass left without a result."""
        slots = asyncio.Semaphore(self._concurrency)
        running: set[asyncio.Task[bool]] = set()
        ends_as, asked, missed = "completed", 0.0, 0

        def ended(task: asyncio.Task[bool]) -> None:
            nonlocal missed
            running.discard(task)
            if task.cancelled() or task.exception() is not None or not task.result():
                missed += 1

        try:
            async for chunk in read_lines(self._files, record.lines_file_id, CHUNK):
                done = await self._store.recorded(record.id, [line.custom_id for line in chunk])
                for line in (line for line in chunk if line.custom_id not in done):
                    await pacer.wait(_tokens(line))
                    await slots.acquire()
                    if time.monotonic() - asked >= CANCEL_CHECK:  # a cancel stops the lines not yet handed out
                        asked = time.monotonic()
                        if await self._store.status(record.id) == "cancelling":
                            ends_as = "cancelled"
                    if ends_as == "completed" and time.time() >= record.expires_at:
                        ends_as = "expired"
                    if ends_as != "completed":
                        slots.release()
                        break
                    if self._interactive is not None and await self._interactive.busy():
                        await asyncio.sleep(self._give_way)  # interactive jobs first: the batch slows to a trickle
                    task = asyncio.create_task(self._line(record, owner, line, slots))
                    running.add(task)
                    task.add_done_callback(ended)
                if ends_as != "completed":
                    break
        finally:
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        return ends_as, missed

    async def _line(self, record: BatchRecord, owner: Principal, line: BatchLine, slots: asyncio.Semaphore) -> bool:
        """Run the line and record its result; ``False`` if it is left without one."""
        try:
            result = await run_line(line, owner, record.id, self._ctx, self._sink, attempts=self._attempts)
            day = time.strftime("%Y-%m-%d", time.gmtime())
            for pause in (*RECORD_PAUSES, None):
                try:
                    await self._store.record(record, result, line.provider, line.model, day)
                    return True
                except Exception as exc:  # Redis away a moment; recording again is harmless (once by custom_id)
                    if pause is None:
                        raise
                    log.warning("batch %s: line %r not recorded yet: %s", record.id, line.custom_id, exc)
                    await asyncio.sleep(pause)
        except Exception:  # left without a result: a later pass, or the batch's next runner, runs it again
            log.exception("batch %s: line %r could not be recorded", record.id, line.custom_id)
        finally:
            slots.release()
        return False
