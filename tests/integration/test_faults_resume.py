"""Streams that end right, resumes included (issue 12, items 4 to 6).

- A frame the gateway makes (a shutdown's or a lost Redis's error) takes no id of the job's: a client that
  resumes with the last id it received, as EventSource and openai-python do, misses no event.
- Resumes right after a Redis restart each end with exactly one terminal frame: no empty 200.
- The resume window after an API replica dies is a client's reconnect away (``CONDUIT_ORPHAN_GRACE``): the
  default outlasts an 8 s reconnect; near a short window's edge, before it gets the rest and after it a
  clear error, never a hang or an empty 200.
"""

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.fakes.upstream import FakeUpstream, Reply
from tests.harness import ApiProcess, FrameReader, RedisServer, auth, sse_frames
from tests.stack import Stack, two_api_stack

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "count"}], "stream": True}
API_ENV = {"CONDUIT_SHUTDOWN_GRACE": "1", "CONDUIT_HEARTBEAT_INTERVAL": "1"}


def _answers(api: ApiProcess) -> bool:
    """Whether ``api`` takes connections (one a test stopped with SIGTERM may still be running its shutdown)."""
    try:
        return httpx.get(f"{api.base_url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Replicas:
    """Two API replicas on one Redis and worker: ``victim()`` is the one a test kills (started again as
    needed), ``second`` the one clients resume on."""

    def __init__(self, stack: Stack, second: ApiProcess, logs: Path) -> None:
        self.stack = stack
        self.second = second
        self._logs = logs
        self._spares: list[ApiProcess] = []

    def victim(self) -> ApiProcess:
        api = self._spares[-1] if self._spares else self.stack.api
        if api.proc is not None and api.proc.poll() is None and _answers(api):
            return api
        fresh = ApiProcess(self._logs, self.stack.redis.url, API_ENV)
        self._spares.append(fresh)
        fresh.wait_ready()
        return fresh

    def stop(self) -> None:
        for api in self._spares:
            api.stop()


def _replicas(logs: Path, fake: FakeUpstream, worker_env: dict[str, str] | None = None) -> Iterator[Replicas]:
    with two_api_stack(logs, fake, worker_env=worker_env, api_env=API_ENV) as (stack, second):
        replicas = Replicas(stack, second, logs)
        try:
            yield replicas
        finally:
            replicas.stop()
            stack.redis.stop()  # a test may have replaced it with a restarted one


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Replicas]:
    """The default resume window."""
    yield from _replicas(tmp_path_factory.mktemp("resume-faults"), fake)


def _tokens(count: int) -> list[str]:
    return [f" t{i}" for i in range(count)]


