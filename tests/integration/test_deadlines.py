"""Streams end with an error event, never a hang: the queue deadline, the idle deadline, heartbeats.

The worker is frozen with SIGSTOP (and always resumed) to play a worker that never takes the job or
dies mid-stream; the harness sets the API's queue and idle deadlines to 5 s (a frozen worker is noticed
sooner, through its heartbeat: ``test_faults_leases.py``).
"""

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.fakes.upstream import Reply, Stall
from tests.harness import auth, sse_events
from tests.stack import Stack


@contextmanager
def frozen(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_no_worker_taking_the_job_ends_the_stream_with_an_error(stack: Stack) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "provider": "echo", "stream": True}
    started = time.monotonic()
    with frozen(stack.worker.pid):
        response = httpx.post(f"{stack.url}/api/ai/chat", json=body, headers=auth(), timeout=30)
    took = time.monotonic() - started
    assert response.status_code == 200  # committed after the 2 s commit timeout, with pings
    frames = sse_events(response.text)
    assert frames[-1] == "[DONE]"
    error = json.loads(frames[-2])["error"]
    assert error["code"] == "no_worker"
    assert "no worker picked up the job within 5 s" in error["detail"]
    assert 4.5 < took < 9


def test_no_worker_taking_a_non_streaming_job_is_a_503(stack: Stack) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    with frozen(stack.worker.pid):
        response = httpx.post(f"{stack.url}/v1/chat/completions", json=body, headers=auth(), timeout=30)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_worker"
    assert "within 5 s" in response.json()["error"]["message"]


def test_a_worker_going_silent_mid_stream_ends_it_with_an_error_event(stack: Stack) -> None:
    stack.fake.push(Reply(tokens=["one", " two", " three"], delay=1.0))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    lines: list[str] = []
    with httpx.stream("POST", f"{stack.url}/v1/chat/completions", json=body, headers=auth(), timeout=30) as response:
        iterator = response.iter_lines()
        for line in iterator:
            lines.append(line)
            if '"content":"one"' in line:
                break
        with frozen(stack.worker.pid):
            frozen_at = time.monotonic()
            lines.extend(iterator)
            ended = time.monotonic() - frozen_at
    frames = sse_events("\n".join(lines))
    assert frames[-1] == "[DONE]"
    error = json.loads(frames[-2])["error"]
    # noticed through its presence heartbeat (the API's 3 s worker timeout), before the 5 s idle deadline
    assert error["code"] == "worker_lost"
    assert "no heartbeat" in error["message"]
    assert 2 < ended < 5


def test_idle_streams_get_comment_pings_that_the_sdk_ignores(stack: Stack) -> None:
    stack.fake.push(Stall(after=1, seconds=4.5))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = httpx.post(f"{stack.url}/v1/chat/completions", json=body, headers=auth(), timeout=30)
    assert ": ping\n" in response.text  # the harness sets a 2 s heartbeat
    assert ": ping\n\n" not in response.text  # a comment-only block would be an empty event to id-keeping decoders
    frames = sse_events(response.text)
    assert frames[-1] == "[DONE]"
    text = "".join(
        json.loads(f)["choices"][0]["delta"].get("content", "") for f in frames[:-1] if json.loads(f)["choices"]
    )
    assert text == "Hello from the fake openai!"
