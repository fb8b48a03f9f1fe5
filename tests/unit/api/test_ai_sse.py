import json
from pathlib import Path

import pytest
from openai._streaming import SSEDecoder

from services.api.dialects.ai.sse import TokenEncoder
from services.api.sse import frames
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

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "downstream" / "ai"

STREAMS: dict[str, list[Event]] = {
    "text": [
        Started(seq=1, worker="w"),
        TextDelta(seq=2, text="Hel"),
        Heartbeat(seq=3),
        ReasoningDelta(seq=4, text="hidden"),
        TextDelta(seq=5, text='lo ☕ "quoted"\n'),
        Usage(seq=6, prompt_tokens=3, completion_tokens=2),
        Done(seq=7, finish_reason="stop", model="echo"),
    ],
    "error_after_text": [
        Started(seq=1),
        TextDelta(seq=2, text="Partial"),
        Failed(seq=3, code="upstream_overloaded", message="anthropic returned HTTP 529: Overloaded", retryable=True),
    ],
    "error_only": [Failed(seq=1, code="cancelled", message="the client cancelled the request")],
}


DONE = b"data: [DONE]\n\n"


def _encode(events: list[Event]) -> bytes:
    encoder = TokenEncoder()
    return b"".join(frames(event.seq, encoder.encode(event)) for event in events)


@pytest.mark.parametrize("name", list(STREAMS))
def test_token_stream_matches_golden_bytes(name):
    assert _encode(STREAMS[name]) == (GOLDEN / f"{name}.sse").read_bytes()


@pytest.mark.parametrize("name", list(STREAMS))
def test_token_stream_frames_are_lf_terminated_id_and_data_lines(name):
    data = _encode(STREAMS[name])

    assert b"\r" not in data
    assert data.endswith(DONE)
    assert data.count(DONE) == 1
    split = data.split(b"\n\n")
    assert split[-1] == b""
    for frame in split[:-1]:
        ident, payload = frame.split(b"\n")
        assert ident.startswith(b"id: ")
        assert payload.startswith(b"data: ")


def test_text_delta_encodes_one_token_payload():
    assert TokenEncoder().encode(TextDelta(seq=1, text="a b")) == [b'{"token":"a b"}']
    assert TokenEncoder().encode(TextDelta(seq=1, text="a\u2028b")) == [b'{"token":"a\\u2028b"}']  # escaped


def test_done_encodes_only_done_marker():
    assert TokenEncoder().encode(Done(seq=1, finish_reason="length")) == [b"[DONE]"]


def test_failed_encodes_error_frame_then_done():
    event = Failed(seq=4, code="upstream_timeout", message="openai did not answer in time")

    assert frames(4, TokenEncoder().encode(event)) == (
        b'id: 4\ndata: {"error":{"detail":"openai did not answer in time","code":"upstream_timeout"}}\n\n'
        b"id: 4.1\ndata: [DONE]\n\n"
    )


@pytest.mark.parametrize(
    "event",
    [
        Started(seq=1),
        Heartbeat(seq=1),
        ReasoningDelta(seq=1, text="x"),
        ToolCallDelta(seq=1, index=0, id="c", name="f"),
        Usage(seq=1, prompt_tokens=1, completion_tokens=1),
    ],
    ids=lambda e: type(e).__name__,
)
def test_non_text_events_encode_to_nothing(event):
    assert TokenEncoder().encode(event) == []


def test_token_stream_parses_with_standard_sse_decoder():
    events = list(SSEDecoder().iter_bytes(iter([_encode(STREAMS["text"])])))

    assert [e.data for e in events][-1] == "[DONE]"
    assert "".join(json.loads(e.data)["token"] for e in events[:-1]) == 'Hello ☕ "quoted"\n'
