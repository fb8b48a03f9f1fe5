"""Traces, switched on by the standard ``OTEL_*`` variables and captured as the OpenTelemetry SDK's own console
exporter writes them: a request's span on the API (a child of the client's ``traceparent``) and its job's provider
call span on the worker (a child of the API's, through the queue), with the ``gen_ai.*`` attributes the README
lists. Without the variables there is no span at all (the other tests' stacks)."""

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.upstream import Fail, FakeUpstream
from tests.harness import auth
from tests.stack import Stack, own_stack

ROOT = Path(__file__).resolve().parents[2]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Stack]:
    logs: Path = tmp_path_factory.mktemp("traces")
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with own_stack(logs, fake, worker_env={**env, "CONDUIT_UPSTREAM_RETRIES": "0"}, api_env=env) as stack:
        yield stack


def _spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith('{"name":')]


def _wait_for(stack: Stack, count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    deadline = time.monotonic() + 10
    while True:
        api = [s for s in _spans(stack.api.log) if s["context"]["trace_id"] == f"0x{TRACE}"]
        worker = [s for s in _spans(stack.worker.log) if s["context"]["trace_id"] == f"0x{TRACE}"]
        if (len(api) >= count and len(worker) >= count) or time.monotonic() > deadline:
            return api, worker
        time.sleep(0.1)


def test_a_request_and_its_job_are_one_trace_with_gen_ai_attributes(traced: Stack) -> None:
    headers = {**auth(), "traceparent": TRACEPARENT}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
    with httpx.Client(timeout=30) as client:
        assert client.post(f"{traced.url}/v1/chat/completions", json=body, headers=headers).status_code == 200
        traced.fake.push(Fail(500), provider="openai")
        failed = client.post(f"{traced.url}/v1/chat/completions", json={**body, "stream": True}, headers=headers)
        assert failed.status_code in (200, 502)
    api, worker = _wait_for(traced, 2)
    assert len(api) == 2 and len(worker) == 2, (api, worker)

    request, streamed = api
    assert request["name"] == "POST /v1/chat/completions" and request["kind"] == "SpanKind.SERVER"
    assert request["parent_id"] == "0x00f067aa0ba902b7"  # the client's span
    assert request["attributes"]["http.route"] == "/v1/chat/completions"
    assert request["attributes"]["http.response.status_code"] == 200
    assert request["resource"]["attributes"]["service.name"] == "conduit-api"

    answered, broken = worker
    assert answered["name"] == "chat gpt-4o-mini" and answered["kind"] == "SpanKind.CLIENT"
    assert answered["parent_id"] == request["context"]["span_id"]  # through the queue, in the job
    attributes = answered["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini" and attributes["gen_ai.request.max_tokens"] == 50
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.usage.input_tokens"] > 0 and attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert answered["resource"]["attributes"]["service.name"] == "conduit-worker"
    assert broken["parent_id"] == streamed["context"]["span_id"]
    assert broken["attributes"]["error.type"] == "upstream_error" and broken["status"]["status_code"] == "ERROR"

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("<!-- spans:start -->") : readme.index("<!-- spans:end -->")]
    named = set(re.findall(r"`((?:gen_ai|http|error|conduit)\.[a-z_.]+)`", table))
    produced = {name for span in (*api, *worker) for name in span["attributes"]}
    assert named and named <= produced, sorted(named - produced)
