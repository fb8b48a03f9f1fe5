import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.worker.providers.anthropic import AnthropicAdapter
from services.worker.providers.base import (
    FinishPiece,
    ModelPiece,
    Piece,
    ReasoningPiece,
    Target,
    TextPiece,
    ToolCallPiece,
    UsagePiece,
)
from shared.catalog import ProviderSpec
from shared.errors import ErrorCode, GatewayError, InvalidRequestError
from shared.jobs import (
    ChatMessage,
    GenerationJob,
    ImagePart,
    Principal,
    SamplingParams,
    TextPart,
    ToolCall,
    ToolSpec,
)

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "upstream" / "anthropic"
KEY = "sk-ant-api03-Zq9XtestKEYdoNotLeak000"
MODEL = "claude-haiku-4-5-20251001"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
SPEC = ProviderSpec(kind="anthropic", base_url="https://api.anthropic.com", default_model="claude-haiku-4-5")
TARGET = Target(
    provider="anthropic", spec=SPEC, base_url="https://api.anthropic.com/", api_key=KEY, model="claude-haiku-4-5"
)


def _job(messages: list[ChatMessage], params: SamplingParams | None = None) -> GenerationJob:
    return GenerationJob(
        id="job_1",
        request_id="req_abc",
        principal=Principal(user_id="u_1", tier="free"),
        provider="anthropic",
        model="claude-haiku-4-5",
        messages=messages,
        params=params or SamplingParams(),
    )


CONVERSATION = [
    ChatMessage(role="system", content="You are terse."),
    ChatMessage(role="system", content=[TextPart(text="Answer in French.")]),
    ChatMessage(role="user", content="Weather in Orléans?"),
    ChatMessage(
        role="assistant",
        content="Checking.",
        tool_calls=[ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Orléans"}')],
    ),
    ChatMessage(role="tool", tool_call_id="toolu_1", content="21 C"),
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
    async for piece in AnthropicAdapter.iter_pieces(response, TARGET):
        pieces.append(piece)
    return pieces


def _golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _stream(stop_reason: str, usage: dict[str, int] | None = None) -> bytes:
    start = {"type": "message_start", "message": {"model": MODEL, "usage": {"input_tokens": 5, "output_tokens": 1}}}
    delta = {"type": "message_delta", "delta": {"stop_reason": stop_reason}, "usage": usage or {"output_tokens": 3}}
    return (
        _event("message_start", start)
        + _event("message_delta", delta)
        + _event("message_stop", {"type": "message_stop"})
    )


async def _build(job: GenerationJob, target: Target = TARGET) -> httpx.Request:
    async with httpx.AsyncClient() as client:
        return AnthropicAdapter.build_request(client, job, target)


def _body(request: httpx.Request) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(request.content)
    return body


# --- build_request ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_build_request_sends_messages_api_call_with_key_in_header() -> None:
    request = await _build(_job(CONVERSATION, PARAMS))

    assert request.method == "POST"
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert KEY not in str(request.url)
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["x-request-id"] == "req_abc"
    assert "authorization" not in request.headers
    assert _body(request) == {
        "model": "claude-haiku-4-5",
        "stream": True,
        "system": "You are terse.\n\nAnswer in French.",
        "max_tokens": 256,
        "temperature": 1.0,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "tools": [{"name": "get_weather", "description": "Current weather", "input_schema": SCHEMA}],
        "tool_choice": {"type": "auto"},
        "messages": [
            {"role": "user", "content": "Weather in Orléans?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Orléans"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "21 C"}]},
        ],
    }


@pytest.mark.anyio
async def test_build_request_defaults_max_tokens_and_omits_empty_fields() -> None:
    body = _body(await _build(_job([ChatMessage(role="user", content="Hi")], SamplingParams(temperature=0.3))))
    assert body == {
        "model": "claude-haiku-4-5",
        "stream": True,
        "max_tokens": 4096,
        "temperature": 0.3,
        "messages": [{"role": "user", "content": "Hi"}],
    }


