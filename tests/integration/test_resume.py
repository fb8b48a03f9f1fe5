"""Every frame carries an id; a client that lost its stream resumes it after Last-Event-ID on any replica,
and gets exactly what it missed, once (the F-14 / F-15 rows of the reliability matrix)."""

import json
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared import keys
from tests.fakes.upstream import FakeUpstream, Reply
from tests.harness import ApiProcess, FrameReader, auth, sse_frames
from tests.stack import Stack, two_api_stack

TOKENS = [f" w{i}" for i in range(40)]
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "count"}], "stream": True}
DETACH = {"x-conduit-on-disconnect": "detach"}


def _resume(url: str, job_id: str, last: str | None, user: str = "tester", timeout: float = 30) -> httpx.Response:
    headers = {**auth(user=user), **({"last-event-id": last} if last else {})}
    return httpx.get(f"{url}/v1/streams/{job_id}", headers=headers, timeout=timeout)


def _text(frames: list[tuple[str, str]]) -> str:
    chunks = [json.loads(data) for _, data in frames if data != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def test_a_dropped_stream_resumes_with_exactly_the_frames_it_missed(stack: Stack) -> None:
    stack.fake.push(Reply(tokens=TOKENS, delay=0.02))
    with httpx.stream("POST", f"{stack.url}/v1/chat/completions", json=CHAT, headers={**auth(), **DETACH}) as response:
        job_id = response.headers["x-conduit-job-id"]
        reader = FrameReader(response)
        for _ in range(6):
            assert reader.next() is not None
    first = reader.frames
    assert all(ident for ident, _ in first)
    resumed = sse_frames(_resume(stack.url, job_id, first[-1][0]).text)
    whole = sse_frames(_resume(stack.url, job_id, None).text)  # the job is done: the whole stream again
    assert first + resumed == whole
    assert whole[-1] == (whole[-1][0], "[DONE]")
    assert _text(whole) == "".join(TOKENS)
    assert len({ident for ident, _ in whole}) == len(whole)


def test_many_reconnects_lose_and_repeat_nothing(stack: Stack) -> None:
    stack.fake.push(Reply(tokens=TOKENS, delay=0.02))
    rng = random.Random(7)
    got: list[tuple[str, str]] = []
    reconnects = 0
    with httpx.stream("POST", f"{stack.url}/v1/chat/completions", json=CHAT, headers={**auth(), **DETACH}) as response:
        job_id = response.headers["x-conduit-job-id"]
        reader = FrameReader(response)
        for _ in range(rng.randint(1, 4)):
            reader.next()
        got += reader.frames
    while not got or got[-1][1] != "[DONE]":
        reconnects += 1
        assert reconnects < 60
        headers = {**auth(), "last-event-id": got[-1][0]}
        with httpx.stream("GET", f"{stack.url}/v1/streams/{job_id}", headers=headers, timeout=30) as response:
            assert response.status_code == 200
            reader = FrameReader(response)
            for _ in range(rng.randint(1, 4)):
                if reader.next() is None:
                    break
            got += reader.frames
    whole = sse_frames(_resume(stack.url, job_id, None).text)
    assert got == whole  # no gap, no duplicate, in order
    assert reconnects >= 5
    print(f"\nresumed {reconnects} times: {len(whole)} frames, 0 gaps, 0 duplicates")


def test_a_stream_of_another_user_or_of_no_job_is_a_404_and_a_bad_id_a_400(stack: Stack) -> None:
    stack.fake.push(Reply(tokens=["a", "b"]))
    response = httpx.post(f"{stack.url}/v1/chat/completions", json=CHAT, headers=auth(), timeout=30)
    job_id = response.headers["x-conduit-job-id"]
    assert _resume(stack.url, job_id, None).status_code == 200
    other = _resume(stack.url, job_id, None, user="mallory")
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"
    assert _resume(stack.url, "0" * 32, None).status_code == 404
    bad = _resume(stack.url, job_id, "3;drop")
    assert bad.status_code == 400
    assert "Last-Event-ID" in bad.json()["error"]["message"]
    assert httpx.get(f"{stack.url}/v1/streams/{job_id}", timeout=10).status_code == 401


def test_a_detached_request_without_streaming_is_fetched_later_by_its_name(stack: Stack) -> None:
    stack.fake.push(Reply(tokens=TOKENS[:10], delay=0.1))  # a second in all
    body = {**CHAT, "stream": False}
    headers = {**auth(), **DETACH, "x-conduit-job-name": "nightly-report-7"}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up long before the answer
        httpx.post(f"{stack.url}/v1/chat/completions", json=body, headers=headers, timeout=0.3)
    fetched = _resume(stack.url, "nightly-report-7", None)
    assert fetched.status_code == 200
    answer = fetched.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "".join(TOKENS[:10])
    assert answer["id"] == f"chatcmpl-{fetched.headers['x-conduit-job-id']}"
    name_ttl = stack.redis.client().ttl(keys.job_name("tester", "nightly-report-7"))
    assert name_ttl > 600  # held as long as the job's record once a worker ran it (not the 65 s before)
    again = httpx.post(f"{stack.url}/v1/chat/completions", json=body, headers=headers, timeout=10)
    assert again.status_code == 409
    assert "nightly-report-7" in again.json()["error"]["message"]
    assert _resume(stack.url, "nightly-report-7", None, user="mallory").status_code == 404


def test_without_detach_a_client_that_hangs_up_cancels_its_job(stack: Stack) -> None:
    stack.fake.push(Reply(tokens=TOKENS[:10], delay=0.1))
    body = {**CHAT, "stream": False}
    headers = {**auth(), "x-conduit-job-name": "impatient-1"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{stack.url}/v1/chat/completions", json=body, headers=headers, timeout=0.3)
    assert stack.fake.wait_for_disconnect(timeout=5) is not None  # the upstream call was closed
    fetched = _resume(stack.url, "impatient-1", None)
    assert fetched.status_code == 499
    assert fetched.json()["error"]["code"] == "cancelled"


def test_an_invalid_disconnect_policy_is_a_400(stack: Stack) -> None:
    headers = {**auth(), "x-conduit-on-disconnect": "linger"}
    response = httpx.post(f"{stack.url}/v1/chat/completions", json=CHAT, headers=headers, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-conduit-on-disconnect"


@pytest.fixture(scope="module")
def two_apis(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[tuple[Stack, ApiProcess]]:
    logs: Path = tmp_path_factory.mktemp("two-apis")
    with two_api_stack(logs, fake, worker_env={"CONDUIT_ORPHAN_GRACE": "1"}) as pair:
        yield pair


def test_a_stream_whose_api_process_was_killed_finishes_on_another_replica(
    two_apis: tuple[Stack, ApiProcess],
) -> None:
    stack, second = two_apis
    stack.fake.push(Reply(tokens=TOKENS, delay=0.05))  # 2 s in all: longer than the worker's orphan grace
    with httpx.stream("POST", f"{stack.url}/v1/chat/completions", json=CHAT, headers=auth(), timeout=30) as response:
        job_id = response.headers["x-conduit-job-id"]
        reader = FrameReader(response)
        for _ in range(4):
            reader.next()
        stack.api.kill()  # SIGKILL: no cancel goes out; the worker's reply channel goes silent
        with pytest.raises(httpx.HTTPError):
            reader.rest()
    first = reader.frames
    resumed = sse_frames(_resume(second.base_url, job_id, first[-1][0]).text)
    assert resumed[-1][1] == "[DONE]"
    assert _text(first + resumed) == "".join(TOKENS)  # the worker did not give up on the job
    assert not [data for _, data in resumed if '"error"' in data]
