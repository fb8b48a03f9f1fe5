"""The chat API when things go wrong: a second generation on a busy chat, clients that hang up, an API replica
that dies, a Redis restart, a dropped stream resumed, and hostile input. Replies are saved by the worker, so
they land in the chat whatever happened to the client or its replica."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.upstream import FakeUpstream, Reply, Stall
from tests.harness import ApiProcess, FrameReader, RedisServer, auth, sse_frames
from tests.integration.test_chat_api import (
    CHAT,
    GENERATE,
    STREAM,
    api_error,
    call,
    chat_events,
    contents,
    fetch,
    generate,
    history,
    new_user,
    turns,
)
from tests.stack import Stack, own_stack

TOKENS = [f" w{i}" for i in range(20)]
DETACH = {"x-conduit-on-disconnect": "detach"}


def _read_until(reader: FrameReader, pieces: int) -> None:
    """Read frames until ``pieces`` final_response frames came."""
    while sum('"type":"final_response"' in data for _, data in reader.frames) < pieces:
        assert reader.next() is not None, f"the stream ended early: {reader.frames}"


def _leave_early(url: str, user: str, body: dict[str, Any], pieces: int, headers: dict[str, str] | None = None) -> str:
    """Start a chat stream, hang up after ``pieces`` pieces of the answer; the chat's id."""
    headers = {**auth(user=user), **(headers or {})}
    with httpx.stream("POST", f"{url}{STREAM}", json=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        _read_until(FrameReader(response), pieces)
    return body.get("chatId") or _chat_of(url, user)


def _chat_of(url: str, user: str) -> str:
    chats = httpx.get(f"{url}{CHAT}/history", headers=auth(user=user), timeout=10).json()["chats"]
    assert len(chats) == 1
    chat_id: str = chats[0]["id"]
    return chat_id


def _wait_for_reply(url: str, user: str, chat_id: str, within: float = 10) -> Any:
    """Fetch the chat until its last message is the assistant's; the chat (bounded: fails after ``within`` s)."""
    deadline = time.monotonic() + within
    while True:
        response = httpx.get(f"{url}{CHAT}/fetch/{chat_id}", headers=auth(user=user), timeout=5)
        if response.status_code == 200 and (chat := response.json())["messages"][-1]["role"] == "assistant":
            return chat
        assert time.monotonic() < deadline, f"no reply within {within} s: {response.text}"
        time.sleep(0.1)


def test_a_second_generation_on_a_busy_chat_is_a_409_and_nothing_interleaves(stack: Stack) -> None:
    user = new_user()
    chat_id = generate(stack, user, {"chat_history": history("one"), "model": "echo"})["chatId"]
    stack.fake.push(Stall(after=1, seconds=2.5), provider="openai")
    body = {"chat_history": history("two"), "model": "gpt-4o-mini", "chatId": chat_id}
    with httpx.stream("POST", f"{stack.url}{STREAM}", json=body, headers=auth(user=user), timeout=30) as response:
        reader = FrameReader(response)
        _read_until(reader, 1)  # the first reply is running, and stalls
        ask = {"chat_history": history("three"), "model": "echo"}
        busy = [
            call(stack, "POST", GENERATE, user, json=ask, params={"chatId": chat_id}),
            call(stack, "POST", STREAM, user, json={**ask, "chatId": chat_id}),
            call(stack, "POST", GENERATE, user, json={**ask, "stream": True, "chatId": chat_id}),
        ]
        for refused in busy:
            assert api_error(refused, 409)["code"] == "conflict"
        reader.rest()
    assert reader.frames[-1][1] == "[DONE]" and json.loads(reader.frames[-2][1])["type"] == "metadata"
    generate(stack, user, {"chat_history": history("four"), "model": "echo"}, chatId=chat_id)
    answer = "Hello from the fake openai!"
    assert contents(fetch(stack, user, chat_id)) == turns("one", "one", "two", answer, "four", "four")


def test_a_detached_reply_is_saved_whole_after_its_client_left(stack: Stack) -> None:
    user = new_user()
    stack.fake.push(Reply(tokens=TOKENS, delay=0.05), provider="openai")  # 1 s in all
    body = {"chat_history": history("count"), "model": "gpt-4o-mini"}
    chat_id = _leave_early(stack.url, user, body, 1, DETACH)
    chat = _wait_for_reply(stack.url, user, chat_id)
    assert contents(chat) == [("user", "count"), ("assistant", "".join(TOKENS))]
    assert chat["messages"][1]["status"] == "complete" and "error" not in chat["messages"][1]
    assert stack.fake.requests[-1].completed and stack.fake.requests[-1].disconnected is None


def test_a_cancelled_reply_keeps_its_partial_answer_cut_short(stack: Stack) -> None:
    user, slow = new_user(), [f" c{i}" for i in range(50)]
    stack.fake.push(Reply(tokens=slow, delay=0.1), provider="openai")  # 5 s in all
    chat_id = _leave_early(stack.url, user, {"chat_history": history("go"), "model": "gpt-4o-mini"}, 2)
    assert stack.fake.wait_for_disconnect(timeout=5) is not None, "the upstream call was not closed"
    reply = _wait_for_reply(stack.url, user, chat_id)["messages"][1]
    assert (reply["status"], reply["error"]) == ("cut_short", "cancelled")
    assert 2 <= len(reply["content"].split()) < len(slow) and "".join(slow).startswith(reply["content"])
    generate(stack, user, {"chat_history": history("again"), "model": "echo"}, chatId=chat_id)  # the chat is free
    assert contents(fetch(stack, user, chat_id))[2:] == turns("again", "again")


def test_a_resumed_chat_stream_gets_exactly_the_missing_frames_byte_for_byte(stack: Stack) -> None:
    user = new_user()
    stack.fake.push(Reply(tokens=TOKENS, delay=0.02), provider="openai")
    body = {"chat_history": history("resume me"), "model": "gpt-4o-mini"}
    headers = {**auth(user=user), **DETACH}
    with httpx.stream("POST", f"{stack.url}{STREAM}", json=body, headers=headers, timeout=30) as response:
        job_id = response.headers["x-conduit-job-id"]
        reader = FrameReader(response)
        _read_until(reader, 3)
    first, last = reader.frames, reader.frames[-1][0]

    def resume(last_id: str | None) -> str:
        extra = {"last-event-id": last_id} if last_id else {}
        response = httpx.get(f"{stack.url}/v1/streams/{job_id}", headers={**auth(user=user), **extra}, timeout=30)
        assert response.status_code == 200, response.text
        return "".join(line + "\n" for line in response.text.split("\n")[:-1] if not line.startswith(":"))  # no pings

    resumed, whole = resume(last), resume(None)  # the job is done by the second: the whole stream again
    blocks = whole.split("\n\n")
    cut = next(i for i, block in enumerate(blocks) if block.startswith(f"id: {last}\n")) + 1
    assert resumed == "\n\n".join(blocks[cut:])
    assert first + sse_frames(resumed) == sse_frames(whole)
    assert "".join(e["content"] for _, e in chat_events(whole) if e["type"] == "final_response") == "".join(TOKENS)
    assert len({ident for ident, _ in sse_frames(whole)}) == len(sse_frames(whole))


class Replicas:
    """One private stack for the tests that break things: Redis with an AOF, one worker and two API replicas (the
    first may be killed: the tests after it use the second); Redis servers restarted by a test, stopped at the end."""

    def __init__(self, stack: Stack, second: ApiProcess, logs: Path) -> None:
        self.stack, self.logs = stack, logs
        self.restarted: list[RedisServer] = []
        self.second = Stack(stack.redis, stack.fake, stack.worker, second)  # the same stack, through replica 2


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Replicas]:
    logs = tmp_path_factory.mktemp("chat-faults")
    worker_env = {"CONDUIT_ORPHAN_GRACE": "1"}  # a detached job runs on past it with nobody listening
    with own_stack(logs, fake, worker_env=worker_env, aof=True) as stack:
        second = ApiProcess(logs, stack.redis.url)
        pair = Replicas(stack, second, logs)
        try:
            second.wait_ready()
            yield pair
        finally:
            second.stop()
            for server in pair.restarted:
                server.stop()