@pytest.mark.anyio
async def test_build_request_merges_tool_results_and_same_role_turns() -> None:
    messages = [
        ChatMessage(role="user", content="Weather and time?"),
        ChatMessage(
            role="assistant",
            tool_calls=[ToolCall(id="t1", name="get_weather", arguments=""), ToolCall(id="t2", name="get_time")],
        ),
        ChatMessage(role="tool", tool_call_id="t1", content=[TextPart(text="21 C")]),
        ChatMessage(role="tool", tool_call_id="t2", content="14:00"),
        ChatMessage(role="user", content="Thanks"),
        ChatMessage(role="assistant", content=""),
    ]
    assert _body(await _build(_job(messages)))["messages"] == [
        {"role": "user", "content": "Weather and time?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}},
                {"type": "tool_use", "id": "t2", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "21 C"},
                {"type": "tool_result", "tool_use_id": "t2", "content": "14:00"},
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]


@pytest.mark.anyio
async def test_build_request_maps_images_to_base64_and_url_sources() -> None:
    content: list[TextPart | ImagePart] = [
        TextPart(text="Compare"),
        ImagePart(url="data:image/png;base64,iVBORw0KGgo="),
        ImagePart(url="https://example.com/cat.jpg", detail="low"),
    ]
    assert _body(await _build(_job([ChatMessage(role="user", content=content)])))["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
)
@pytest.mark.anyio
async def test_build_request_maps_tool_choice(choice: str | dict[str, Any], expected: dict[str, Any]) -> None:
    params = SamplingParams(tools=[ToolSpec(name="get_weather")], tool_choice=choice)
    body = _body(await _build(_job([ChatMessage(role="user", content="Hi")], params)))
    assert body["tool_choice"] == expected
    assert body["tools"] == [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]


@pytest.mark.anyio
async def test_build_request_rejects_tool_arguments_that_are_not_json() -> None:
    bad = ChatMessage(role="assistant", tool_calls=[ToolCall(id="t1", name="f", arguments="{city: Paris")])
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        await _build(_job([ChatMessage(role="user", content="Hi"), bad]))


@pytest.mark.anyio
async def test_build_request_drops_params_the_catalog_lists() -> None:
    target = Target(
        provider="anthropic",
        spec=ProviderSpec(kind="anthropic", default_model="m", drop_params=["top_p", "stop_sequences"]),
        base_url="http://localhost:8080",
        api_key=KEY,
        model="m",
    )
    request = await _build(_job([ChatMessage(role="user", content="Hi")], PARAMS), target)
    assert str(request.url) == "http://localhost:8080/v1/messages"
    body = _body(request)
    assert "top_p" not in body
    assert "stop_sequences" not in body
    assert body["temperature"] == 1.0


# --- iter_pieces -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_iter_pieces_parses_text_stream_with_cache_usage() -> None:
    assert await _pieces(_golden("text.sse")) == [
        ModelPiece(MODEL),
        TextPiece("Un café"),
        TextPiece(", s'il vous plaît"),
        TextPiece(" ☕"),
        UsagePiece(prompt_tokens=2125, completion_tokens=12, cached_tokens=2000),
        FinishPiece("stop", MODEL),
    ]


@pytest.mark.anyio
async def test_iter_pieces_numbers_tool_calls_by_ordinal_not_block_index() -> None:
    assert await _pieces(_golden("tool_use.sse")) == [
        ModelPiece(MODEL),
        ReasoningPiece("The user wants the weather and the time."),
        TextPiece("Je vérifie."),
        ToolCallPiece(0, "toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather", ""),
        ToolCallPiece(0, arguments='{"city": "Orl'),
        ToolCallPiece(0, arguments='éans"}'),
        ToolCallPiece(1, "toolu_01A09q90qw90lq917835lq9", "get_time", ""),
        ToolCallPiece(1, arguments='{"tz": "Europe/Paris"}'),
        UsagePiece(prompt_tokens=410, completion_tokens=87, reasoning_tokens=10),  # 40 characters of thinking,
        FinishPiece("tool_calls", MODEL),
    ]


@pytest.mark.anyio
async def test_iter_pieces_raises_mid_stream_error_after_earlier_text() -> None:
    seen: list[Piece] = []
    with pytest.raises(GatewayError) as caught:
        await _pieces(_golden("error_midstream.sse"), seen)
    assert seen == [ModelPiece(MODEL), TextPiece("Un café")]
    assert caught.value.code == ErrorCode.UPSTREAM_OVERLOADED
    assert caught.value.retryable is True
    assert caught.value.message == "anthropic reported an error mid-stream: Overloaded"


@pytest.mark.parametrize(
    ("error_type", "code", "retryable"),
    [
        ("rate_limit_error", ErrorCode.UPSTREAM_RATE_LIMITED, True),
        ("api_error", ErrorCode.UPSTREAM_ERROR, True),
        ("invalid_request_error", ErrorCode.UPSTREAM_ERROR, False),
    ],
)
@pytest.mark.anyio
async def test_iter_pieces_maps_mid_stream_error_types(error_type: str, code: ErrorCode, retryable: bool) -> None:
    raw = _event("error", {"type": "error", "error": {"type": error_type, "message": f"bad key {KEY}"}})
    with pytest.raises(GatewayError) as caught:
        await _pieces(raw)
    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert KEY not in caught.value.message


@pytest.mark.anyio
async def test_iter_pieces_raises_incomplete_without_message_stop() -> None:
    seen: list[Piece] = []
    with pytest.raises(GatewayError) as caught:
        await _pieces(_golden("no_message_stop.sse"), seen)
    assert seen == [ModelPiece(MODEL), TextPiece("Un café"), TextPiece(" ☕")]
    assert caught.value.code == ErrorCode.UPSTREAM_INCOMPLETE
    assert caught.value.retryable is True
    assert "message_stop" in caught.value.message


@pytest.mark.anyio
async def test_iter_pieces_raises_on_malformed_json() -> None:
    with pytest.raises(GatewayError, match="malformed") as caught:
        await _pieces(b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": \n\n')
    assert caught.value.code == ErrorCode.UPSTREAM_ERROR


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("some_future_reason", "stop"),
    ],
)
@pytest.mark.anyio
async def test_iter_pieces_maps_stop_reason(stop_reason: str, finish: str) -> None:
    pieces = await _pieces(_stream(stop_reason))
    assert pieces[-1] == FinishPiece(finish, MODEL)


