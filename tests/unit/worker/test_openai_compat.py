import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.worker.providers.base import FinishPiece, ModelPiece, Piece, Target, TextPiece, ToolCallPiece, UsagePiece
from services.worker.providers.openai_compat import OpenAICompatAdapter
from shared.catalog import ProviderSpec
from shared.errors import ErrorCode, GatewayError
from shared.jobs import ChatMessage, GenerationJob, ImagePart, Principal, SamplingParams, TextPart, ToolCall, ToolSpec

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "upstream" / "openai"
KEY = "sk-proj-testKEYdoNotLeak0123456789"
MODEL = "gpt-4o-mini-2024-07-18"
FINGERPRINT = "fp_06737a9306"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
SPEC = ProviderSpec(kind="openai_compat", base_url="https://api.openai.com/v1", default_model="gpt-4o-mini")
TARGET = Target(provider="openai", spec=SPEC, base_url="https://api.openai.com/v1/", api_key=KEY, model="gpt-4o-mini")


def _job(messages: list[ChatMessage], params: SamplingParams | None = None) -> GenerationJob:
    return GenerationJob(
        id="job_1",
        request_id="req_abc",
        principal=Principal(user_id="u_1", tier="free"),
        provider="openai",
        model="gpt-4o-mini",
        messages=messages,
        params=params or SamplingParams(),
    )


CONVERSATION = [
    ChatMessage(role="system", content="You are terse."),
    ChatMessage(
        role="user", content=[TextPart(text="Weather here?"), ImagePart(url="https://x.test/a.png", detail="low")]
    ),
    ChatMessage(
        role="assistant",
        tool_calls=[ToolCall(id="call_1", name="get_weather", arguments='{"city": "Orléans"}')],
    ),
    ChatMessage(role="tool", tool_call_id="call_1", content="21 C"),
]
PARAMS = SamplingParams(
    temperature=1.5,
    top_p=0.9,
    max_tokens=256,
    stop=["END"],
    tools=[ToolSpec(name="get_weather", description="Current weather", parameters=SCHEMA)],
    tool_choice="auto",
)


