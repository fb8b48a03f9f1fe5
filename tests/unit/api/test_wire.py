"""Bytes every client can split: keep-alives that never become events, and JSON without raw line separators."""

import json

import pytest
from openai._streaming import SSEDecoder

from services.api.dialects.openai.sse import ChatChunkEncoder
from services.api.sse import PING, frames, render
from services.api.wire import encode_json
from shared.events import Done, Event, TextDelta

SEPARATORS = ["\u2028", "\u2029", "\u0085"]


@pytest.mark.parametrize("char", SEPARATORS)
def test_line_separators_are_escaped_and_mean_the_same_text(char):
    value = {"content": f"a{char}b", "nested": [f"{char}{char}", "ok"], "plain": "é ü ✓ 中"}
    out = encode_json(value)
    assert char.encode() not in out
    assert json.loads(out) == value
    assert out.decode().splitlines() == [out.decode()]  # str.splitlines is what line-splitting clients use


def test_text_without_separators_is_msgspec_s_own_bytes():
    value = {"content": "plain ✓ text \u2027 \u202a", "n": 1}
    assert encode_json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _decode(raw: bytes) -> list[str]:
    decoder = SSEDecoder()
    return [sse.data for sse in decoder.iter_bytes(iter([raw]))]


async def _events(*items: Event | None):
    for item in items:
        yield item


@pytest.mark.anyio
async def test_pings_between_and_before_frames_are_not_events_to_the_openai_sdk():
    encoder = ChatChunkEncoder("chatcmpl-x", "echo", include_usage=False, created=1)
    stream = _events(None, TextDelta(seq=1, text="Hi"), None, None, TextDelta(seq=2, text="!"), None, Done(seq=3))
    raw = b"".join([chunk async for chunk in render(stream, encoder)])
    assert raw.count(PING) == 4
    data = _decode(raw)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]  # an empty event would fail here, as it did in the SDK
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hi!"


def test_a_ping_joins_the_next_frame_and_ends_no_block():
    raw = frames(1, [b"{}"]) + PING + PING + frames(2, [b"[DONE]"])
    assert _decode(raw) == ["{}", "[DONE]"]
    assert b": ping\n\n" not in raw
