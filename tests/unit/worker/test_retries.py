"""Retries and fallbacks before the first token; none after it."""

import time
from pathlib import Path

import httpx
import msgspec
import pytest

from services.worker.retry import backoff
from shared.catalog import Catalog, load_catalog
from shared.events import Done, Failed, TextDelta
from shared.jobs import SamplingParams
from tests.unit.worker.test_generate import UpstreamStream, _golden, _job, _run

pytestmark = pytest.mark.anyio

OPENAI_429 = b'{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}'
OPENAI_500 = b'{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}'


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    text = (
        Path("deploy/providers.toml")
        .read_text()
        .replace(
            "[fallbacks]\n",
            '[fallbacks]\n"openai/gpt-4o-mini" = ["anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash"]\n',
        )
    )
    path = tmp_path / "providers.toml"
    path.write_text(text)
    return load_catalog(path)


class Script:
    """Answers upstream requests in order from a list of responses; records every request."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[tuple[float, httpx.Request]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((time.monotonic(), request))
        return self.responses.pop(0)

    @property
    def hosts(self) -> list[str]:
        return [request.url.host for _, request in self.requests]


def _error(status: int, body: bytes, retry_after: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json", **({"retry-after": retry_after} if retry_after else {})}
    return httpx.Response(status, headers=headers, content=body)


def _ok(provider: str = "openai") -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=UpstreamStream([_golden(provider, "text.sse")])
    )


def test_backoff_doubles_with_jitter_within_the_cap():
    assert backoff(0, 0.5, 8.0, rng=lambda: 0.0) == 0.25
    assert backoff(0, 0.5, 8.0, rng=lambda: 1.0) == 0.5
    assert backoff(3, 0.5, 8.0, rng=lambda: 1.0) == 4.0
    assert backoff(10, 0.5, 8.0, rng=lambda: 1.0) == 8.0


def test_backoff_honours_retry_after_up_to_the_cap():
    assert backoff(0, 0.5, 8.0, retry_after=3.0, rng=lambda: 0.0) == 3.0
    assert backoff(0, 0.5, 8.0, retry_after=8.0) == 8.0
    assert backoff(0, 0.5, 8.0, retry_after=30.0) is None  # asks for too long: not retried


async def test_a_429_is_retried_after_its_retry_after_then_succeeds(catalog):
    script = Script(_error(429, OPENAI_429, "0.2"), _error(429, OPENAI_429, "0.2"), _ok())

    terminal, events = await _run(_job(), catalog, script, retries=2)

    assert isinstance(terminal, Done)
    assert script.hosts == ["api.openai.test"] * 3
    gaps = [b[0] - a[0] for a, b in zip(script.requests, script.requests[1:], strict=False)]
    assert all(gap >= 0.2 for gap in gaps)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Un café, s'il vous plaît ☕"
    assert not [e for e in events if isinstance(e, Failed)]


async def test_retries_are_bounded_then_the_last_failure_is_published(catalog):
    fallbacks_off = msgspec.structs.replace(catalog, fallbacks={})
    script = Script(*[_error(500, OPENAI_500) for _ in range(3)])

    terminal, _ = await _run(_job(), fallbacks_off, script, retries=2)

    assert isinstance(terminal, Failed)
    assert (terminal.code, terminal.upstream_status, terminal.retryable) == ("upstream_error", 500, True)
    assert len(script.requests) == 3


async def test_a_non_retryable_failure_is_not_retried_nor_falls_back(catalog):
    script = Script(_error(400, b'{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}'))

    terminal, _ = await _run(_job(), catalog, script, retries=2)

    assert isinstance(terminal, Failed)
    assert terminal.code == "upstream_bad_request"
    assert len(script.requests) == 1


async def test_after_its_retries_the_job_falls_back_to_the_next_configured_model(catalog):
    script = Script(_error(503, OPENAI_500), _error(503, OPENAI_500), _ok("anthropic"))

    terminal, events = await _run(_job(), catalog, script, retries=1)

    assert isinstance(terminal, Done)
    assert script.hosts == ["api.openai.test", "api.openai.test", "api.anthropic.test"]  # gemini has no key here
    assert msgspec.json.decode(script.requests[-1][1].content)["model"] == "claude-haiku-4-5"
    assert terminal.model.startswith("claude")
    assert any(isinstance(e, TextDelta) for e in events)


async def test_a_retry_after_beyond_the_cap_skips_to_the_fallback_at_once(catalog):
    script = Script(_error(429, OPENAI_429, "60"), _ok("anthropic"))
    started = time.monotonic()

    terminal, _ = await _run(_job(), catalog, script, retries=2)

    assert isinstance(terminal, Done)
    assert script.hosts == ["api.openai.test", "api.anthropic.test"]
    assert time.monotonic() - started < 0.5


async def test_a_failure_after_the_first_token_is_never_retried(catalog):
    head = _golden("openai", "text.sse").split(b"\n\n")[:3]
    cut = UpstreamStream([b"\n\n".join(head) + b"\n\n"])  # text, then the body ends without a finish
    script = Script(httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=cut), _ok())

    terminal, events = await _run(_job(), catalog, script, retries=2)

    assert isinstance(terminal, Failed)
    assert terminal.code == "upstream_incomplete"
    assert len(script.requests) == 1
    assert any(isinstance(e, TextDelta) for e in events)


async def test_a_fallback_that_cannot_take_the_fields_is_passed_over(catalog):
    # logit_bias has no Anthropic or Gemini equivalent: neither fallback may get the job (none is called)
    params = SamplingParams(extra={"logit_bias": {"50256": -100}})
    script = Script(_error(503, OPENAI_500), _error(503, OPENAI_500))

    terminal, _ = await _run(_job(params=params), catalog, script, retries=1)

    assert isinstance(terminal, Failed)
    assert terminal.code == "upstream_overloaded" or terminal.code.startswith("upstream")
    assert script.hosts == ["api.openai.test", "api.openai.test"]
    assert msgspec.json.decode(script.requests[0][1].content)["logit_bias"] == {"50256": -100}


async def test_the_primary_refusing_a_field_fails_at_once_naming_it(catalog):
    params = SamplingParams(seed=7)
    script = Script()

    terminal, _ = await _run(_job("anthropic", "claude-haiku-4-5", params=params), catalog, script)

    assert isinstance(terminal, Failed)
    assert (terminal.code, terminal.param) == ("unsupported_parameter", "seed")
    assert "anthropic" in terminal.message
    assert script.requests == []
