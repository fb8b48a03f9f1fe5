import json
from pathlib import Path
from typing import Any

import pytest
from openai._streaming import SSEDecoder
from openai.types import Completion
from openai.types.chat import ChatCompletionChunk

from services.api.dialects.openai.sse import ChatChunkEncoder, CompletionChunkEncoder
from services.api.sse import frames
from shared.events import (
    Done,
    Event,
    Failed,
    Heartbeat,
    ModelInfo,
    ReasoningDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "downstream" / "openai"
CREATED = 1_700_000_000
CHAT_ID = "chatcmpl-test123"
CHAT_MODEL = "gpt-4o-mini"
COMPLETION_ID = "cmpl-test123"
COMPLETION_MODEL = "gpt-3.5-turbo-instruct"

LOGPROB_HI = {"token": "Hi", "logprob": -0.01, "bytes": [72, 105], "top_logprobs": []}
LOGPROB_BANG = {"token": "!", "logprob": -0.2, "bytes": [33], "top_logprobs": []}

CHAT_STREAMS: dict[str, tuple[bool, list[Event]]] = {
    "chat_text_usage": (
        True,
        [
            Started(seq=1, worker="w"),
            ModelInfo(seq=2, model="gpt-4o-mini-2024-07-18", system_fingerprint="fp_44709d6fcb"),
            TextDelta(seq=3, text="Hel"),
            Heartbeat(seq=4),
            TextDelta(seq=5, text='lo ☕ "quoted"\n'),
            Usage(seq=6, prompt_tokens=19, completion_tokens=2, cached_tokens=3),
            Done(seq=7, finish_reason="stop", model="gpt-4o-mini-2024-07-18"),
        ],
    ),
    "chat_tool_calls": (
        False,
        [
            Started(seq=1),
            ToolCallDelta(seq=2, index=0, id="call_abc", name="get_weather", arguments=""),
            ToolCallDelta(seq=3, index=0, arguments='{"city":'),
            ToolCallDelta(seq=4, index=0, arguments=' "Paris"}'),
            ToolCallDelta(seq=5, index=1, id="call_def", name="get_time", arguments="{}"),
            Usage(seq=6, prompt_tokens=76, completion_tokens=24),
            Done(seq=7, finish_reason="tool_calls"),
        ],
    ),
    "chat_reasoning": (
        False,
        [
            ReasoningDelta(seq=1, text="Let me think"),
            ReasoningDelta(seq=2, text=" harder."),
            TextDelta(seq=3, text="42"),
            Done(seq=4),
        ],
    ),
    "chat_failed_after_text": (
        True,
        [
            Started(seq=1),
            TextDelta(seq=2, text="Partial"),
            Failed(
                seq=3,
                code="upstream_error",
                message="openai returned HTTP 500: The server had an error",
                upstream_status=500,
            ),
        ],
    ),
    "chat_done_no_text": (True, [Started(seq=1), ModelInfo(seq=2, model="claude-haiku-4-5-20251001"), Done(seq=3)]),
    "chat_logprobs": (
        False,
        [
            Started(seq=1),
            ModelInfo(seq=2, model="gpt-4o-mini-2024-07-18", system_fingerprint="fp_44709d6fcb"),
            TextDelta(seq=3, text="Hi", logprobs={"content": [LOGPROB_HI], "refusal": None}),
            TextDelta(seq=4, text="!", logprobs={"content": [LOGPROB_BANG], "refusal": None}),
            Done(seq=5),
        ],
    ),
}

COMPLETION_STREAMS: dict[str, tuple[bool, list[Event]]] = {
    "completion_text_usage": (
        True,
        [
            Started(seq=1),
            ModelInfo(seq=2, model="gpt-3.5-turbo-instruct:20230824-v2"),
            TextDelta(seq=3, text="Hello"),
            TextDelta(seq=4, text=" world"),
            Usage(seq=5, prompt_tokens=5, completion_tokens=2),
            Done(seq=6, finish_reason="length"),
        ],
    ),
    "completion_failed": (
        False,
        [
            TextDelta(seq=1, text="Hi"),
            Failed(
                seq=2,
                code="upstream_rate_limited",
                message="openai returned HTTP 429: Rate limit reached",
                retryable=True,
            ),
        ],
    ),
}


DONE = b"data: [DONE]\n\n"


def _chat_bytes(name: str) -> bytes:
    include_usage, events = CHAT_STREAMS[name]
    encoder = ChatChunkEncoder(CHAT_ID, CHAT_MODEL, include_usage, CREATED)
    return b"".join(frames(event.seq, encoder.encode(event)) for event in events)


def _completion_bytes(name: str) -> bytes:
    include_usage, events = COMPLETION_STREAMS[name]
    encoder = CompletionChunkEncoder(COMPLETION_ID, COMPLETION_MODEL, include_usage, CREATED)
    return b"".join(frames(event.seq, encoder.encode(event)) for event in events)


def _all_streams() -> list[tuple[str, bytes]]:
    return [(name, _chat_bytes(name)) for name in CHAT_STREAMS] + [
        (name, _completion_bytes(name)) for name in COMPLETION_STREAMS
    ]


def _sdk_payloads(data: bytes) -> list[str]:
    """The ``data`` of each event as the official SDK's decoder sees it."""
    return [event.data for event in SSEDecoder().iter_bytes(iter([data]))]


def _golden(name: str) -> bytes:
    return (GOLDEN / f"{name}.sse").read_bytes()


# --- byte-for-byte against hand-written golden files ----------------------------------------------


@pytest.mark.parametrize("name", list(CHAT_STREAMS))
def test_chat_stream_matches_golden_bytes(name):
    assert _chat_bytes(name) == _golden(name)


@pytest.mark.parametrize("name", list(COMPLETION_STREAMS))
def test_completion_stream_matches_golden_bytes(name):
    assert _completion_bytes(name) == _golden(name)


# --- framing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "data"), _all_streams(), ids=[name for name, _ in _all_streams()])
def test_every_frame_is_an_id_line_and_one_data_line_ending_in_blank_line(name, data):
    assert b"\r" not in data
    assert data.endswith(b"\n\n")
    split = data.split(b"\n\n")
    assert split[-1] == b""
    ids = []
    for frame in split[:-1]:
        ident, payload = frame.split(b"\n")
        assert ident.startswith(b"id: ")
        assert payload.startswith(b"data: ")
        ids.append(ident[4:].decode())
    assert len(set(ids)) == len(ids)  # every frame its own id


@pytest.mark.parametrize(("name", "data"), _all_streams(), ids=[name for name, _ in _all_streams()])
def test_stream_ends_with_exactly_one_done_marker(name, data):
    assert data.endswith(DONE)
    assert data.count(b"data: [DONE]") == 1


@pytest.mark.parametrize(
    "event", [Started(seq=1), Heartbeat(seq=2), Usage(seq=3, prompt_tokens=1, completion_tokens=1)]
)
def test_non_content_events_encode_to_nothing(event):
    assert ChatChunkEncoder(CHAT_ID, CHAT_MODEL, True, CREATED).encode(event) == []
    assert CompletionChunkEncoder(COMPLETION_ID, COMPLETION_MODEL, True, CREATED).encode(event) == []


def test_completion_encoder_ignores_reasoning_and_tool_calls():
    encoder = CompletionChunkEncoder(COMPLETION_ID, COMPLETION_MODEL, False, CREATED)

    assert encoder.encode(ReasoningDelta(seq=1, text="hmm")) == []
    assert encoder.encode(ToolCallDelta(seq=2, index=0, id="c", name="f")) == []


def test_created_comes_from_the_streams_view_so_a_resume_renders_the_same_bytes():
    payloads = ChatChunkEncoder(CHAT_ID, CHAT_MODEL, False, 1234).encode(TextDelta(seq=1, text="x"))

    assert json.loads(payloads[0])["created"] == 1234


# --- the official SDK reads what we write ---------------------------------------------------------


@pytest.mark.parametrize("name", list(CHAT_STREAMS))
def test_chat_stream_parses_with_openai_sdk(name):
    payloads = _sdk_payloads(_chat_bytes(name))

    assert payloads[-1] == "[DONE]"
    chunks: list[dict[str, Any]] = [json.loads(p) for p in payloads[:-1]]
    for chunk in chunks:
        if "error" in chunk:
            assert set(chunk["error"]) == {"message", "type", "param", "code"}
        else:
            ChatCompletionChunk.model_validate(chunk)
            assert (chunk["id"], chunk["object"], chunk["created"]) == (CHAT_ID, "chat.completion.chunk", CREATED)


@pytest.mark.parametrize("name", list(COMPLETION_STREAMS))
def test_completion_stream_parses_with_openai_sdk(name):
    payloads = _sdk_payloads(_completion_bytes(name))

    assert payloads[-1] == "[DONE]"
    for payload in payloads[:-1]:
        chunk = json.loads(payload)
        if "error" in chunk:
            continue
        # the SDK builds stream chunks without validation (finish_reason is null until the last chunk)
        assert set(chunk) in (
            {"id", "object", "created", "model", "choices"},
            {"id", "object", "created", "model", "choices", "usage"},
        )
        assert (chunk["id"], chunk["object"]) == (COMPLETION_ID, "text_completion")
        assert chunk["model"] in (COMPLETION_MODEL, "gpt-3.5-turbo-instruct:20230824-v2")
        for choice in chunk["choices"]:
            assert set(choice) == {"text", "index", "logprobs", "finish_reason"}
        if chunk["choices"] and chunk["choices"][0]["finish_reason"] is not None:
            Completion.model_validate(chunk)


def test_chat_text_stream_reassembles_through_sdk():
    payloads = _sdk_payloads(_chat_bytes("chat_text_usage"))
    chunks = [ChatCompletionChunk.model_validate(json.loads(p)) for p in payloads[:-1]]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == 'Hello ☕ "quoted"\n'
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == [None, None, None, "stop"]
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (19, 2, 21)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 3
    assert chunks[-1].choices == []


def test_chat_tool_call_stream_reassembles_through_sdk():
    payloads = _sdk_payloads(_chat_bytes("chat_tool_calls"))
    chunks = [ChatCompletionChunk.model_validate(json.loads(p)) for p in payloads[:-1]]

    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for call in chunk.choices[0].delta.tool_calls or ():
            slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            slot["id"] = call.id or slot["id"]
            if call.function is not None:
                slot["name"] = call.function.name or slot["name"]
                slot["arguments"] += call.function.arguments or ""
    assert calls == {
        0: {"id": "call_abc", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "call_def", "name": "get_time", "arguments": "{}"},
    }
    assert chunks[0].choices[0].delta.content is None
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert all(c.usage is None for c in chunks)


def test_failure_frame_is_an_openai_error_object():
    payloads = _sdk_payloads(_chat_bytes("chat_failed_after_text"))

    assert json.loads(payloads[-2]) == {
        "error": {
            "message": "openai returned HTTP 500: The server had an error",
            "type": "server_error",
            "param": None,
            "code": "upstream_error",
        }
    }


def test_tool_call_without_id_gets_a_stable_call_id():
    encoder = ChatChunkEncoder(CHAT_ID, CHAT_MODEL, False, CREATED)

    payloads = encoder.encode(ToolCallDelta(seq=1, index=2, name="f", arguments="{}"))

    chunk = json.loads(payloads[0])
    assert chunk["choices"][0]["delta"]["tool_calls"] == [
        {"index": 2, "id": "call_2", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]
