import json

import msgspec
import pytest

from shared.codec import decode_events, decode_job, encode_events, job_to_builtins
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
    is_terminal,
)
from shared.jobs import (
    ChatMessage,
    GenerationJob,
    ImagePart,
    Principal,
    SamplingParams,
    TextPart,
    ToolCall,
    ToolSpec,
    UpstreamOverride,
)

EVENTS: list[Event] = [
    Started(seq=1, worker="host:123"),
    Started(seq=1),
    TextDelta(seq=2, text="Un café ☕"),
    TextDelta(seq=2, text=""),
    ReasoningDelta(seq=3, text="thinking…"),
    ToolCallDelta(seq=4, index=0, id="call_1", name="get_weather", arguments=""),
    ToolCallDelta(seq=5, index=0, arguments='{"city": "Orléans"}'),
    Usage(seq=6, prompt_tokens=21, completion_tokens=9),
    Usage(seq=6, prompt_tokens=21, completion_tokens=9, cached_tokens=5, reasoning_tokens=3),
    Heartbeat(seq=7),
    Done(seq=8),
    Done(seq=8, finish_reason="tool_calls", model="gpt-4o-mini-2024-07-18"),
    Failed(seq=9, code="upstream_rate_limited", message="slow down", retryable=True, upstream_status=429),
    Failed(seq=9, code="internal", message="boom"),
]

JOB = GenerationJob(
    id="job_1",
    request_id="req_1",
    principal=Principal(user_id="u_1", tier="pro", key_id="key_9"),
    provider="openai",
    model="gpt-4o-mini",
    messages=[
        ChatMessage(role="system", content="Be terse."),
        ChatMessage(role="user", content=[TextPart(text="What is this?"), ImagePart(url="data:image/png;base64,AA")]),
        ChatMessage(
            role="assistant",
            tool_calls=[ToolCall(id="call_1", name="look", arguments='{"q": 1}')],
        ),
        ChatMessage(role="tool", tool_call_id="call_1", content="a cat", name="look"),
    ],
    params=SamplingParams(
        temperature=0.2,
        top_p=0.9,
        max_tokens=64,
        stop=["END"],
        seed=7,
        tools=[ToolSpec(name="look", description="Look", parameters={"type": "object", "properties": {}})],
        tool_choice={"type": "function", "function": {"name": "look"}},
        response_format={"type": "json_object"},
    ),
    stream=False,
    created=1700000000.5,
    deadline=1700000030.5,
    upstream=UpstreamOverride(base_url="https://proxy.test/v1", origin="proxy.test", sealed_key="v1.abc"),
)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_event_round_trips_alone(event):
    assert decode_events(encode_events([event])) == [event]


def test_events_round_trip_as_one_batch_in_order():
    decoded = decode_events(encode_events(EVENTS))

    assert decoded == EVENTS
    assert [type(e) for e in decoded] == [type(e) for e in EVENTS]


def test_empty_batch_round_trips():
    assert decode_events(encode_events([])) == []


def test_encoded_event_carries_snake_case_type_tag_and_omits_defaults():
    raw = msgspec.msgpack.decode(encode_events([Done(seq=3), TextDelta(seq=1, text="a")]))

    assert raw == [{"type": "done", "seq": 3}, {"type": "text_delta", "seq": 1, "text": "a"}]


def test_decode_events_rejects_unknown_tag():
    payload = msgspec.msgpack.encode([{"type": "telepathy", "seq": 1}])

    with pytest.raises(msgspec.ValidationError, match="telepathy"):
        decode_events(payload)


def test_decode_events_rejects_missing_seq():
    payload = msgspec.msgpack.encode([{"type": "text_delta", "text": "a"}])

    with pytest.raises(msgspec.ValidationError, match="seq"):
        decode_events(payload)


def test_decode_events_tolerates_unknown_event_field():
    payload = msgspec.msgpack.encode([{"type": "done", "seq": 2, "finish_reason": "length", "latency_ms": 5}])

    assert decode_events(payload) == [Done(seq=2, finish_reason="length")]


def test_is_terminal_only_for_done_and_failed():
    assert [is_terminal(e) for e in EVENTS] == [isinstance(e, Done | Failed) for e in EVENTS]
    assert is_terminal(Done(seq=1)) is True
    assert is_terminal(Failed(seq=1, code="internal", message="x")) is True
    assert is_terminal(Heartbeat(seq=1)) is False


def test_job_round_trips_through_builtins():
    assert decode_job(job_to_builtins(JOB)) == JOB


def test_job_round_trips_through_json_as_celery_sends_it():
    wire = msgspec.json.encode(job_to_builtins(JOB))

    assert decode_job(msgspec.json.decode(wire)) == JOB


def test_job_round_trips_through_stdlib_json():
    assert decode_job(json.loads(json.dumps(job_to_builtins(JOB)))) == JOB


def test_minimal_job_builtins_omit_defaults():
    job = GenerationJob(
        id="j",
        request_id="r",
        principal=Principal(user_id="u", tier="free"),
        provider="echo",
        model="echo",
        messages=[ChatMessage(role="user", content="hi")],
    )

    builtins = job_to_builtins(job)

    assert builtins == {
        "id": "j",
        "request_id": "r",
        "principal": {"user_id": "u", "tier": "free"},
        "provider": "echo",
        "model": "echo",
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert decode_job(builtins) == job


def test_content_parts_carry_type_tags_in_builtins():
    builtins = job_to_builtins(JOB)
    messages = builtins["messages"]

    assert isinstance(messages, list)
    assert messages[1]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "url": "data:image/png;base64,AA"},
    ]


def test_decode_job_tolerates_unknown_fields_from_newer_api():
    payload = job_to_builtins(JOB)
    payload["priority"] = "high"
    payload["principal"] = {"user_id": "u_1", "tier": "pro", "key_id": "key_9", "org_id": "org_1"}
    params = payload["params"]
    assert isinstance(params, dict)
    payload["params"] = {**params, "logit_bias": {"50256": -100}}

    assert decode_job(payload) == JOB


def test_decode_job_rejects_wrong_type():
    payload = job_to_builtins(JOB)
    payload["messages"] = "not a list"

    with pytest.raises(msgspec.ValidationError, match=r"\$\.messages"):
        decode_job(payload)


def test_decode_job_rejects_missing_required_field():
    payload = job_to_builtins(JOB)
    del payload["provider"]

    with pytest.raises(msgspec.ValidationError, match="provider"):
        decode_job(payload)