def test_a_reply_is_saved_when_the_api_replica_dies_and_read_on_the_other(replicas: Replicas) -> None:
    stack, second = replicas.stack, replicas.second
    user, long = new_user(), [f" r{i}" for i in range(40)]
    stack.fake.push(Reply(tokens=long, delay=0.05), provider="openai")  # 2 s in all
    body = {"chat_history": history("survive"), "model": "gpt-4o-mini"}
    headers = {**auth(user=user), **DETACH}
    with httpx.stream("POST", f"{stack.url}{STREAM}", json=body, headers=headers, timeout=30) as response:
        reader = FrameReader(response)
        _read_until(reader, 2)
        stack.api.kill()  # SIGKILL mid-stream
        with pytest.raises(httpx.HTTPError):
            reader.rest()
    chat = _wait_for_reply(second.url, user, _chat_of(second.url, user))
    assert contents(chat) == [("user", "survive"), ("assistant", "".join(long))]
    assert chat["messages"][1]["status"] == "complete"


def _snapshot(url: str, user: str) -> list[dict[str, Any]]:
    """Every chat of ``user``, with its messages, as history and fetch give them."""
    listed = httpx.get(f"{url}{CHAT}/history", params={"limit": 100}, headers=auth(user=user), timeout=10)
    assert listed.status_code == 200, listed.text
    chats = listed.json()["chats"]
    fetched = [httpx.get(f"{url}{CHAT}/fetch/{c['id']}", headers=auth(user=user), timeout=10) for c in chats]
    return [{**c, "full": f.json()} for c, f in zip(chats, fetched, strict=True)]


