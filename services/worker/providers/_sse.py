"""Upstream SSE decoding from raw bytes (WHATWG rules; lines end only at CR, LF or CRLF).

httpx's ``aiter_lines`` also splits on U+2028, U+0085 and friends, which corrupts JSON in ``data:``
lines, so the stream is split here on bytes. A multi-byte UTF-8 character split across network chunks
is reassembled because decoding happens per complete line. A leading BOM is dropped; a last line
without its line end, and a last event without its blank line, are still delivered (the adapter then
decides whether the stream was complete).
"""

import re
from collections.abc import AsyncIterator, Iterator

import msgspec

__all__ = ["SSEEvent", "iter_sse"]

_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class SSEEvent(msgspec.Struct, gc=False):
    event: str
    data: str


class _Parser:
    """Fields are matched as bytes and a data payload is decoded once per event (a line break is never
    inside a UTF-8 sequence, so that equals decoding line by line)."""

    def __init__(self) -> None:
        self.event = ""
        self.data: list[bytes] = []

    def line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            return self.dispatch()
        if raw.startswith(b"data:"):
            value = raw[5:]
            self.data.append(value[1:] if value[:1] == b" " else value)
        elif raw[:1] == b":":
            return None
        else:
            name, _, value = raw.partition(b":")
            if name == b"event":
                self.event = (value[1:] if value[:1] == b" " else value).decode("utf-8", errors="replace")
            elif name == b"data":  # "data" with no colon: an empty data line
                self.data.append(b"")
        return None

    def dispatch(self) -> SSEEvent | None:
        data = self.data
        event = SSEEvent(self.event or "message", b"\n".join(data).decode("utf-8", errors="replace")) if data else None
        self.event, self.data = "", []
        return event


def _lines(buffer: bytes, final: bool) -> tuple[list[bytes], bytes]:
    """Complete lines of ``buffer`` and the rest; a trailing lone CR waits (it may be half a CRLF)."""
    if b"\r" not in buffer:  # the common case, LF only: split in C
        *lines, rest = buffer.split(b"\n")
        if final and rest:
            lines.append(rest)
            rest = b""
        return lines, rest
    lines = []
    start = 0
    for match in _EOL.finditer(buffer):
        if not final and match.group() == b"\r" and match.end() == len(buffer):
            break
        lines.append(buffer[start : match.start()])
        start = match.end()
    rest = buffer[start:]
    if final and rest:
        lines.append(rest)
        rest = b""
    return lines, rest


def _events(parser: _Parser, lines: list[bytes]) -> Iterator[SSEEvent]:
    for raw in lines:
        event = parser.line(raw)
        if event is not None:
            yield event


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    """Yield each dispatched event; comments and events without data are skipped."""
    parser = _Parser()
    buffer = b""
    first = True
    async for chunk in chunks:
        buffer += chunk
        if first:
            if len(buffer) < len(_BOM) and _BOM.startswith(buffer):
                continue
            buffer = buffer.removeprefix(_BOM)
            first = False
        lines, buffer = _lines(buffer, final=False)
        for event in _events(parser, lines):
            yield event
    lines, _ = _lines(buffer, final=True)
    for event in _events(parser, lines):
        yield event
    last = parser.dispatch()
    if last is not None:
        yield last
