import asyncio
import time

import pytest

from services.worker.publisher import JobPublisher
from services.worker.sink import Flush
from shared.codec import decode_events
from shared.events import (
    Done,
    Event,
    Failed,
    Heartbeat,
    ReasoningDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)

pytestmark = pytest.mark.anyio


class MemorySink:
    """An ``EventSink`` that records each payload's events; ``gate`` holds sends open, ``error`` fails them."""

    def __init__(self, receivers: int = 1) -> None:
        self.receivers = receivers
        self.payloads: list[list[Event]] = []
        self.job_ids: list[str] = []
        self.flushes: list[Flush] = []
        self.gate: asyncio.Event | None = None
        self.error: Exception | None = None
        self.entered = asyncio.Event()
        self.received = asyncio.Event()

    async def send(self, flush: Flush) -> int:
        self.flushes.append(flush)
        self.job_ids.append(flush.job_id)
        self.entered.set()
        if self.error is not None:
            raise self.error
        if self.gate is not None:
            await self.gate.wait()
        self.payloads.append(decode_events(flush.payload))
        self.received.set()
        return self.receivers

    @property
    def events(self) -> list[Event]:
        return [event for payload in self.payloads for event in payload]

    async def next_payload(self, timeout: float = 2.0) -> list[Event]:
        self.received.clear()
        count = len(self.payloads)
        async with asyncio.timeout(timeout):
            while len(self.payloads) == count:
                await self.received.wait()
                self.received.clear()
        return self.payloads[count]


async def test_seq_starts_at_one_and_increases_by_one_per_event():
    sink = MemorySink()
    publisher = JobPublisher(sink, "job_1")

    publisher.emit(Started(seq=99, worker="w"))
    publisher.emit(ReasoningDelta(seq=0, text="hmm"))
    publisher.emit_text("Hello")
    publisher.emit(ToolCallDelta(seq=0, index=0, id="call_1", name="f"))
    publisher.emit(Usage(seq=7, prompt_tokens=3, completion_tokens=1))
    await publisher.close(Done(seq=0, finish_reason="tool_calls", model="m"))

    assert sink.payloads == [
        [
            Started(seq=1, worker="w"),
            ReasoningDelta(seq=2, text="hmm"),
            TextDelta(seq=3, text="Hello"),
            ToolCallDelta(seq=4, index=0, id="call_1", name="f"),
            Usage(seq=5, prompt_tokens=3, completion_tokens=1),
            Done(seq=6, finish_reason="tool_calls", model="m"),
        ]
    ]
    assert publisher.seq == 6
    assert sink.job_ids == ["job_1"]


async def test_emit_text_merges_adjacent_pending_deltas():
    sink = MemorySink()
    publisher = JobPublisher(sink, "job_1")

    publisher.emit_text("a")
    publisher.emit_text("b")
    publisher.emit(Usage(seq=0, prompt_tokens=1, completion_tokens=2))
    publisher.emit_text("c")
    publisher.emit_text("d")
    await publisher.close(Done(seq=0))

    assert sink.events == [
        TextDelta(seq=1, text="ab"),
        Usage(seq=2, prompt_tokens=1, completion_tokens=2),
        TextDelta(seq=3, text="cd"),
        Done(seq=4),
    ]


async def test_emit_text_ignores_empty_text():
    sink = MemorySink()
    publisher = JobPublisher(sink, "job_1")

    publisher.emit_text("")
    await publisher.close(Done(seq=0))

    assert sink.events == [Done(seq=1)]


async def test_text_emitted_during_flush_merges_and_keeps_first_seq():
    sink = MemorySink()
    sink.gate = asyncio.Event()
    publisher = JobPublisher(sink, "job_1")

    publisher.emit_text("a")
    await asyncio.wait_for(sink.entered.wait(), 2.0)  # the first flush is now in flight, held by the gate
    publisher.emit_text("b")
    publisher.emit_text("c")
    publisher.emit_text("d")
    publisher.emit(Usage(seq=0, prompt_tokens=1, completion_tokens=4))
    publisher.emit_text("e")
    sink.gate.set()
    await publisher.close(Done(seq=0))

    assert sink.payloads == [
        [TextDelta(seq=1, text="a")],
        [
            TextDelta(seq=2, text="bcd"),
            Usage(seq=3, prompt_tokens=1, completion_tokens=4),
            TextDelta(seq=4, text="e"),
            Done(seq=5),
        ],
    ]


