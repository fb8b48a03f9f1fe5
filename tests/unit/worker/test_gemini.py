import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

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
from services.worker.providers.gemini import GeminiAdapter
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

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "upstream" / "gemini"
KEY = "AIzaSyD-testKEYdoNotLeak0123456789"
HOST = "https://generativelanguage.googleapis.com"
MODEL = "gemini-2.5-flash"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
SPEC = ProviderSpec(kind="gemini", base_url=HOST, default_model=MODEL)
TARGET = Target(provider="gemini", spec=SPEC, base_url=HOST + "/", api_key=KEY, model=MODEL)


def _job(messages: list[ChatMessage], params: SamplingParams | None = None) -> GenerationJob:
    return GenerationJob(
        id="job_1",
        request_id="req_abc",
        principal=Principal(user_id="u_1", tier="free"),
        provider="gemini",
        model=MODEL,
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
        tool_calls=[ToolCall(id="call_1", name="get_weather", arguments='{"city": "Orléans"}')],
    ),
    ChatMessage(role="tool", tool_call_id="call_1", content='{"temp_c": 21}'),
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
    """The bytes in small uneven chunks, as a network delivers them (splitting CRLFs and UTF-8 characters)."""

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
    async for piece in GeminiAdapter.iter_pieces(response, TARGET):
        pieces.append(piece)
    return pieces


def _golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def _chunk(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\r\n\r\n".encode()


async def _build(job: GenerationJob, target: Target = TARGET) -> httpx.Request:
    async with httpx.AsyncClient() as client:
        return GeminiAdapter.build_request(client, job, target)


def _body(request: httpx.Request) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(request.content)
    return body


# --- build_request ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_build_request_sends_stream_call_with_key_only_in_header() -> None:
    request = await _build(_job(CONVERSATION, PARAMS))

    assert request.method == "POST"
    assert str(request.url) == f"{HOST}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    assert KEY not in str(request.url)
    assert "key" not in request.url.params
    assert request.headers["x-goog-api-key"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["x-request-id"] == "req_abc"
    assert "authorization" not in request.headers
    assert _body(request) == {
        "systemInstruction": {"parts": [{"text": "You are terse.\n\nAnswer in French."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Orléans?"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "Checking."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Orléans"}}},
                ],
            },
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": {"temp_c": 21}}}}],
            },
        ],
        "generationConfig": {"temperature": 1.5, "topP": 0.9, "maxOutputTokens": 256, "stopSequences": ["END"]},
        "tools": [
            {"functionDeclarations": [{"name": "get_weather", "description": "Current weather", "parameters": SCHEMA}]}
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    }


@pytest.mark.anyio
async def test_build_request_omits_empty_config_and_strips_models_prefix() -> None:
    target = Target(provider="gemini", spec=SPEC, base_url=HOST, api_key=KEY, model="models/gemini-2.5-pro")
    request = await _build(_job([ChatMessage(role="user", content="Hi")]), target)
    assert str(request.url) == f"{HOST}/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    assert _body(request) == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


@pytest.mark.anyio
async def test_build_request_merges_tool_results_into_one_user_turn() -> None:
    messages = [
        ChatMessage(role="user", content="Weather and time?"),
        ChatMessage(
            role="assistant",
            tool_calls=[ToolCall(id="c1", name="get_weather", arguments=""), ToolCall(id="c2", name="get_time")],
        ),
        ChatMessage(role="tool", tool_call_id="c1", content="21 C"),
        ChatMessage(role="tool", tool_call_id="c2", content="[1, 2]"),
        ChatMessage(role="tool", tool_call_id="unknown", content="{}"),
        ChatMessage(role="user", content="Thanks"),
    ]
    assert _body(await _build(_job(messages)))["contents"] == [
        {"role": "user", "parts": [{"text": "Weather and time?"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"output": "21 C"}}},
                {"functionResponse": {"name": "get_time", "response": {"output": "[1, 2]"}}},
                {"functionResponse": {"name": "unknown", "response": {"output": {}}}},
                {"text": "Thanks"},
            ],
        },
    ]


@pytest.mark.anyio
async def test_build_request_maps_images_to_inline_and_file_data() -> None:
    content: list[TextPart | ImagePart] = [
        TextPart(text="Compare"),
        ImagePart(url="data:image/png;base64,iVBORw0KGgo="),
        ImagePart(url="https://example.com/cat.webp?size=large"),
        ImagePart(url="https://example.com/photo"),
    ]
    assert _body(await _build(_job([ChatMessage(role="user", content=content)])))["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Compare"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?size=large"}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo"}},
            ],
        }
    ]