def _restart(replicas: Replicas, kill: bool) -> None:
    """Stop Redis (SIGTERM, or SIGKILL once the AOF's fsync-every-second window passed), start it again on its
    port with its data directory, and wait (bounded) until the API answers from it."""
    stack = replicas.second
    if kill:
        time.sleep(1.5)
        stack.redis.kill()
    else:
        stack.redis.stop()
    stack.redis = RedisServer(replicas.logs, port=stack.redis.port, aof=True)
    replicas.restarted.append(stack.redis)
    deadline = time.monotonic() + 15
    while httpx.get(f"{stack.url}{CHAT}/history", headers=auth(), timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the API did not reconnect to the restarted Redis"
        time.sleep(0.2)


def test_chats_survive_a_redis_restart(replicas: Replicas) -> None:
    user, stack = new_user(), replicas.second
    chat_id = generate(stack, user, {"chat_history": history("keep me"), "model": "echo"})["chatId"]
    generate(stack, user, {"chat_history": history("and me"), "model": "echo"}, chatId=chat_id)
    assert call(stack, "POST", f"{CHAT}/new", user, json={"title": "notes", "messages": history("a", "b")}).is_success
    assert call(stack, "PUT", f"{CHAT}/{chat_id}/pin", user).json()["pinned"] is True
    before = _snapshot(stack.url, user)
    _restart(replicas, kill=False)  # SIGTERM: Redis writes its AOF out
    assert _snapshot(stack.url, user) == before
    assert call(stack, "PATCH", f"{CHAT}/{chat_id}", user, json={"title": "renamed"}).is_success
    assert call(stack, "POST", f"{CHAT}/new", user, json={"messages": history("after the restart")}).is_success
    before = _snapshot(stack.url, user)
    _restart(replicas, kill=True)
    assert _snapshot(stack.url, user) == before
    assert [c["title"] for c in before] == ["renamed", "after the restart", "notes"]
    assert contents(before[0]["full"]) == turns("keep me", "keep me", "and me", "and me")


LONG_ID = "c" * 1000
ASK: dict[str, Any] = {"chat_history": history("hi"), "model": "echo"}
HUGE = [{"role": "user", "content": "x" * 200_001}]  # over the default CONDUIT_CHAT_MAX_MESSAGE_BYTES
#: (method, path, httpx arguments, status, param or None when not checked)
HOSTILE: list[tuple[str, str, dict[str, Any], int, str | None]] = [
    ("POST", GENERATE, {"json": {"chat_history": "hi"}}, 400, "chat_history"),
    ("POST", GENERATE, {"json": {"chat_history": [{"role": "user", "content": 5}]}}, 400, "chat_history.[0].content"),
    ("POST", GENERATE, {"json": {"chat_history": [{"role": "robot", "content": "x"}]}}, 400, "chat_history.[0].role"),
    ("POST", GENERATE, {"json": {"chat_history": []}}, 400, "chat_history"),
    ("POST", GENERATE, {"json": {**ASK, "persona": 7}}, 400, "persona"),
    ("POST", GENERATE, {"json": {**ASK, "persona": "nobody"}}, 400, "persona"),
    ("POST", GENERATE, {"json": {**ASK, "stream": "yes"}}, 400, "stream"),
    ("POST", GENERATE, {"json": {**ASK, "tools": {"research": True}}}, 400, "tools.research"),
    ("POST", GENERATE, {"json": {**ASK, "tools": {"browse": True}}}, 400, "tools"),
    ("POST", GENERATE, {"json": {**ASK, "model": "no-such-model"}}, 404, "model"),
    ("POST", GENERATE, {"json": [ASK]}, 400, None),
    ("POST", GENERATE, {"content": b"{not json"}, 400, None),
    ("POST", GENERATE, {"content": b""}, 400, None),
    ("POST", GENERATE, {"json": {"chat_history": HUGE}}, 413, "chat_history.[0].content"),
    ("POST", GENERATE, {"json": ASK, "params": {"chatId": LONG_ID}}, 400, "chatId"),
    ("POST", STREAM, {"json": {**ASK, "chatId": LONG_ID}}, 400, "chatId"),
    ("POST", STREAM, {"json": {"chat_history": HUGE}}, 413, "chat_history.[0].content"),
    ("POST", CHAT, {"json": {"chat_history": HUGE}}, 413, "chat_history.[0].content"),
    ("POST", CHAT, {"content": b"\xff\xfe"}, 400, None),
    ("POST", f"{CHAT}/new", {"json": {"messages": HUGE}}, 413, "messages.[0].content"),
    ("POST", f"{CHAT}/new", {"json": {"messages": "x"}}, 400, "messages"),
    ("POST", f"{CHAT}/new", {"json": {"title": "t" * 201}}, 400, "title"),
    ("GET", f"{CHAT}/fetch/{LONG_ID}", {}, 400, "chat_id"),
    ("PUT", f"{CHAT}/{LONG_ID}/pin", {}, 400, "chat_id"),
    ("PATCH", f"{CHAT}/{LONG_ID}", {"json": {"title": "x"}}, 400, "chat_id"),
    ("DELETE", f"{CHAT}/{LONG_ID}", {}, 400, "chat_id"),
    ("POST", f"{CHAT}/fork", {"json": {"chatId": LONG_ID, "messageId": "m"}}, 400, "chatId"),
    ("POST", f"{CHAT}/fork", {"json": {"chatId": "x"}}, 400, None),
    ("POST", f"{CHAT}/fork", {"content": b"nope"}, 400, None),
    ("GET", f"{CHAT}/history", {"params": {"after": "no-such-chat"}}, 400, "after"),
    ("GET", f"{CHAT}/history", {"params": {"after": LONG_ID}}, 400, "after"),
    ("GET", f"{CHAT}/history", {"params": {"limit": "abc"}}, 400, "limit"),
    ("GET", f"{CHAT}/history", {"params": {"limit": 0}}, 400, "limit"),
    ("GET", f"{CHAT}/history", {"params": {"limit": 101}}, 400, "limit"),
]


def test_hostile_input_is_a_clear_4xx_in_the_api_v1_shape(stack: Stack) -> None:
    user = new_user()
    made = call(stack, "POST", f"{CHAT}/new", user, json={"messages": history("mine")})
    chat_id = made.json()["id"]
    on_a_chat: list[tuple[str, str, dict[str, Any], int, str | None]] = [
        ("PUT", f"{CHAT}/{chat_id}/pin", {"json": {"pinned": "yes"}}, 400, "pinned"),
        ("PUT", f"{CHAT}/{chat_id}/pin", {"content": b"{pinned"}, 400, None),
        ("PATCH", f"{CHAT}/{chat_id}", {"json": {"title": ""}}, 400, "title"),
        ("PATCH", f"{CHAT}/{chat_id}", {"json": {"title": 5}}, 400, "title"),
        ("PATCH", f"{CHAT}/{chat_id}", {"content": b"rename"}, 400, None),
        ("POST", f"{CHAT}/fork", {"json": {"chatId": chat_id, "messageId": "msg_nope"}}, 404, "messageId"),
        ("POST", GENERATE, {"json": {**ASK, "chatId": chat_id, "chat_history": HUGE}}, 413, None),
    ]
    failures = []
    for method, path, kwargs, status, param in HOSTILE + on_a_chat:
        response = call(stack, method, path, user, **kwargs)
        try:
            error = api_error(response, status)
            assert param is None or error["param"] == param, error
        except (AssertionError, ValueError, KeyError) as exc:
            failures.append(f"{method} {path[:60]} {kwargs!r:.80}: {response.status_code} {response.text[:200]} {exc}")
    assert not failures, "\n".join(failures)
    unknown = call(stack, "POST", GENERATE, user, json={**ASK, "persona": "nobody"}).json()["error"]
    assert "maya" in unknown["message"]
    assert contents(fetch(stack, user, chat_id)) == [("user", "mine")]
    assert [c["id"] for c in call(stack, "GET", f"{CHAT}/history", user).json()["chats"]] == [chat_id]
    assert not stack.fake.requests
