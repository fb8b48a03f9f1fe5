"""Relaying a started job to a streaming client: the dialect encodes frames, this drives them.

Every stream ends in exactly one terminal frame: the job's own, or an error frame made here when the
relay itself breaks. Client disconnects cancel the job (``OpenStream.close`` runs shielded, and again
as the response's background task in case the body was never iterated).
"""

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Protocol

from litestar.background_tasks import BackgroundTask
from litestar.response import Stream

from services.api.generation import OpenStream
from shared.errors import ErrorCode
from shared.events import Event, Failed

__all__ = ["FrameEncoder", "sse_response"]

log = logging.getLogger("conduit.api")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
PING = b": ping\n\n"


class FrameEncoder(Protocol):
    def encode(self, event: Event) -> bytes:
        """The frames for ``event`` (``b""`` for none); a terminal event ends with the dialect's end marker."""
        ...


async def _frames(stream: OpenStream, encoder: FrameEncoder) -> AsyncIterator[bytes]:
    try:
        async for event in stream:
            frame = PING if event is None else encoder.encode(event)
            if frame:
                yield frame
    except Exception:
        correlation = uuid.uuid4().hex[:12]
        log.exception("stream of job %s broke (correlation id %s)", stream.job.id, correlation)
        seq = stream.run.last_seq + 1
        yield encoder.encode(Failed(seq=seq, code=ErrorCode.INTERNAL, message=f"internal error ({correlation})"))
    finally:
        await stream.close()


def sse_response(stream: OpenStream, encoder: FrameEncoder) -> Stream:
    return Stream(
        _frames(stream, encoder),
        status_code=200,
        media_type="text/event-stream",
        headers=SSE_HEADERS,
        background=BackgroundTask(stream.close),
    )
