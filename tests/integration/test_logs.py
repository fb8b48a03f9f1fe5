"""``CONDUIT_LOG_FORMAT=json``: every line the API and a worker write is one JSON object; a request's access line
and its job's end line carry the ids that join them, the dialect, provider, model, status and durations; and no
key ever appears: not the providers' keys the worker holds, not a key a client sent to a proxy endpoint (in a
header, or in the query as Gemini's clients do), not a client's bearer token."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.fakes.upstream import Fail, FakeUpstream
from tests.harness import auth, token
from tests.stack import Stack, own_stack

CLIENT_OPENAI_KEY = "sk-client-canary-6a1f0e2d9c8b7a"
CLIENT_GEMINI_KEY = "AIza-client-canary-5d4c3b2a19"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def json_stack(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Stack]:
    logs: Path = tmp_path_factory.mktemp("json-logs")
    env = {"CONDUIT_LOG_FORMAT": "json", "CONDUIT_PROXY_ALLOW": f"127.0.0.1:{fake.port}"}
    with own_stack(logs, fake, worker_env=env, api_env=env) as stack:
        yield stack


def _lines(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line in {path.name}: {line!r}")
    return parsed


def test_json_lines_join_a_request_to_its_job_and_never_show_a_key(json_stack: Stack) -> None:
    stack, bearer = json_stack, token(user="logs-user")
    headers = {"authorization": f"Bearer {bearer}", "x-request-id": "req-logs-0001"}
    with httpx.Client(timeout=30) as client:
        answered = client.post(
            f"{stack.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES}, headers=headers
        )
        assert answered.status_code == 200
        job = answered.headers["x-conduit-job-id"]
        stack.fake.push(Fail(500), provider="openai")  # a provider error, on its way to the logs
        stack.fake.push(Fail(500), provider="openai")
        stack.fake.push(Fail(500), provider="openai")
        failed = client.post(
            f"{stack.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES}, headers=auth()
        )
        assert failed.status_code == 502
        proxied = quote(stack.fake.openai_base_url, safe="")
        wrong = client.post(  # the fake refuses the client's key, and its error names part of it
            f"{stack.url}/api/v1/proxy/{proxied}/{CLIENT_OPENAI_KEY}/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MESSAGES},
            headers=auth(),
        )
        assert wrong.status_code in (401, 502)
        gemini = quote(stack.fake.gemini_base_url, safe="")
        native = client.post(
            f"{stack.url}/api/v1/proxy/{gemini}/v1beta/models/gemini-2.5-flash:generateContent?key={CLIENT_GEMINI_KEY}",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
            headers=auth(),
        )
        assert native.status_code in (400, 401, 403, 502)
    time.sleep(1.0)  # the worker's end lines are written as the jobs end

    api, worker = _lines(stack.api.log), _lines(stack.worker.log)
    for line in api + worker:
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert line["time"].endswith("Z")
    access = [line for line in api if line["logger"] == "conduit.access" and line.get("request_id") == "req-logs-0001"]
    assert len(access) == 1, access
    (entry,) = access
    assert entry["job_id"] == job and entry["route"] == "/v1/chat/completions" and entry["status"] == 200
    assert entry["dialect"] == "openai" and entry["method"] == "POST" and entry["duration_ms"] > 0
    ended = [line for line in worker if line.get("job_id") == job and line["message"].startswith(f"job {job}")]
    assert len(ended) == 1, ended
    assert ended[0]["request_id"] == "req-logs-0001"
    assert ended[0]["provider"] == "openai" and ended[0]["model"] == "gpt-4o-mini" and ended[0]["status"] == "done"
    assert ended[0]["duration_ms"] > 0 and ended[0]["completion_tokens"] > 0
    assert any(line.get("error_code") for line in worker), "a failed job's line names its code"

    text = stack.api.log.read_text() + stack.worker.log.read_text()
    for canary in (*stack.fake.keys.values(), CLIENT_OPENAI_KEY, CLIENT_GEMINI_KEY, bearer):
        assert canary not in text, canary
    for part in (CLIENT_OPENAI_KEY[-12:], CLIENT_GEMINI_KEY[-12:]):
        assert part not in text, part
