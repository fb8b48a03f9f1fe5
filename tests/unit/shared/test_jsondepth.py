import json
import sys

import msgspec
import pytest

from shared.codec import decode_job, decode_job_head, encode_job, job_to_builtins
from shared.jobs import Admission, ChatMessage, GenerationJob, Principal, SamplingParams, StreamView
from shared.jsondepth import flatten_below, nesting_depth


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"1", 0),
        (b'"[[[{"', 0),
        (b"{}", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "\\"]]]\\"[[[", "b": [[]]}', 3),
        (b"[" * 100_000 + b"]" * 100_000, 100_000),
        (b"[[], [[]], []]", 3),
    ],
)
def test_nesting_depth_counts_brackets_outside_strings(text: bytes, depth: int) -> None:
    assert nesting_depth(text) == depth


def test_nesting_depth_matches_a_recursive_count_for_real_json() -> None:
    value = {"tools": [{"function": {"parameters": {"properties": {"x": {"items": [1, {"y": "[{"}]}}}}}]}

    def depth(v: object) -> int:
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        return 0 if children is None else 1 + max(map(depth, children), default=0)

    assert nesting_depth(json.dumps(value).encode()) == depth(value) == 9


def test_flatten_below_nulls_what_is_deeper_and_keeps_the_rest() -> None:
    text = b'{"id":"x","p":{"a":1,"b":[1,[2]]},"m":[{"c":"}"}],"r":"y"}'

    assert flatten_below(text, 2) == b'{"id":"x","p":{"a":1,"b":null},"m":[null],"r":"y"}'
    assert flatten_below(text, 1) == b'{"id":"x","p":null,"m":null,"r":"y"}'
    assert json.loads(flatten_below(b"[" * 50_000 + b"]" * 50_000, 3)) == [[[None]]]


def _job(extra: dict[str, object]) -> GenerationJob:
    return GenerationJob(
        id="job-1",
        request_id="req-1",
        principal=Principal(user_id="u1", tier="pro"),
        provider="echo",
        model="echo",
        messages=[ChatMessage(role="user", content="hi")],
        params=SamplingParams(extra=extra),
        reply_to="conduit:replies:api-1",
        view=StreamView(dialect="openai.chat", id="chatcmpl-1", model="m"),
        admission=Admission(subject="user:u1", reserved=10, lease=True),
    )


def _deep(levels: int) -> dict[str, object]:
    value: object = []
    for _ in range(levels - 1):
        value = [value]
    return {"deep": value}


def test_a_job_travels_as_json_text_and_decodes_from_it_or_from_builtins() -> None:
    job = _job({"x": 1})

    assert isinstance(encode_job(job), str)
    assert decode_job(encode_job(job)) == job
    assert decode_job(job_to_builtins(job)) == job  # as an API before encode_job sent it


def test_a_job_too_deep_to_decode_still_yields_its_head() -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    try:
        job = _job(_deep(3000))
        text = encode_job(job)
    finally:
        sys.setrecursionlimit(limit)

    with pytest.raises(RecursionError):
        decode_job(text)
    head = decode_job_head(text)
    assert head is not None
    assert (head.id, head.reply_to, head.principal, head.view, head.admission, head.messages) == (
        job.id,
        job.reply_to,
        job.principal,
        job.view,
        job.admission,
        [],
    )


def test_a_malformed_job_yields_its_head_from_text_or_builtins() -> None:
    builtins = job_to_builtins(_job({}))
    builtins["messages"] = "not a list"
    with pytest.raises(msgspec.ValidationError):
        decode_job(builtins)

    from_builtins = decode_job_head(builtins)
    from_text = decode_job_head(msgspec.json.encode(builtins).decode())

    assert from_builtins is not None and from_builtins.id == "job-1" and from_builtins.admission is not None
    assert from_text == from_builtins


@pytest.mark.parametrize("payload", ["not json", '{"no_id": 1}', 42, ["a"], '{"id": 5}'])
def test_a_job_without_a_readable_id_has_no_head(payload: object) -> None:
    assert decode_job_head(payload) is None
