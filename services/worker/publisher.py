"""Publishing a job's events: coalesced, one Redis round trip per flush.

A flush PUBLISHes the pending events as one msgpack array on the reply channel of the API process
relaying the job (framed with the job id) and appends the same payload to the job's capped replay
stream, under the entry id ``1-<last seq>`` (``shared.codec.log_entry_id``), so a resume from any event
is one ``XRANGE``. The first flush also writes the job's ``StreamRecord`` (owner, how to render it)
with a TTL that outlives the log; the log gets its TTL on the first and the last flush. While a flush is
in flight new events pile up, so a fast upstream is batched by Redis's own latency; text deltas that pile
up merge into one event.
The flusher also sends a heartbeat when nothing has been published for a while. The first flush can hold
a lone first event back briefly (``hold_first``), so a job's ``Started`` goes out with its first tokens in
one round trip instead of taking one of its own just before them.

A flush that reaches no subscriber means the API process relaying the job is gone, or reconnecting (it
subscribes before it enqueues; a client that leaves is reported by a cancel message). Once nobody has
listened for ``orphan_grace`` seconds, ``on_gone`` is awaited at every flush (heartbeats included, so even
while the upstream is silent); it decides whether the job stops.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from services.worker.sink import EventSink, Flush
from shared.codec import encode_events
from shared.events import Done, Event, Failed, Heartbeat, TextDelta, is_terminal

__all__ = ["JobPublisher"]

log = logging.getLogger("conduit.worker")

E = TypeVar("E", bound=Event)
T = TypeVar("T", bound=Done | Failed)


class JobPublisher:
    """Numbers, coalesces and flushes one job's events; ``close`` waits until the terminal one is out."""

    def __init__(
        self,
        sink: EventSink,
        job_id: str,
        heartbeat_interval: float = 5.0,
        reply_to: str = "",
        on_gone: Callable[[], Awaitable[object]] | None = None,
        hold_first: float = 0.0,
        record: bytes | None = None,
        orphan_grace: float = 0.0,
        name_key: str = "",
    ) -> None:
        self._sink = sink
        self._hold_first = hold_first
        self._on_gone = on_gone
        self._record = record
        self._name_key = name_key
        self._after: tuple[Any, ...] | None = None
        self._before: tuple[tuple[Any, ...], ...] = ()
        self._orphan_grace = orphan_grace
        self._unheard_since = 0.0  # when flushes started reaching nobody (0: the last one was heard)
        self._job_id = job_id
        self._reply_to = reply_to
        self._heartbeat = heartbeat_interval
        self._pending: list[Event] = []
        self._seq = 0
        self._wake = asyncio.Event()
        self._closed = False
        self.receivers = -1  # subscribers reached by the last flush (-1: nothing flushed yet)
        self.last_flush = time.monotonic()
        self._task = asyncio.create_task(self._run(), name=f"publisher:{job_id}")

    @property
    def seq(self) -> int:
        return self._seq

    def raise_if_broken(self) -> None:
        """Re-raise the flusher's failure (Redis unreachable): no point generating what cannot be sent."""
        if self._task.done() and not self._closed:
            self._task.result()

    def emit_text(self, text: str, choice: int = 0) -> None:
        if not text:
            return
        last = self._pending[-1] if self._pending else None
        if isinstance(last, TextDelta) and last.logprobs is None and last.choice == choice:
            self._pending[-1] = TextDelta(seq=last.seq, text=last.text + text, choice=choice)
        else:
            self._seq += 1
            self._pending.append(TextDelta(seq=self._seq, text=text, choice=choice))
        self._wake.set()

    def emit(self, event: E) -> E:
        """Queue ``event`` with the next ``seq``; return it as numbered."""
        self._seq += 1
        numbered = msgspec.structs.replace(event, seq=self._seq)
        self._pending.append(numbered)
        self._wake.set()
        return numbered

    async def close(
        self, terminal: T, after: tuple[Any, ...] | None = None, before: Sequence[tuple[Any, ...]] = ()
    ) -> T:
        """Queue the terminal event, wait until everything is flushed, return it as numbered; ``before`` and
        ``after`` are commands sent with it, ahead of it and behind it, in the same round trip."""
        if not is_terminal(terminal):
            raise ValueError(f"close() takes a terminal event, not {type(terminal).__name__}")
        self._after = after
        self._before = tuple(before)
        numbered = self.emit(terminal)
        self._closed = True
        await asyncio.shield(self._task)  # the flusher may be sending other jobs' events too: never cancel it
        return numbered

    async def _hold(self) -> None:
        """Keep a lone first event (``Started``) back until another joins it, for up to ``hold_first``."""
        try:
            async with asyncio.timeout(self._hold_first):
                while len(self._pending) < 2 and not self._closed:  # noqa: PLR2004 - a lone first event
                    self._wake.clear()
                    await self._wake.wait()
        except TimeoutError:
            pass
        if self._pending:
            self._wake.set()

    async def _run(self) -> None:
        if self._hold_first:
            await self._hold()
        while True:
            if not self._wake.is_set():
                try:
                    async with asyncio.timeout(self._heartbeat):  # no extra task per wait, unlike wait_for
                        await self._wake.wait()
                except TimeoutError:
                    self.emit(Heartbeat(seq=0))
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                first = self.receivers == -1
                record, self._record = self._record, None
                last = is_terminal(batch[-1])
                after, before = (self._after, self._before) if last else (None, ())
                flush = Flush(
                    self._job_id,
                    self._reply_to,
                    encode_events(batch),
                    batch[-1].seq,
                    record,
                    self._name_key if record is not None else "",
                    first or self._closed,
                    after,
                    before,
                )
                self.receivers = await self._sink.send(flush)
                self.last_flush = time.monotonic()
                await self._check_heard()
            if self._closed and not self._pending:
                return

    async def _check_heard(self) -> None:
        if self.receivers != 0 or self._closed or self._on_gone is None:
            self._unheard_since = 0.0
            return
        self._unheard_since = self._unheard_since or self.last_flush
        if self.last_flush - self._unheard_since >= self._orphan_grace:
            self._unheard_since = self.last_flush  # asked again after another grace, not at every flush
            await self._on_gone()
