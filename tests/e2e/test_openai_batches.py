"""The Files + Batches API with the official ``openai`` SDK, unchanged, through the whole stack: the API, an
interactive worker, a batch worker (``conduit worker --queues batch``), Redis, and the fake upstream speaking
each provider's wire format."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.upstream import Fail, FakeUpstream, Reply
from tests.harness import WorkerProcess, auth, provider_env, token
from tests.openai_schema import assert_valid
from tests.stack import Stack, own_stack

MODELS = ("gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash", "echo")


@pytest.fixture(scope="module")
def batch_stack(logs: Path, fake: FakeUpstream) -> Iterator[Stack]:
    with own_stack(logs, fake) as stack:
        env = {**provider_env(fake), "CONDUIT_BATCH_HOLD": "2"}
        batch_worker = WorkerProcess(logs, stack.redis.url, env, queues="batch")
        try:
            batch_worker.wait_ready()
            yield stack
        finally:
            batch_worker.stop()


def sdk(stack: Stack, tier: str = "pro", user: str = "batcher") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=token(tier, user), max_retries=0, timeout=30)


def _input(count: int, models: tuple[str, ...] = MODELS) -> bytes:
    lines = []
    for index in range(count):
        body = {"model": models[index % len(models)], "messages": [{"role": "user", "content": f"question {index}"}]}
        lines.append(
            json.dumps({"custom_id": f"q{index}", "method": "POST", "url": "/v1/chat/completions", "body": body})
        )
    return ("\n".join(lines) + "\n").encode()


def _ended(client: openai.OpenAI, batch_id: str, within: float = 60.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} did not end: {client.batches.retrieve(batch_id)}")


def _lines(client: openai.OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    if file_id is None:
        return {}
    text = client.files.content(file_id).text
    return {line["custom_id"]: line for line in map(json.loads, text.splitlines())}


def test_a_mixed_provider_batch_runs_to_its_output_file(batch_stack: Stack) -> None:
    with sdk(batch_stack) as client:
        upload = client.files.create(file=("mixed.jsonl", _input(40)), purpose="batch")
        batch = client.batches.create(
            input_file_id=upload.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"job": "nightly-eval"},
        )
        assert batch.request_counts is not None and batch.request_counts.total == 40
        assert (batch.status, batch.metadata) == ("validating", {"job": "nightly-eval"})
        done = _ended(client, batch.id)
        assert done.status == "completed" and done.request_counts.completed == 40 and done.request_counts.failed == 0
        assert done.completed_at and done.in_progress_at and done.finalizing_at and done.error_file_id is None
        assert done.usage is not None and done.usage.total_tokens > 0
        output = _lines(client, done.output_file_id)
        assert sorted(output) == sorted(f"q{i}" for i in range(40))
        for index in range(40):
            line = output[f"q{index}"]
            assert line["error"] is None and line["id"].startswith("batch_req_")
            response = line["response"]
            assert response["status_code"] == 200
            assert_valid(response["body"], "CreateChatCompletionResponse")
            assert response["body"]["id"] == f"chatcmpl-{response['request_id']}"
            assert response["body"]["model"].startswith(MODELS[index % len(MODELS)])  # as the upstream names it
        output_file = client.files.retrieve(done.output_file_id)
        assert (output_file.purpose, output_file.filename) == ("batch_output", f"{batch.id}_output.jsonl")


def test_a_line_the_provider_refuses_goes_to_the_error_file(batch_stack: Stack) -> None:
    batch_stack.fake.push(Fail(400, "the model refused this one"), provider="anthropic")
    with sdk(batch_stack) as client:
        upload = client.files.create(file=("one.jsonl", _input(3, ("claude-haiku-4-5", "echo"))), purpose="batch")
        batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
        done = _ended(client, batch.id)
        assert (done.status, done.request_counts.completed, done.request_counts.failed) == ("completed", 2, 1)
        failed = _lines(client, done.error_file_id)
        (line,) = failed.values()
        assert line["response"]["status_code"] == 400 and line["error"] is None
        assert set(line["response"]["body"]["error"]) == {"message", "type", "param", "code"}
        assert len(_lines(client, done.output_file_id)) == 2


def test_cancel_stops_a_batch_and_lists_what_never_ran(batch_stack: Stack) -> None:
    for _ in range(400):
        batch_stack.fake.push(Reply(tokens=["slow ", "one"], delay=0.25), provider="openai")
    with sdk(batch_stack) as client:
        upload = client.files.create(file=("slow.jsonl", _input(300, ("gpt-4o-mini",))), purpose="batch")
        batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
        time.sleep(1.0)
        results = f"{batch_stack.url}/v1/batches/{batch.id}/results"
        got = httpx.get(results, headers=auth(user="batcher"))
        assert got.status_code == 200, got.text
        so_far = [json.loads(row) for row in got.text.splitlines()]
        assert so_far and {line["response"]["status_code"] for line in so_far} == {200}  # the lines ended so far
        cancelling = client.batches.cancel(batch.id)
        assert cancelling.status == "cancelling" and cancelling.cancelling_at
        done = _ended(client, batch.id)
        assert done.status == "cancelled" and done.cancelled_at
        counts = done.request_counts
        assert counts.completed < 300 and counts.failed == 0
        never = [line for line in _lines(client, done.error_file_id).values() if line["response"] is None]
        assert len(never) == 300 - counts.completed
        assert {line["error"]["code"] for line in never} == {"batch_cancelled"}
        files = client.files.content(done.output_file_id).content + client.files.content(done.error_file_id).content
        assert httpx.get(results, headers=auth(user="batcher")).content == files  # once ended: its two files
    batch_stack.fake.reset()


def test_batches_list_newest_first_and_belong_to_their_owner(batch_stack: Stack) -> None:
    with sdk(batch_stack, user="lister") as client:
        upload = client.files.create(file=("x.jsonl", _input(1, ("echo",))), purpose="batch")
        made = [
            client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
            for _ in range(3)
        ]
        page = client.batches.list(limit=2)
        assert [b.id for b in page.data] == [made[2].id, made[1].id] and page.has_more
        assert [b.id for b in client.batches.list()] == [b.id for b in reversed(made)]
        with pytest.raises(openai.BadRequestError):  # its lines call another endpoint
            client.batches.create(input_file_id=upload.id, endpoint="/v1/completions", completion_window="24h")
        done = _ended(client, made[0].id)
        with sdk(batch_stack, user="someone-else") as other:
            for call in (other.batches.retrieve, other.batches.cancel):
                with pytest.raises(openai.NotFoundError):
                    call(made[0].id)
            with pytest.raises(openai.NotFoundError):
                other.files.content(done.output_file_id)
            with pytest.raises(openai.NotFoundError):  # another user's file as the input
                other.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    with sdk(batch_stack, tier="free", user="lister") as free, pytest.raises(openai.PermissionDeniedError):
        free.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