@pytest.mark.anyio
async def test_iter_pieces_takes_latest_usage_and_ignores_unknown_events() -> None:
    raw = _event("brand_new_event", {"type": "brand_new_event", "index": "x"}) + _stream(
        "end_turn", {"input_tokens": 9, "cache_read_input_tokens": 4, "output_tokens": 30}
    )
    assert await _pieces(raw) == [
        ModelPiece(MODEL),
        UsagePiece(prompt_tokens=13, completion_tokens=30, cached_tokens=4),
        FinishPiece("stop", MODEL),
    ]


# --- to_error --------------------------------------------------------------------------------------


def _error_body(error_type: str, message: str) -> bytes:
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_011CSHoEeqs5C35"}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("status", "error_type", "code", "retryable"),
    [
        (401, "authentication_error", ErrorCode.UPSTREAM_AUTH, False),
        (403, "permission_error", ErrorCode.UPSTREAM_PERMISSION, False),
        (404, "not_found_error", ErrorCode.UPSTREAM_NOT_FOUND, False),
        (429, "rate_limit_error", ErrorCode.UPSTREAM_RATE_LIMITED, True),
        (500, "api_error", ErrorCode.UPSTREAM_ERROR, True),
        (503, "api_error", ErrorCode.UPSTREAM_OVERLOADED, True),
        (529, "overloaded_error", ErrorCode.UPSTREAM_OVERLOADED, True),
    ],
)
def test_to_error_maps_status_and_redacts_key(status: int, error_type: str, code: ErrorCode, retryable: bool) -> None:
    body = _error_body(error_type, f"request with key {KEY} failed")
    error = AnthropicAdapter.to_error(status, body, httpx.Headers(), TARGET)
    assert error.code == code
    assert error.retryable is retryable
    assert error.upstream_status == status
    assert error.message.startswith(f"anthropic returned HTTP {status}: request with key ")
    assert KEY not in error.message
    assert error.retry_after is None


def test_to_error_reads_retry_after_on_429() -> None:
    body = _error_body("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit")
    error = AnthropicAdapter.to_error(429, body, httpx.Headers({"retry-after": "17"}), TARGET)
    assert error.code == ErrorCode.UPSTREAM_RATE_LIMITED
    assert error.retry_after == 17.0


def test_to_error_tolerates_a_body_that_is_not_json() -> None:
    error = AnthropicAdapter.to_error(502, b"<html>Bad Gateway</html>", httpx.Headers(), TARGET)
    assert error.code == ErrorCode.UPSTREAM_ERROR
    assert error.retryable is True
    assert error.message == "anthropic returned HTTP 502: <html>Bad Gateway</html>"


# --- reasoning_effort and response_format --------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("effort", "budget"), [("minimal", 1024), ("low", 1024), ("medium", 8192), ("high", 15999)])
async def test_reasoning_effort_is_extended_thinking_within_max_tokens(effort: str, budget: int) -> None:
    params = SamplingParams(max_tokens=16000, reasoning_effort=effort)
    body = _body(await _build(_job([ChatMessage(role="user", content="hi")], params)))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget} and body["max_tokens"] == 16000
    assert "temperature" not in body


