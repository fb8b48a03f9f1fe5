"""Relaying a job's events to a streaming client: the dialect encodes payloads, this frames and drives them.

Every frame of the job's events carries an ``id:``: the seq of the event it renders (``7``), and for the
further frames of the same event their index after it (``7.1``, ``7.2``). A client that lost its connection asks
``GET /v1/streams/{job_id}`` with ``Last-Event-ID`` and gets exactly the frames after that one: the
job's events are replayed through a fresh encoder (so its state, such as whether the role chunk went
out, is rebuilt) and the frames up to that id are skipped.

Every stream ends in exactly one terminal frame: the job's own, or an error frame the gateway made (a
deadline passed, Redis was lost, this process is shutting down, the relay itself broke). A gateway-made
event has ``seq`` 0 and its frames carry **no** ``id:``: an id of its own would take one that belongs to
a later event of the job, or be filtered out by ``Last-Event-ID`` on a resume. Without one, a client keeps
the id of the last frame of the job it has (the SSE spec's "last event ID buffer", which EventSource and
openai-python's decoder keep across frames), so a resume from it loses nothing.

Client disconnects end the job as its policy says (``OpenStream.close`` runs shielded, and again as the
response's background task in case the body was never iterated).
"""

import logging
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from typing import NamedTuple, Protocol

from litestar.background_tasks import BackgroundTask
from litestar.response import Stream

from shared.errors import ErrorCode, InvalidRequestError
from shared.events import Event, Failed, is_terminal

__all__ = [
    "JOB_HEADER",
    "START",
    "FrameEncoder",
    "FrameId",
    "Named",
    "Payload",
    "PlainFrames",
    "frames",
    "parse_last_event_id",
    "render",
    "sse_response",
    "unnumbered_frames",
]

log = logging.getLogger("conduit.api")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
#: the response header naming the job, for ``GET /v1/streams/{job_id}``
JOB_HEADER = "x-conduit-job-id"
#: a keep-alive: a comment line with no blank line after it. A comment followed by a blank line ends an event
#: block, and decoders that keep the last event id across events (openai-python's, as the SSE spec says)
#: dispatch that block as an event with empty data once an ``id:`` was seen, which the SDK then fails to
#: parse as JSON. Without the blank line the comment joins the next frame's block, where it is ignored.
PING = b": ping\n"
_ID = re.compile(r"^(\d{1,18})(?:\.(\d{1,6}))?$")


class Named(NamedTuple):
    """A frame with an ``event:`` name (Anthropic's Messages stream names every frame) and its ``data``."""

    event: bytes
    data: bytes


#: one frame's payload: its ``data`` alone, or with an ``event:`` name
Payload = bytes | Named


class FrameEncoder(Protocol):
    def encode(self, event: Event) -> Sequence[Payload]:
        """The frames' payloads for ``event`` (none for most bookkeeping events); a terminal event ends with
        the dialect's end marker."""
        ...


class PlainFrames:
    """A mark for an encoder whose frames are its upstream's own, byte for byte: ``data: ...`` then a CRLF CRLF,
    no ``id:`` and no keep-alive comments (Google's SDK reads every line that is not ``data:`` as JSON). Such a
    stream is resumed with ``Last-Event-ID: <n>``, the number of frames the client has."""


def _frame(head: bytes, payload: Payload) -> bytes:
    if isinstance(payload, Named):
        return head + b"event: " + payload.event + b"\ndata: " + payload.data + b"\n\n"
    return head + b"data: " + payload + b"\n\n"


def _plain(payload: bytes) -> bytes:
    """One frame as Google frames them: its data's lines each after ``data: ``, then CRLF CRLF."""
    return b"\r\n".join(b"data: " + line for line in payload.split(b"\n")) + b"\r\n\r\n"


class FrameId(NamedTuple):
    """The last frame a client has: event ``seq``, and the frame's index within that event."""

    seq: int = 0
    frame: int = -1


#: before the first frame: a stream from its start
START = FrameId()


def parse_last_event_id(value: str | None) -> FrameId:
    """``Last-Event-ID`` (``7`` or ``7.2``) -> FrameId; absent or empty -> before the first frame."""
    if not value or not value.strip():
        return START
    match = _ID.match(value.strip())
    if match is None:
        raise InvalidRequestError(f"Last-Event-ID {value!r} is not a stream frame id (such as 12 or 12.1)")
    return FrameId(int(match[1]), int(match[2] or 0))


def frames(seq: int, payloads: Sequence[Payload], after: FrameId = START) -> bytes:
    """The SSE frames of one event's payloads, each with its id; those up to ``after`` left out."""
    out = b""
    for index, payload in enumerate(payloads):
        if (seq, index) <= after:
            continue
        ident = b"%d" % seq if index == 0 else b"%d.%d" % (seq, index)
        out += _frame(b"id: " + ident + b"\n", payload)
    return out


def unnumbered_frames(payloads: Sequence[Payload]) -> bytes:
    """The SSE frames of an event the gateway made (``seq`` 0): no ``id:``, never left out by ``Last-Event-ID``."""
    return b"".join(_frame(b"", payload) for payload in payloads)


def _frames_of(event: Event, encoder: FrameEncoder, after: FrameId) -> bytes:
    payloads = encoder.encode(event)
    return frames(event.seq, payloads, after) if event.seq else unnumbered_frames(payloads)


async def render(
    events: AsyncIterable[Event | None], encoder: FrameEncoder, after: FrameId = START
) -> AsyncIterator[bytes]:
    """The stream's bytes: frames after ``after``, pings for ``None``; exactly one terminal event. An unexpected
    failure of the relay itself, or a relay that stops without a terminal event, becomes the dialect's error
    frame."""
    ended = False
    plain, skip = isinstance(encoder, PlainFrames), after.seq
    try:
        async for event in events:
            if event is None:
                if not plain:
                    yield PING
                continue
            ended = ended or is_terminal(event)
            if plain:
                payloads = [p for p in encoder.encode(event) if isinstance(p, bytes)]
                if event.seq and skip:  # the frames the client has
                    payloads, skip = payloads[skip:], max(0, skip - len(payloads))
                out = b"".join(map(_plain, payloads))
            else:
                out = _frames_of(event, encoder, after)
            if out:
                yield out
    except Exception:
        correlation = uuid.uuid4().hex[:12]
        log.exception("a stream broke (correlation id %s)", correlation)
        if ended:
            return
        message = f"internal error ({correlation})"
    else:
        if ended:
            return
        log.error("a stream's relay stopped without a terminal event")
        message = "internal error: the stream ended early; resume it with Last-Event-ID"
    last = encoder.encode(Failed(seq=0, code=ErrorCode.INTERNAL, message=message))
    if plain:
        yield b"".join(_plain(payload) for payload in last if isinstance(payload, bytes))
        return
    yield unnumbered_frames(last)


def sse_response(
    body: AsyncIterator[bytes],
    job_id: str,
    close: Callable[[], Awaitable[None]] | None = None,
    headers: dict[str, str] | None = None,
) -> Stream:
    """The SSE response; ``close`` also runs after it, in case the body was never iterated."""
    return Stream(
        body,
        status_code=200,
        media_type="text/event-stream",
        headers={**SSE_HEADERS, **(headers or {}), JOB_HEADER: job_id},
        background=BackgroundTask(close) if close is not None else None,
    )