class _ChunkedStream(httpx.AsyncByteStream):
    """The bytes in small uneven chunks, as a network delivers them (splitting lines and UTF-8 characters)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        start, sizes = 0, itertools.cycle((1, 7, 2, 13, 3, 31))
        while start < len(self._data):
            end = start + next(sizes)
            yield self._data[start:end]
            start = end


async def _pieces(raw: bytes, into: list[Piece] | None = None) -> list[Piece]:
    pieces = [] if into is None else into
    response = httpx.Response(200, stream=_ChunkedStream(raw), headers={"content-type": "text/event-stream"})
    async for piece in OpenAICompatAdapter.iter_pieces(response, TARGET):
        pieces.append(piece)
    return pieces


async def _build(job: GenerationJob, target: Target = TARGET) -> httpx.Request:
    async with httpx.AsyncClient() as client:
        return OpenAICompatAdapter.build_request(client, job, target)


def _body(request: httpx.Request) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(request.content)
    return body


# --- build_request ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_build_request_sends_chat_completions_call_with_bearer_key() -> None:
    request = await _build(_job(CONVERSATION, PARAMS))

    assert request.method == "POST"
    assert str(request.url) == "https://api.openai.com/v1/chat/completions"
    assert KEY not in str(request.url)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["x-request-id"] == "req_abc"
    assert _body(request) == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Orléans"}'},
                    }
                ],
            },
            {"role": "tool", "content": "21 C", "tool_call_id": "call_1"},
        ],
        "temperature": 1.5,
        "top_p": 0.9,
        "max_completion_tokens": 256,
        "stop": ["END"],
        "tools": [
            {
                "type": "function",
                "function": {"name": "get_weather", "description": "Current weather", "parameters": SCHEMA},
            }
        ],
        "tool_choice": "auto",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.anyio
async def test_build_request_uses_catalog_max_tokens_field_and_drop_params() -> None:
    spec = ProviderSpec(
        kind="openai_compat", default_model="llama", max_tokens_field="max_tokens", drop_params=["stream_options"]
    )
    target = Target(provider="vllm", spec=spec, base_url="http://localhost:8000/v1", api_key="", model="llama")
    request = await _build(_job([ChatMessage(role="user", content="Hi")], SamplingParams(max_tokens=9)), target)
    assert str(request.url) == "http://localhost:8000/v1/chat/completions"
    assert "authorization" not in request.headers
    assert _body(request) == {
        "model": "llama",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 9,
        "stream": True,
    }


# --- iter_pieces -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_iter_pieces_parses_text_stream() -> None:
    assert await _pieces((GOLDEN / "text.sse").read_bytes()) == [
        ModelPiece(MODEL, FINGERPRINT),
        TextPiece("Un café"),
        TextPiece(", s'il vous plaît"),
        TextPiece(" ☕"),
        UsagePiece(prompt_tokens=21, completion_tokens=9),
        FinishPiece("stop", MODEL),
    ]


@pytest.mark.anyio
async def test_iter_pieces_parses_parallel_tool_call_fragments() -> None:
    assert await _pieces((GOLDEN / "tool_call.sse").read_bytes()) == [
        ModelPiece(MODEL, FINGERPRINT),
        ToolCallPiece(0, "call_c91SqDXlYFuETYv8mUHzz6pp", "get_weather", ""),
        ToolCallPiece(0, arguments='{"'),
        ToolCallPiece(0, arguments='city": "Orl'),
        ToolCallPiece(0, arguments='éans"}'),
        ToolCallPiece(1, "call_Zx8hKn2VtPq4rWm1Ys7bD3eF", "get_time", ""),
        ToolCallPiece(1, arguments='{"tz": "Europe/Paris"}'),
        UsagePiece(prompt_tokens=82, completion_tokens=41, cached_tokens=64),
        FinishPiece("tool_calls", MODEL),
    ]


@pytest.mark.anyio
async def test_iter_pieces_raises_incomplete_without_finish_reason() -> None:
    seen: list[Piece] = []
    with pytest.raises(GatewayError) as caught:
        await _pieces((GOLDEN / "no_finish.sse").read_bytes(), seen)
    assert seen == [ModelPiece(MODEL, FINGERPRINT), TextPiece("Il était"), TextPiece(" une fois")]
    assert caught.value.code == ErrorCode.UPSTREAM_INCOMPLETE
    assert caught.value.retryable is True


@pytest.mark.anyio
async def test_iter_pieces_raises_in_band_error_with_key_redacted() -> None:
    raw = f'data: {{"error":{{"message":"bad key {KEY}","type":"server_error","param":null,"code":null}}}}\n\n'
    with pytest.raises(GatewayError) as caught:
        await _pieces(raw.encode())
    assert caught.value.message.startswith("openai reported an error mid-stream: bad key ")
    assert KEY not in caught.value.message


@pytest.mark.anyio
async def test_iter_pieces_raises_on_malformed_json() -> None:
    with pytest.raises(GatewayError, match="malformed") as caught:
        await _pieces(b'data: {"choices": [\n\n')
    assert caught.value.code == ErrorCode.UPSTREAM_ERROR


# --- to_error --------------------------------------------------------------------------------------


def _error_body(message: str, error_type: str, code: str | None) -> bytes:
    return json.dumps({"error": {"message": message, "type": error_type, "param": None, "code": code}}).encode()


@pytest.mark.parametrize(
    ("status", "error_type", "error_code", "code", "retryable"),
    [
        (401, "invalid_request_error", "invalid_api_key", ErrorCode.UPSTREAM_AUTH, False),
        (403, "request_forbidden", "unsupported_country_region_territory", ErrorCode.UPSTREAM_PERMISSION, False),
        (404, "invalid_request_error", "model_not_found", ErrorCode.UPSTREAM_NOT_FOUND, False),
        (429, "tokens", "rate_limit_exceeded", ErrorCode.UPSTREAM_RATE_LIMITED, True),
        (500, "server_error", None, ErrorCode.UPSTREAM_ERROR, True),
        (503, "server_error", None, ErrorCode.UPSTREAM_OVERLOADED, True),
        (529, "server_error", None, ErrorCode.UPSTREAM_OVERLOADED, True),
    ],
)
def test_to_error_maps_status_and_redacts_key(
    status: int, error_type: str, error_code: str | None, code: ErrorCode, retryable: bool
) -> None:
    body = _error_body(f"Incorrect API key provided: {KEY}.", error_type, error_code)
    error = OpenAICompatAdapter.to_error(status, body, httpx.Headers(), TARGET)
    assert error.code == code
    assert error.retryable is retryable
    assert error.upstream_status == status
    assert error.message.startswith(f"openai returned HTTP {status}: Incorrect API key provided: ")
    assert KEY not in error.message


def test_to_error_reads_retry_after_ms_on_429() -> None:
    body = _error_body("Rate limit reached for gpt-4o-mini. Please try again in 1.5s.", "tokens", "rate_limit_exceeded")
    error = OpenAICompatAdapter.to_error(429, body, httpx.Headers({"retry-after-ms": "1500"}), TARGET)
    assert error.code == ErrorCode.UPSTREAM_RATE_LIMITED
    assert error.retry_after == 1.5


def test_to_error_does_not_retry_insufficient_quota() -> None:
    body = _error_body("You exceeded your current quota.", "insufficient_quota", "insufficient_quota")
    error = OpenAICompatAdapter.to_error(429, body, httpx.Headers({"retry-after": "20"}), TARGET)
    assert error.code == ErrorCode.UPSTREAM_RATE_LIMITED
    assert error.retryable is False
