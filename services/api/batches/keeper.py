"""The API's batch keeper: every ``interval`` seconds, each API process looks at the batches not ended yet.

- One that no runner holds (a new batch whose message was lost, or whose runner died: its hold ran out) is
  handed to the batch workers again, at most every ``resend_after`` seconds. A batch is never lost with a worker
  or a message: its record is what says it still has lines to run.
- One whose lines are done (``finalizing``) gets its files: the lines' results rendered as the synchronous
  endpoint answers (``results.py``), answered lines to the output file, failed and never-run ones to the error
  file, streamed to the file store line by line (never held whole); then it ends ``completed``, ``cancelled``
  or ``expired``. One API process writes a batch's files at a time (a hold with a TTL); one that dies while
  writing leaves them to the next round, which writes them again under the same ids (``batch_file_id``), so
  no file of a batch is left behind twice.
"""

import logging
import time

import redis.asyncio as aioredis

from services.api.batches.results import Drawing, rendered
from services.api.batches.service import run_batch_message
from services.api.deps import Files
from services.api.dialects import registry
from services.api.enqueue import Broker
from services.api.errors import ErrorRenderer
from services.api.periodic import Periodic
from services.stores.batches import BatchRecord
from services.stores.files import FileRecord, batch_file_id
from services.stores.redis_batches import RedisBatchStore
from shared import keys
from shared.batches import LINES_SUFFIX

__all__ = ["BatchKeeper"]

log = logging.getLogger("conduit.api")

#: how long a process may take writing one batch's files before another may start over
WRITE_HOLD = 600.0
RUNNING = ("validating", "in_progress", "cancelling")
#: how often the files whose records are gone (expired) are swept, and how old such a file must be (an upload
#: writes its bytes a moment before its record)
SWEEP_EVERY, SWEEP_AFTER = 600.0, 3600.0


def _renderer(endpoint: str) -> ErrorRenderer:
    return next(render for prefix, render in registry.error_renderers() if endpoint.startswith(prefix))


class BatchKeeper:
    def __init__(
        self,
        redis: "aioredis.Redis",
        store: RedisBatchStore,
        files: Files,
        broker: Broker,
        *,
        interval: float = 1.0,
        resend_after: float = 10.0,
        output_expiry: int = 2_592_000,
    ) -> None:
        self._redis, self._store, self._files, self._broker = redis, store, files, broker
        self._interval, self._resend_after, self._output_expiry = interval, resend_after, output_expiry
        self._sent: dict[str, float] = {}  # batch id -> when this process last handed it out
        self._swept = time.monotonic()
        self._rounds = Periodic("batch-keeper", self._interval, self.tend, "look after the batches")

    async def start(self) -> None:
        await self._rounds.start()

    async def stop(self) -> None:
        await self._rounds.stop()

    async def tend(self) -> None:
        now = time.monotonic()
        active = await self._store.active()
        for batch_id, status, held in active:
            if status is None:
                await self._store.forget(batch_id)
            elif status == "finalizing":
                await self._finalize(batch_id)
            elif status in RUNNING and not held and now - self._sent.get(batch_id, -1e9) >= self._resend_after:
                self._sent[batch_id] = now
                await self._broker.send([run_batch_message(batch_id)])
        known = {batch_id for batch_id, _, _ in active}  # what no longer is has ended: no resend to remember
        self._sent = {batch_id: at for batch_id, at in self._sent.items() if batch_id in known}
        if now - self._swept >= SWEEP_EVERY:
            self._swept = now
            await self.sweep_files(time.time() - SWEEP_AFTER)

    async def sweep_files(self, before: float) -> int:
        """Delete the bytes of files written before ``before`` whose records are gone (they expired); how many.
        A batch input's translated lines go with the input."""
        store = self._files.store
        old = [file_id for file_id, written in await store.stored() if written < before]
        owners = [file_id.removesuffix(LINES_SUFFIX) for file_id in old]
        gone = 0
        for start in range(0, len(old), 500):
            chunk = owners[start : start + 500]
            kept = await self._redis.mget([keys.file(file_id) for file_id in chunk])
            for file_id, record in zip(old[start : start + 500], kept, strict=True):
                if record is None:
                    await store.delete(file_id)
                    gone += 1
        if gone:
            log.info("swept %d files whose records had expired", gone)
        return gone

    async def _finalize(self, batch_id: str) -> None:
        hold = keys.batch_keeper(batch_id)
        if not await self._redis.set(hold, "1", nx=True, px=int(WRITE_HOLD * 1000)):
            return
        try:
            record = await self._store.read(batch_id)
            if record is None or record.status != "finalizing":
                return
            output, errors = await self._write(record)
            if await self._store.end(batch_id, int(time.time()), output, errors):
                log.info("batch %s ended %s", batch_id, record.ends_as)
        finally:
            await self._redis.delete(hold)

    async def _write(self, record: BatchRecord) -> tuple[str | None, str | None]:
        """The output and error files (an empty one is not kept: its id is ``None``)."""
        ids, sizes = (batch_file_id(record.id, "output"), batch_file_id(record.id, "error")), [0, 0]
        store, ends_as = self._files.store, record.ends_as or "completed"
        async with store.writer(ids[0]) as output, store.writer(ids[1]) as failures:
            draw = Drawing(registry.body_for, _renderer(record.endpoint))
            async for answered, data in rendered(self._store, store, record, ends_as, draw):
                await (output if answered else failures).write(data)
                sizes[0 if answered else 1] += len(data)
        kept: list[str | None] = []
        now = int(time.time())
        for file_id, size, kind in zip(ids, sizes, ("output", "error"), strict=True):
            if not size:
                await store.delete(file_id)
                kept.append(None)
                continue
            await self._files.records.add(
                FileRecord(
                    id=file_id,
                    owner=record.owner,
                    bytes=size,
                    created_at=now,
                    filename=f"{record.id}_{kind}.jsonl",
                    purpose="batch_output",
                    expires_at=now + expiry if (expiry := record.output_expires_after or self._output_expiry) else None,
                )
            )
            kept.append(file_id)
        return kept[0], kept[1]