@pytest.mark.anyio
async def test_reasoning_effort_none_asks_for_no_thinking() -> None:
    body = _body(await _build(_job([ChatMessage(role="user", content="hi")], SamplingParams(reasoning_effort="none"))))
    assert "thinking" not in body


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("params", "field"),
    [
        (SamplingParams(max_tokens=1024, reasoning_effort="low"), "reasoning_effort"),
        (SamplingParams(reasoning_effort="extreme"), "reasoning_effort"),
        (SamplingParams(reasoning_effort="low", temperature=0.2), "temperature"),
        (
            SamplingParams(
                reasoning_effort="low", tools=[ToolSpec(name="get_weather", parameters=SCHEMA)], tool_choice="required"
            ),
            "tool_choice",
        ),
        (SamplingParams(response_format={"type": "json_object"}, reasoning_effort="low"), "response_format"),
        (
            SamplingParams(response_format={"type": "json_object"}, tools=[ToolSpec(name="t", parameters=SCHEMA)]),
            "response_format",
        ),
        (
            SamplingParams(
                response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "array"}}}
            ),
            "response_format",
        ),
    ],
)
async def test_what_anthropic_cannot_do_is_a_400_naming_the_field(params: SamplingParams, field: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        await _build(_job([ChatMessage(role="user", content="hi")], params))
    assert refused.value.param == field and "anthropic" in refused.value.message


@pytest.mark.anyio
async def test_response_format_is_a_forced_tool_whose_input_is_the_answer() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    spec = {"name": "weather", "schema": schema, "strict": True}
    params = SamplingParams(response_format={"type": "json_schema", "json_schema": spec})
    body = _body(await _build(_job([ChatMessage(role="user", content="Weather?")], params)))
    assert body["tools"] == [
        {
            "name": "conduit_structured_answer",
            "description": "Give your whole answer as this tool's input (weather).",
            "input_schema": schema,
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "conduit_structured_answer"}
    plain = SamplingParams(response_format={"type": "json_object"})
    body = _body(await _build(_job([ChatMessage(role="user", content="Weather?")], plain)))
    assert body["tools"][0]["input_schema"] == {"type": "object"}
    text = SamplingParams(response_format={"type": "text"})
    assert "tools" not in _body(await _build(_job([ChatMessage(role="user", content="Weather?")], text)))


@pytest.mark.anyio
async def test_the_forced_tools_input_streams_back_as_the_message_text() -> None:
    pieces = await _pieces(_golden("structured_answer.sse"))
    text = "".join(piece.text for piece in pieces if isinstance(piece, TextPiece))
    assert json.loads(text) == {"city": "Orléans", "temperature_c": 21}
    assert not [piece for piece in pieces if isinstance(piece, ToolCallPiece)]
    assert pieces[-1] == FinishPiece("stop", MODEL)


@pytest.mark.anyio
async def test_thinking_streams_as_reasoning_and_its_signature_is_not_text() -> None:
    pieces = await _pieces(_golden("tool_use.sse"))
    reasoning = [piece.text for piece in pieces if isinstance(piece, ReasoningPiece)]
    assert reasoning == ["The user wants the weather and the time."]
    assert not any("EqQB" in getattr(piece, "text", "") for piece in pieces)


@pytest.mark.anyio
async def test_a_tool_result_with_images_keeps_them_as_image_blocks() -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    messages = [
        ChatMessage(role="user", content="Show me"),
        ChatMessage(role="assistant", tool_calls=[ToolCall(id="toolu_1", name="snapshot", arguments="{}")]),
        ChatMessage(role="tool", tool_call_id="toolu_1", content=[TextPart(text="the chart:"), ImagePart(url=png)]),
    ]
    body = _body(await _build(_job(messages)))
    assert body["messages"][-1]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "content": [
                {"type": "text", "text": "the chart:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            ],
        }
    ]


@pytest.mark.anyio
async def test_web_search_options_user_location_becomes_the_search_tools_and_a_bad_one_is_a_400() -> None:
    where = {"type": "approximate", "approximate": {"city": "Orléans", "country": "FR", "region": 7}}
    params = SamplingParams(internet=True, extra={"web_search_options": {"user_location": where}})
    tools = _body(await _build(_job([ChatMessage(role="user", content="hi")], params)))["tools"]
    assert tools[-1]["user_location"] == {"type": "approximate", "city": "Orléans", "country": "FR"}
    for bad in ({"city": "Orléans"}, "Orléans"):
        params = SamplingParams(internet=True, extra={"web_search_options": {"user_location": bad}})
        with pytest.raises(InvalidRequestError) as refused:
            await _build(_job([ChatMessage(role="user", content="hi")], params))
        assert refused.value.param == "web_search_options.user_location"
        assert refused.value.code == ErrorCode.INVALID_REQUEST