@pytest.mark.anyio
async def test_build_request_maps_all_generation_config_fields() -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
    params = SamplingParams(seed=7, n=2, presence_penalty=0.5, frequency_penalty=-0.5, response_format=response_format)
    assert _body(await _build(_job([ChatMessage(role="user", content="Hi")], params)))["generationConfig"] == {
        "seed": 7,
        "candidateCount": 2,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
        "responseMimeType": "application/json",
        "responseJsonSchema": SCHEMA,
    }


@pytest.mark.anyio
async def test_build_request_maps_json_object_to_mime_type_only() -> None:
    params = SamplingParams(response_format={"type": "json_object"})
    body = _body(await _build(_job([ChatMessage(role="user", content="Hi")], params)))
    assert body["generationConfig"] == {"responseMimeType": "application/json"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ("none", {"mode": "NONE"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
@pytest.mark.anyio
async def test_build_request_maps_tool_choice(choice: str | dict[str, Any], expected: dict[str, Any]) -> None:
    params = SamplingParams(tools=[ToolSpec(name="get_weather")], tool_choice=choice)
    body = _body(await _build(_job([ChatMessage(role="user", content="Hi")], params)))
    assert body["toolConfig"] == {"functionCallingConfig": expected}
    assert body["tools"] == [{"functionDeclarations": [{"name": "get_weather"}]}]


@pytest.mark.anyio
async def test_build_request_rejects_tool_arguments_that_are_not_json() -> None:
    bad = ChatMessage(role="assistant", tool_calls=[ToolCall(id="c1", name="f", arguments="{city: Paris")])
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        await _build(_job([ChatMessage(role="user", content="Hi"), bad]))


@pytest.mark.anyio
async def test_build_request_drops_params_the_catalog_lists() -> None:
    spec = ProviderSpec(kind="gemini", default_model=MODEL, drop_params=["topP", "stopSequences", "toolConfig"])
    target = Target(provider="gemini", spec=spec, base_url=HOST, api_key=KEY, model=MODEL)
    body = _body(await _build(_job([ChatMessage(role="user", content="Hi")], PARAMS), target))
    assert body["generationConfig"] == {"temperature": 1.5, "maxOutputTokens": 256}
    assert "toolConfig" not in body
    assert "tools" in body


# --- iter_pieces -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_iter_pieces_parses_text_stream_with_latest_usage() -> None:
    assert await _pieces(_golden("text.sse")) == [
        ModelPiece(MODEL),
        TextPiece("Un café"),
        TextPiece(", s'il vous plaît"),
        TextPiece(" ☕"),
        UsagePiece(prompt_tokens=14, completion_tokens=47, cached_tokens=8, reasoning_tokens=38),
        FinishPiece("stop", MODEL),
    ]


@pytest.mark.anyio
async def test_iter_pieces_emits_whole_function_calls_and_tool_calls_finish() -> None:
    pieces = await _pieces(_golden("function_call.sse"))
    calls = [piece for piece in pieces if isinstance(piece, ToolCallPiece)]
    ids = [call.id or "" for call in calls]
    assert all(call_id.startswith("call_") for call_id in ids)
    assert len(set(ids)) == 2
    assert pieces == [
        ModelPiece(MODEL),
        ReasoningPiece("Je vérifie la météo."),
        ToolCallPiece(0, ids[0], "get_weather", '{"city":"Orléans"}'),
        ToolCallPiece(1, ids[1], "get_time", "{}"),
        UsagePiece(prompt_tokens=72, completion_tokens=73, reasoning_tokens=52),
        FinishPiece("tool_calls", MODEL),
    ]


@pytest.mark.anyio
async def test_iter_pieces_mints_new_call_ids_per_stream() -> None:
    first = await _pieces(_golden("function_call.sse"))
    second = await _pieces(_golden("function_call.sse"))
    assert isinstance(first[2], ToolCallPiece)
    assert isinstance(second[2], ToolCallPiece)
    assert first[2].id != second[2].id


@pytest.mark.anyio
async def test_iter_pieces_finishes_blocked_prompt_as_content_filter() -> None:
    assert await _pieces(_golden("blocked.sse")) == [
        ModelPiece(MODEL),
        UsagePiece(prompt_tokens=9, completion_tokens=0),
        FinishPiece("content_filter", MODEL),
    ]


@pytest.mark.anyio
async def test_iter_pieces_raises_incomplete_without_finish_reason() -> None:
    seen: list[Piece] = []
    with pytest.raises(GatewayError) as caught:
        await _pieces(_golden("no_finish.sse"), seen)
    assert seen == [ModelPiece(MODEL), TextPiece("Il était"), TextPiece(" une fois")]
    assert caught.value.code == ErrorCode.UPSTREAM_INCOMPLETE
    assert caught.value.retryable is True


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
    ],
)
@pytest.mark.anyio
async def test_iter_pieces_maps_finish_reason(reason: str, finish: str) -> None:
    raw = _chunk({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]})
    assert await _pieces(raw) == [TextPiece("x"), FinishPiece(finish, "")]


