"""Every key Conduit writes to Redis has a TTL, or is on the short list of keys kept on purpose.

One private stack runs what writes to Redis: API keys made with ``conduit keys create`` (one used, one
revoked, one that expires), streamed and non-streamed jobs, a resume, a named detached job, a job whose
client hung up (its cancel flag), limits (rate and lease keys) and usage. Then the whole test Redis is
scanned.
"""

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from fnmatch import fnmatchcase
from pathlib import Path

import httpx
import pytest

from services.api.auth.keys import KEY_RETENTION
from shared import keys
from tests.fakes.upstream import FakeUpstream, Reply
from tests.harness import ROOT, FrameReader, auth
from tests.stack import Stack, own_stack

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
STREAM = {**CHAT, "stream": True}
LIMITS = {
    "CONDUIT_TIER_PRO_REQUESTS_PER_MINUTE": "1000",
    "CONDUIT_TIER_PRO_TOKENS_PER_MINUTE": "1000000",
    "CONDUIT_TIER_PRO_CONCURRENT_STREAMS": "50",
}
#: kept without a TTL on purpose (README: "What Conduit keeps in Redis"); API key records are checked one by one
PERMANENT = (
    keys.API_KEYS,  # the key index: id -> hash (entries of removed keys are dropped by `conduit keys list`)
    keys.WORKERS,  # the worker registry: name -> last heartbeat (stale names are pruned by every worker)
    # saved chats: kept until their user deletes them (their generation locks have a TTL, and go when the job ends)
    keys.chat("chat_*[0-9a-f]"),
    keys.chat_messages("chat_*"),
    keys.user_chats("*"),
    # the Celery broker's own (kombu): queues, which exist while jobs wait, its exchange bindings and its
    # unacked index, whose entries go with their acks
    "interactive",
    "batch",
    "_kombu.binding*",
    "unacked",
    "unacked_index",
)


def _conduit(stack: Stack, *argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *argv],
        env={**os.environ, "REDIS_URL": stack.redis.url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Stack]:
    logs: Path = tmp_path_factory.mktemp("ttls")
    with own_stack(logs, fake, api_env=LIMITS) as private:
        yield private


def _post(stack: Stack, body: Mapping[str, object], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{stack.url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def _run_jobs(stack: Stack, bearer: dict[str, str]) -> None:
    assert _post(stack, CHAT, bearer).status_code == 200
    assert _post(stack, STREAM, auth()).status_code == 200
    assert httpx.post(f"{stack.url}/api/ai/chat", json=CHAT, headers=auth(), timeout=30).status_code == 200
    # a resumed stream
    stack.fake.push(Reply(tokens=[f" t{i}" for i in range(20)], delay=0.02))
    headers = {**auth(), "x-conduit-on-disconnect": "detach"}
    with httpx.stream("POST", f"{stack.url}/v1/chat/completions", json=STREAM, headers=headers) as response:
        job_id = response.headers["x-conduit-job-id"]
        reader = FrameReader(response)
        last = [reader.next() for _ in range(3)][-1]
    assert last is not None
    resumed = httpx.get(f"{stack.url}/v1/streams/{job_id}", headers={**auth(), "last-event-id": last[0]}, timeout=30)
    assert resumed.text.rstrip().endswith("data: [DONE]")
    # a named, detached job fetched later by its name
    named = {**auth(), "x-conduit-on-disconnect": "detach", "x-conduit-job-name": "report-1"}
    assert _post(stack, CHAT, named).status_code == 200
    assert httpx.get(f"{stack.url}/v1/streams/report-1", headers=auth(), timeout=30).status_code == 200
    # a client that hangs up: its job's cancel flag
    stack.fake.push(Reply(tokens=[f" t{i}" for i in range(20)], delay=0.1))
    with httpx.stream("POST", f"{stack.url}/v1/chat/completions", json=STREAM, headers=auth()) as response:
        assert FrameReader(response).next() is not None
    assert stack.fake.wait_for_disconnect(timeout=5) is not None
    assert httpx.get(f"{stack.url}/v1/usage", headers=auth(), timeout=30).status_code == 200
    # a saved chat, generated on twice (once streamed)
    history = {"chat_history": [{"role": "user", "content": "hello"}], "model": "echo"}
    created = httpx.post(f"{stack.url}/api/v1/chat/generate", json=history, headers=auth(), timeout=30)
    assert created.status_code == 201, created.text
    again = {**history, "chatId": created.json()["chatId"], "stream": True}
    assert httpx.post(f"{stack.url}/api/v1/chat/generate", json=again, headers=auth(), timeout=30).status_code == 200


@pytest.mark.timeout(90)
def test_every_key_conduit_writes_has_a_ttl_or_is_kept_on_purpose(stack: Stack) -> None:
    active = _conduit(stack, "keys", "create", "--user", "alice", "--tier", "pro")
    revoked = _conduit(stack, "keys", "create", "--user", "bob", "--tier", "pro", "--name", "leaked")
    expiring = _conduit(stack, "keys", "create", "--user", "carol", "--tier", "pro", "--expires", "2s")
    for secret in (active, revoked, expiring):
        assert _post(stack, CHAT, {"authorization": f"Bearer {secret}"}).status_code == 200
    _run_jobs(stack, {"authorization": f"Bearer {active}"})
    bob = next(line for line in _conduit(stack, "keys", "list", "--user", "bob").splitlines()[1:])
    _conduit(stack, "keys", "revoke", bob.split()[0])
    time.sleep(2.2)  # the 2 s key has expired
    assert _post(stack, CHAT, {"authorization": f"Bearer {expiring}"}).status_code == 401
    time.sleep(1.0)  # the worker writes usage every 0.5 s; the jobs above have all ended

    client = stack.redis.client()
    names = sorted(name.decode() for name in client.scan_iter(count=1000))
    kept_active = {keys.api_key(_digest(active)), keys.api_key_used(_digest(active))}
    without_ttl = [
        name
        for name in names
        if client.ttl(name) == -1
        and name not in kept_active
        and not any(fnmatchcase(name, pattern) for pattern in PERMANENT)
    ]
    assert without_ttl == [], f"keys without a TTL: {without_ttl}"
    assert any(name.startswith(f"{keys.PREFIX}usage:") for name in names)  # the scan did see the jobs' keys
    assert any(name.endswith(":log") for name in names)
    assert any(name.startswith(f"{keys.PREFIX}rl:") for name in names)
    assert any(name.startswith(f"{keys.PREFIX}jobname:") for name in names)
    assert any(name.endswith(":cancel") for name in names)
    assert any(name.startswith(f"{keys.PREFIX}chats:") for name in names)
    assert not any(name.endswith(":lock") for name in names)  # the generations let go of their chat

    # a revoked key stays listed (for audit) until its TTL removes it; so does an expired one
    for secret in (revoked, expiring):
        for name in (keys.api_key(_digest(secret)), keys.api_key_used(_digest(secret))):
            assert 0 < client.ttl(name) <= KEY_RETENTION, name
    listed = _conduit(stack, "keys", "list")
    assert "revoked" in listed and "expired" in listed and "active" in listed
    # once Redis has dropped them, listing drops their index entries too
    for secret in (revoked, expiring):
        client.delete(keys.api_key(_digest(secret)), keys.api_key_used(_digest(secret)))
    assert "bob" not in _conduit(stack, "keys", "list")
    assert client.hlen(keys.API_KEYS) == 1
