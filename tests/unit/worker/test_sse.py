from collections.abc import AsyncIterator, Iterable

import pytest

from services.worker.providers._sse import SSEEvent, iter_sse

pytestmark = pytest.mark.anyio


async def _chunks(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _events(*chunks: bytes) -> list[SSEEvent]:
    return [event async for event in iter_sse(_chunks(chunks))]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
async def test_iter_sse_splits_events_with_any_line_ending(eol: bytes) -> None:
    raw = b"event: first" + eol + b"data: 1" + eol + eol + b"data: 2" + eol + eol
    assert await _events(raw) == [SSEEvent("first", "1"), SSEEvent("message", "2")]


async def test_iter_sse_joins_crlf_split_across_chunks() -> None:
    events = await _events(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n")
    assert events == [SSEEvent("message", "a"), SSEEvent("message", "b")]


async def test_iter_sse_reassembles_utf8_char_split_across_chunks() -> None:
    raw = "data: café 🚀\n\n".encode()
    cut = raw.index("é".encode()) + 1  # between the two bytes of é
    emoji = raw.index("🚀".encode()) + 2  # inside the four bytes of the emoji
    assert await _events(raw[:cut], raw[cut:emoji], raw[emoji:]) == [SSEEvent("message", "café 🚀")]


async def test_iter_sse_decodes_one_byte_at_a_time() -> None:
    raw = "event: x\r\ndata: é\r\n\r\n".encode()
    assert await _events(*(raw[i : i + 1] for i in range(len(raw)))) == [SSEEvent("x", "é")]


async def test_iter_sse_skips_comments_and_events_without_data() -> None:
    events = await _events(b": ping\n\nevent: lonely\n\n:keep-alive\ndata: x\n\n")
    assert events == [SSEEvent("message", "x")]


async def test_iter_sse_joins_multiple_data_lines_with_newline() -> None:
    assert await _events(b'data: {"a":\ndata:  1}\n\n') == [SSEEvent("message", '{"a":\n 1}')]


async def test_iter_sse_strips_one_space_after_colon_only() -> None:
    assert await _events(b"data:x\n\ndata:  y\n\n") == [SSEEvent("message", "x"), SSEEvent("message", " y")]


async def test_iter_sse_keeps_unicode_line_separators_inside_data() -> None:
    text = 'data: {"t":"a\u2028b\u2029c\u0085d"}\n\n'
    assert await _events(text.encode()) == [SSEEvent("message", '{"t":"a\u2028b\u2029c\u0085d"}')]


async def test_iter_sse_resets_event_name_after_dispatch() -> None:
    events = await _events(b"event: a\ndata: 1\n\ndata: 2\n\n")
    assert events == [SSEEvent("a", "1"), SSEEvent("message", "2")]


async def test_iter_sse_dispatches_last_event_without_blank_line() -> None:
    assert await _events(b"data: 1\n\ndata: 2\n") == [SSEEvent("message", "1"), SSEEvent("message", "2")]


async def test_iter_sse_yields_nothing_for_empty_stream() -> None:
    assert await _events() == []