async def test_close_flushes_everything_and_terminal_is_last():
    sink = MemorySink()
    publisher = JobPublisher(sink, "job_1")

    publisher.emit(Started(seq=0))
    first = await sink.next_payload()
    publisher.emit_text("x")
    await publisher.close(Failed(seq=0, code="upstream_error", message="boom"))

    assert first == [Started(seq=1)]
    assert sink.events[-1] == Failed(seq=3, code="upstream_error", message="boom")
    assert [e.seq for e in sink.events] == [1, 2, 3]
    assert sum(isinstance(e, Done | Failed) for e in sink.events) == 1


async def test_receivers_reports_last_flush():
    sink = MemorySink(receivers=3)
    publisher = JobPublisher(sink, "job_1")

    assert publisher.receivers == -1
    publisher.emit(Started(seq=0))
    await sink.next_payload()
    assert publisher.receivers == 3
    sink.receivers = 0
    await publisher.close(Done(seq=0))
    assert publisher.receivers == 0


async def test_heartbeat_sent_after_interval_of_silence():
    sink = MemorySink()
    start = time.monotonic()
    publisher = JobPublisher(sink, "job_1", heartbeat_interval=0.05)

    first = await sink.next_payload()
    elapsed = time.monotonic() - start
    await publisher.close(Done(seq=0))

    assert first == [Heartbeat(seq=1)]
    assert elapsed >= 0.04
    assert sink.events[-1] == Done(seq=len(sink.events))


async def test_heartbeat_follows_silence_after_events():
    sink = MemorySink()
    publisher = JobPublisher(sink, "job_1", heartbeat_interval=0.05)

    publisher.emit_text("hi")
    first = await sink.next_payload()
    second = await sink.next_payload()
    await publisher.close(Done(seq=0))

    assert first == [TextDelta(seq=1, text="hi")]
    assert second == [Heartbeat(seq=2)]


async def test_no_heartbeat_before_interval():
    sink = MemorySink()
    publisher = JobPublisher(sink, "job_1", heartbeat_interval=5.0)

    await asyncio.sleep(0.05)
    await publisher.close(Done(seq=0))

    assert sink.events == [Done(seq=1)]


@pytest.mark.parametrize(
    "event",
    [Started(seq=0), TextDelta(seq=0, text="x"), Heartbeat(seq=0), Usage(seq=0, prompt_tokens=1, completion_tokens=1)],
    ids=lambda e: type(e).__name__,
)
async def test_close_with_non_terminal_raises_value_error(event):
    sink = MemorySink()
    publisher = JobPublisher(sink, "job_1")

    with pytest.raises(ValueError, match=rf"^close\(\) takes a terminal event, not {type(event).__name__}$"):
        await publisher.close(event)
    assert publisher.seq == 0

    await publisher.close(Done(seq=0))
    assert sink.events == [Done(seq=1)]


async def test_raise_if_broken_reraises_sink_failure():
    sink = MemorySink()
    sink.error = ConnectionError("redis is down")
    publisher = JobPublisher(sink, "job_1")

    publisher.emit(Started(seq=0))
    await asyncio.wait_for(sink.entered.wait(), 2.0)
    await asyncio.sleep(0)  # let the flusher task finish with the error

    with pytest.raises(ConnectionError, match="redis is down"):
        publisher.raise_if_broken()
    with pytest.raises(ConnectionError, match="redis is down"):
        await publisher.close(Done(seq=0))


async def test_raise_if_broken_is_silent_while_healthy_and_after_close():
    sink = MemorySink()
    publisher = JobPublisher(sink, "job_1")

    publisher.emit(Started(seq=0))
    await sink.next_payload()
    publisher.raise_if_broken()
    await publisher.close(Done(seq=0))
    publisher.raise_if_broken()

    assert sink.events == [Started(seq=1), Done(seq=2)]


async def test_hold_first_sends_started_with_the_first_tokens_in_one_flush():
    sink = MemorySink()
    publisher = JobPublisher(sink, "job_1", heartbeat_interval=10.0, hold_first=1.0)
    publisher.emit(Started(seq=0, worker="w"))
    await asyncio.sleep(0.05)
    assert sink.payloads == []  # held: nothing else to go with it yet
    publisher.emit_text("Hi")
    assert await sink.next_payload() == [Started(seq=1, worker="w"), TextDelta(seq=2, text="Hi")]
    await publisher.close(Done(seq=0))


async def test_hold_first_lets_a_lone_started_go_after_the_hold():
    sink = MemorySink()
    publisher = JobPublisher(sink, "job_1", heartbeat_interval=10.0, hold_first=0.05)
    started = time.monotonic()
    publisher.emit(Started(seq=0, worker="w"))
    assert await sink.next_payload() == [Started(seq=1, worker="w")]
    assert 0.04 < time.monotonic() - started < 1.0
    await publisher.close(Done(seq=0))
    assert sink.events[-1] == Done(seq=2)