def _text(frames: list[tuple[str, str]]) -> str:
    chunks = [json.loads(data) for _, data in frames if data.startswith('{"id"')]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def _errors(frames: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [json.loads(data)["error"] for _, data in frames if data.startswith('{"error"')]


def _last_id(frames: list[tuple[str, str]]) -> str:
    """The id a client resumes with: the last ``id:`` it received (a frame without one keeps it)."""
    return [ident for ident, _ in frames if ident][-1]


def _resume(url: str, job_id: str, last: str, timeout: float = 30) -> httpx.Response:
    headers = {**auth(), "last-event-id": last}
    return httpx.get(f"{url}/v1/streams/{job_id}", headers=headers, timeout=timeout)


def _one_terminal(frames: list[tuple[str, str]]) -> bool:
    """Ends with ``[DONE]``, the only one, after at most one error frame (right before it)."""
    datas = [data for _, data in frames]
    errors = [i for i, data in enumerate(datas) if data.startswith('{"error"')]
    return bool(datas) and datas[-1] == "[DONE]" and datas.count("[DONE]") == 1 and errors in ([], [len(datas) - 2])


def _start(client: httpx.Client, api: ApiProcess, frames: int) -> tuple[httpx.Response, str, FrameReader]:
    """A streamed job on ``api`` (its response still open), ``frames`` of it read."""
    request = client.build_request("POST", f"{api.base_url}/v1/chat/completions", json=CHAT, headers=auth())
    response = client.send(request, stream=True)
    reader = FrameReader(response)
    for _ in range(frames):
        assert reader.next() is not None
    return response, response.headers["x-conduit-job-id"], reader


def test_resuming_from_the_last_id_received_after_a_gateway_error_misses_no_event(replicas: Replicas) -> None:
    tokens = _tokens(60)
    replicas.stack.fake.push(Reply(tokens=tokens, delay=0.05))  # 3 s
    victim = replicas.victim()
    with httpx.Client(timeout=30) as client:
        response, job_id, reader = _start(client, victim, 5)
        assert victim.proc is not None
        victim.proc.terminate()  # SIGTERM: after its shutdown grace (1 s) its streams end with a retryable error
        frames = reader.rest()
        response.close()
    assert _errors(frames) and "shutting down" in _errors(frames)[0]["message"], frames[-3:]
    assert _one_terminal(frames)
    resumed = sse_frames(_resume(replicas.second.base_url, job_id, _last_id(frames)).text)
    assert _one_terminal(resumed) and not _errors(resumed)
    kept = [frame for frame in frames if not frame[1].startswith('{"error"') and frame[1] != "[DONE]"]
    assert _text(kept + resumed) == "".join(tokens)  # the event after the last id was not skipped
    ids = [ident for ident, _ in kept + resumed if ident]
    assert len(ids) == len(set(ids))


def test_a_resume_after_eight_seconds_with_the_default_window_gets_the_whole_rest(replicas: Replicas) -> None:
    tokens = _tokens(100)
    replicas.stack.fake.push(Reply(tokens=tokens, delay=0.1))  # 10 s
    victim = replicas.victim()
    with httpx.Client(timeout=30) as client:
        response, job_id, reader = _start(client, victim, 4)
        victim.kill()  # SIGKILL: no cancel, no error frame; the worker's reply channel goes silent
        killed = time.monotonic()
        response.close()
    time.sleep(max(0.0, 8.0 - (time.monotonic() - killed)))  # a phone between cells
    resumed = sse_frames(_resume(replicas.second.base_url, job_id, _last_id(reader.frames)).text)
    assert _one_terminal(resumed)
    assert not _errors(resumed), _errors(resumed)
    assert _text(reader.frames + resumed) == "".join(tokens)


def test_resumes_right_after_a_redis_restart_each_end_with_exactly_one_terminal_frame(replicas: Replicas) -> None:
    stack, url = replicas.stack, replicas.second.base_url
    tokens = _tokens(20)
    stack.fake.push(Reply(tokens=tokens, delay=0.03))  # paced: an event per token
    response = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth(), timeout=30)
    job_id = response.headers["x-conduit-job-id"]
    whole = sse_frames(response.text)
    assert _text(whole) == "".join(tokens)
    after = whole[5][0]
    with ThreadPoolExecutor(8) as pool:  # resumes at once: the replica's pools fill with connections
        warm = list(pool.map(lambda _: _resume(url, job_id, after), range(8)))
    assert all(sse_frames(one.text) == whole[6:] for one in warm)
    stack.redis.client().save()  # the restarted server loads it: the job's record and log survive
    stack.redis.kill()
    stack.redis = RedisServer(stack.redis.log.parent, port=stack.redis.port)
    resumed = [_resume(url, job_id, after) for _ in range(20)]  # at once: the pools still hold the old connections
    ends = [sse_frames(one.text) for one in resumed]
    seen = [(one.status_code, len(frames), bool(_errors(frames))) for one, frames in zip(resumed, ends, strict=True)]
    assert all(_one_terminal(frames) for frames in ends), f"(status, frames, error?) of each: {seen}"
    assert all(frames == whole[6:] for frames in ends), seen  # not even an error: the rest, as before the restart


@pytest.fixture(scope="module")
def short_window(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Replicas]:
    yield from _replicas(tmp_path_factory.mktemp("resume-window"), fake, {"CONDUIT_ORPHAN_GRACE": "4"})


def test_a_resume_just_inside_the_window_gets_the_rest_and_just_outside_a_clear_error(
    short_window: Replicas,
) -> None:
    tokens = _tokens(60)
    for _ in range(2):
        short_window.stack.fake.push(Reply(tokens=tokens, delay=0.1))  # 6 s each
    victim = short_window.victim()
    with httpx.Client(timeout=30) as client:
        inside, outside = _start(client, victim, 3), _start(client, victim, 3)
        victim.kill()
        killed = time.monotonic()
        for response, _, _ in (inside, outside):
            response.close()
    url = short_window.second.base_url
    time.sleep(max(0.0, 3.0 - (time.monotonic() - killed)))
    _, job_id, reader = inside
    resumed = sse_frames(_resume(url, job_id, _last_id(reader.frames)).text)
    assert _one_terminal(resumed) and not _errors(resumed), resumed[-2:]
    assert _text(reader.frames + resumed) == "".join(tokens)
    time.sleep(max(0.0, 6.0 - (time.monotonic() - killed)))
    _, job_id, reader = outside
    asked = time.monotonic()
    late = _resume(url, job_id, _last_id(reader.frames), timeout=10)
    took = time.monotonic() - asked
    frames = sse_frames(late.text)
    assert late.status_code == 200 and _one_terminal(frames), frames
    assert [error["code"] for error in _errors(frames)] == ["cancelled"], frames[-2:]
    assert took < 2.0
    print(f"\nresume window 4 s: resumed at 3 s -> the whole rest; at 6 s -> 'cancelled' in {took:.2f} s")
