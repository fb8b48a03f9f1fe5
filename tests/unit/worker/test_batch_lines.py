"""One batch line through the worker's pipeline (``services.worker.batch_lines``), against an upstream that
speaks OpenAI's wire format: its events collected, its usage read, a provider's bad minute waited out."""

from pathlib import Path

import httpx
import pytest

from services.stores.batches import LineResult
from services.worker.batch_lines import CollectingSink, run_line
from services.worker.generate import PipelineContext
from services.worker.providers.registry import build_streamers
from services.worker.settings import Credentials, WorkerSettings
from shared.batches import BatchLine
from shared.catalog import load_catalog
from shared.codec import decode_events
from shared.events import Done, Failed, TextDelta
from shared.jobs import ChatMessage, Principal

pytestmark = pytest.mark.anyio

TEXT_SSE = (Path(__file__).resolve().parents[2] / "golden" / "upstream" / "openai" / "text.sse").read_bytes()
OWNER = Principal(user_id="ana", tier="pro")
LINE = BatchLine(
    custom_id="q1",
    provider="openai",
    model="gpt-4o-mini",
    messages=[ChatMessage(role="user", content="hi")],
    dialect="openai.chat",
    id_prefix="chatcmpl-",
    model_named="gpt-4o-mini",
)


async def _run(answers: list[httpx.Response], attempts: int = 3) -> tuple[list[httpx.Request], LineResult]:
    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    settings = WorkerSettings(
        name="test-worker:1",
        credentials={"openai": Credentials(api_key="sk-test", base_url="https://api.openai.test/v1")},
        upstream_retries=0,  # only the line's own retries
    )
    sink = CollectingSink()
    async with httpx.AsyncClient(transport=httpx.MockTransport(upstream)) as client:
        ctx = PipelineContext(settings, load_catalog(), client, sink, build_streamers(0.0))
        result = await run_line(LINE, OWNER, "batch_1", ctx, sink, attempts=attempts, pause=0.01)
    return seen, result


def _sse() -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=TEXT_SSE)


def _error(status: int) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": "slow down", "type": "x", "param": None, "code": None}})


async def test_a_line_answered_keeps_its_events_and_usage() -> None:
    seen, result = await _run([_sse()])
    assert len(seen) == 1 and result.ok and result.custom_id == "q1"
    events = decode_events(result.events)
    assert isinstance(events[-1], Done) and any(isinstance(e, TextDelta) for e in events)
    assert result.input_tokens > 0 and result.output_tokens > 0


async def test_a_providers_429_and_500_are_waited_out_then_the_line_answers() -> None:
    seen, result = await _run([_error(429), _error(500), _sse()])
    assert len(seen) == 3 and result.ok


async def test_a_line_that_keeps_failing_ends_failed_after_its_attempts() -> None:
    seen, result = await _run([_error(503), _error(503)], attempts=2)
    assert len(seen) == 2 and not result.ok
    failed = decode_events(result.events)[-1]
    assert isinstance(failed, Failed) and failed.upstream_status == 503


async def test_a_refusal_is_not_retried() -> None:
    seen, result = await _run([_error(400)])
    assert len(seen) == 1 and not result.ok
