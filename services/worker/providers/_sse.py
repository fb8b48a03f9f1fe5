"""Upstream SSE decoding from raw bytes (WHATWG rules; lines end only at CR, LF or CRLF).

httpx's ``aiter_lines`` also splits on U+2028, U+0085 and friends, which corrupts JSON in ``data:``
lines, so the stream is split here on bytes. A multi-byte UTF-8 character split across network chunks
is reassembled because decoding happens per complete line.
"""

from collections.abc import AsyncIterator

import msgspec

__all__ = ["SSEEvent", "iter_sse"]


class SSEEvent(msgspec.Struct, gc=False):
    event: str
    data: str


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    """Yield each dispatched event; comments and events without data are skipped."""
    buffer = b""
    event = ""
    data: list[str] = []
    async for chunk in chunks:
        buffer += chunk
        while True:
            cut = _line_end(buffer)
            if cut is None:
                break
            end, nxt = cut
            line = buffer[:end].decode("utf-8", errors="replace")
            buffer = buffer[nxt:]
            if line == "":
                if data:
                    yield SSEEvent(event or "message", "\n".join(data))
                event, data = "", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
    if data:  # a last event without the blank line: dispatch it, the caller decides if it is complete
        yield SSEEvent(event or "message", "\n".join(data))


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """(end of line, start of next) for the first complete line, or None; a lone trailing CR waits."""
    lf = buffer.find(b"\n")
    cr = buffer.find(b"\r")
    if cr == -1 and lf == -1:
        return None
    if cr == -1 or (lf != -1 and lf < cr):
        return lf, lf + 1
    if cr + 1 == len(buffer):
        return None  # could be the first half of CRLF
    return cr, cr + (2 if buffer[cr + 1 : cr + 2] == b"\n" else 1)