@pytest.mark.anyio
async def test_iter_pieces_raises_in_band_error_naming_provider() -> None:
    error = {"code": 503, "message": f"The model is overloaded ({KEY}).", "status": "UNAVAILABLE"}
    raw = _chunk({"candidates": [{"content": {"parts": [{"text": "Un"}]}}]}) + _chunk({"error": error})
    seen: list[Piece] = []
    with pytest.raises(GatewayError) as caught:
        await _pieces(raw, seen)
    assert seen == [TextPiece("Un")]
    assert caught.value.code == ErrorCode.UPSTREAM_OVERLOADED
    assert caught.value.retryable is True
    assert caught.value.message.startswith("gemini reported an error mid-stream: The model is overloaded")
    assert KEY not in caught.value.message


@pytest.mark.anyio
async def test_iter_pieces_raises_on_malformed_json() -> None:
    with pytest.raises(GatewayError, match="malformed") as caught:
        await _pieces(b'data: {"candidates": [\r\n\r\n')
    assert caught.value.code == ErrorCode.UPSTREAM_ERROR


# --- to_error --------------------------------------------------------------------------------------


def _error_body(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "status": status, "details": details or []}}
    ).encode()


@pytest.mark.parametrize(
    ("status", "canonical", "code", "retryable"),
    [
        (400, "INVALID_ARGUMENT", ErrorCode.UPSTREAM_BAD_REQUEST, False),
        (401, "UNAUTHENTICATED", ErrorCode.UPSTREAM_AUTH, False),
        (403, "PERMISSION_DENIED", ErrorCode.UPSTREAM_PERMISSION, False),
        (404, "NOT_FOUND", ErrorCode.UPSTREAM_NOT_FOUND, False),
        (429, "RESOURCE_EXHAUSTED", ErrorCode.UPSTREAM_RATE_LIMITED, True),
        (500, "INTERNAL", ErrorCode.UPSTREAM_ERROR, True),
        (503, "UNAVAILABLE", ErrorCode.UPSTREAM_OVERLOADED, True),
        (529, "UNAVAILABLE", ErrorCode.UPSTREAM_OVERLOADED, True),
    ],
)
def test_to_error_maps_status_and_redacts_key(status: int, canonical: str, code: ErrorCode, retryable: bool) -> None:
    body = _error_body(status, canonical, f"Request with key {KEY} failed.")
    error = GeminiAdapter.to_error(status, body, httpx.Headers(), TARGET)
    assert error.code == code
    assert error.retryable is retryable
    assert error.upstream_status == status
    assert error.message.startswith(f"gemini returned HTTP {status}: Request with key ")
    assert KEY not in error.message
    assert "AIza" not in error.message


def test_to_error_maps_invalid_key_400_to_upstream_auth() -> None:
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": "API key not valid.",
        },
    ]
    body = _error_body(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", details)
    error = GeminiAdapter.to_error(400, body, httpx.Headers(), TARGET)
    assert error.code == ErrorCode.UPSTREAM_AUTH
    assert error.retryable is False
    assert error.upstream_status == 400


def test_to_error_reads_retry_delay_from_retry_info() -> None:
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"},
    ]
    body = _error_body(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", details)
    error = GeminiAdapter.to_error(429, body, httpx.Headers(), TARGET)
    assert error.code == ErrorCode.UPSTREAM_RATE_LIMITED
    assert error.retry_after == 34.0


def test_to_error_prefers_retry_after_header() -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"}]
    body = _error_body(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.", details)
    error = GeminiAdapter.to_error(429, body, httpx.Headers({"retry-after": "5"}), TARGET)
    assert error.retry_after == 5.0


def test_to_error_unwraps_array_body() -> None:
    body = b"[" + _error_body(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta") + b"]"
    error = GeminiAdapter.to_error(404, body, httpx.Headers(), TARGET)
    assert error.code == ErrorCode.UPSTREAM_NOT_FOUND
    assert error.message == "gemini returned HTTP 404: models/gemini-9 is not found for API version v1beta"


def test_to_error_tolerates_a_body_that_is_not_json() -> None:
    error = GeminiAdapter.to_error(502, b"<html>Bad Gateway</html>", httpx.Headers(), TARGET)
    assert error.code == ErrorCode.UPSTREAM_ERROR
    assert error.message == "gemini returned HTTP 502: <html>Bad Gateway</html>"


# --- logprobs --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_logprobs_ask_for_responselogprobs_and_the_top_count() -> None:
    params = SamplingParams(logprobs=True, top_logprobs=2)
    config = _body(await _build(_job([ChatMessage(role="user", content="hi")], params)))["generationConfig"]
    assert (config["responseLogprobs"], config["logprobs"]) == (True, 2)
    alone = SamplingParams(logprobs=True)
    config = _body(await _build(_job([ChatMessage(role="user", content="hi")], alone)))["generationConfig"]
    assert config == {"responseLogprobs": True}
    with pytest.raises(InvalidRequestError) as refused:
        await _build(_job([ChatMessage(role="user", content="hi")], SamplingParams(top_logprobs=2)))
    assert refused.value.param == "top_logprobs"


@pytest.mark.anyio
async def test_gemini_logprobs_come_back_in_openais_shape() -> None:
    texts = [piece for piece in await _pieces(_golden("logprobs.sse")) if isinstance(piece, TextPiece)]
    assert [t.text for t in texts] == ["Hello", " there!"]
    first, second = (t.logprobs for t in texts)
    assert first == {
        "content": [
            {
                "token": "Hello",
                "logprob": -0.0125,
                "bytes": list(b"Hello"),
                "top_logprobs": [
                    {"token": "Hello", "logprob": -0.0125, "bytes": list(b"Hello")},
                    {"token": "Hi", "logprob": -4.61, "bytes": list(b"Hi")},
                ],
            }
        ],
        "refusal": None,
    }
    assert second is not None and [step["token"] for step in second["content"]] == [" there", "!"]
    assert [len(step["top_logprobs"]) for step in second["content"]] == [2, 1]


@pytest.mark.anyio
async def test_a_tool_result_with_images_sends_them_after_its_response() -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    messages = [
        ChatMessage(role="user", content="Show me"),
        ChatMessage(role="assistant", tool_calls=[ToolCall(id="call_1", name="snapshot", arguments="{}")]),
        ChatMessage(role="tool", tool_call_id="call_1", content=[TextPart(text="the chart:"), ImagePart(url=png)]),
    ]
    contents = _body(await _build(_job(messages)))["contents"]
    assert contents[-1] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "snapshot", "response": {"output": "the chart:"}}},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        ],
    }


# --- reasoning and web search options ----------------------------------------------------------------

HI = [ChatMessage(role="user", content="hi")]


@pytest.mark.anyio
async def test_a_thinking_budget_asks_for_the_thoughts_too_and_none_switches_thinking_off() -> None:
    config = _body(await _build(_job(HI, SamplingParams(reasoning_effort="medium"))))["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 8192, "includeThoughts": True}
    config = _body(await _build(_job(HI, SamplingParams(reasoning_effort="none"))))["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 0}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"search_context_size": "high"}, "web_search_options.search_context_size"),
        (
            {"user_location": {"type": "approximate", "approximate": {"city": "Orléans"}}},
            "web_search_options.user_location",
        ),
    ],
)
async def test_web_search_options_asking_for_what_google_search_lacks_are_refused(
    options: dict[str, Any], param: str
) -> None:
    params = SamplingParams(internet=True, extra={"web_search_options": options})
    with pytest.raises(InvalidRequestError) as refused:
        await _build(_job(HI, params))
    assert refused.value.code == ErrorCode.UNSUPPORTED_PARAMETER and refused.value.param == param
    plain = SamplingParams(internet=True, extra={"web_search_options": {"search_context_size": "medium"}})
    assert _body(await _build(_job(HI, plain)))["tools"] == [{"googleSearch": {}}]
