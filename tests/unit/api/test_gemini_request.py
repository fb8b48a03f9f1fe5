import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from services.api.dialects.gemini.errors import (
    GOOGLE_STATUS,
    GeminiRequestError,
    error_body,
    google_status,
    render_error,
)
from services.api.dialects.gemini.request import max_output_tokens, parse_model_task, parse_request, prompt_text
from services.api.dialects.gemini.schemas import GenerateContentRequest
from services.api.errors import GatewayProblem
from shared.errors import ErrorCode, InvalidRequestError

GOLDEN = Path(__file__).parents[2] / "golden" / "upstream" / "gemini"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
CATEGORIES = [
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
]
THRESHOLDS = [
    "HARM_BLOCK_THRESHOLD_UNSPECIFIED",
    "BLOCK_LOW_AND_ABOVE",
    "BLOCK_MEDIUM_AND_ABOVE",
    "BLOCK_ONLY_HIGH",
    "BLOCK_NONE",
    "OFF",
]
PREDICATE = (
    "element predicate failed: $.category in (HarmCategory.HARM_CATEGORY_HATE_SPEECH, "
    "HarmCategory.HARM_CATEGORY_SEXUALLY_EXPLICIT, HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT, "
    "HarmCategory.HARM_CATEGORY_HARASSMENT, HarmCategory.HARM_CATEGORY_CIVIC_INTEGRITY)"
)
BAD_NAME = (
    "Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), "
    "underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64."
)
URL = "type.googleapis.com/google.ai.generativelanguage.v1beta"


def _raw(body: Any) -> bytes:
    return json.dumps(body).encode()


def _user(*parts: dict[str, Any], role: str | None = "user") -> dict[str, Any]:
    content: dict[str, Any] = {"parts": list(parts)}
    if role is not None:
        content["role"] = role
    return content


def _with(**fields: Any) -> bytes:
    return _raw({"contents": [_user({"text": "Bonjour"})], **fields})


def _refusal(raw: bytes, **limits: int) -> GeminiRequestError:
    with pytest.raises(GeminiRequestError) as info:
        parse_request(raw, **limits)
    return info.value


def _google(code: int, message: str, status: str, violations: Sequence[tuple[str | None, str]] = ()) -> bytes:
    """The body as Google writes it, built with the stdlib: two-space indent, a trailing newline."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if violations:
        found = [{"field": f, "description": d} if f else {"description": d} for f, d in violations]
        error["details"] = [{"@type": BAD_REQUEST, "fieldViolations": found}]
    return (json.dumps({"error": error}, indent=2, ensure_ascii=False) + "\n").encode()


def _assert_rule_refusal(error: GeminiRequestError, message: str) -> None:
    """A refusal without field violations (passes 1, 3 and 4): 400 INVALID_ARGUMENT, no ``details``."""
    assert (error.http_status, error.status, error.message) == (400, "INVALID_ARGUMENT", message)
    assert error.violations == ()
    assert error.body() == _google(400, message, "INVALID_ARGUMENT")


def _assert_field_refusal(error: GeminiRequestError, *violations: tuple[str | None, str]) -> None:
    """A proto-writer refusal (pass 2): the messages joined by newlines, one field violation each."""
    message = "\n".join(d for _, d in violations)
    assert (error.http_status, error.status, error.message) == (400, "INVALID_ARGUMENT", message)
    assert error.violations == violations
    assert error.body() == _google(400, message, "INVALID_ARGUMENT", violations)


# --- requests Google takes ----------------------------------------------------------------------------------


def test_parse_request_reads_single_text_turn():
    request = parse_request(_raw({"contents": [{"parts": [{"text": "Bonjour"}]}]}))

    assert isinstance(request, GenerateContentRequest)
    assert request.contents[0].role is None
    assert request.contents[0].parts[0].text == "Bonjour"
    assert max_output_tokens(request) is None


def test_parse_request_reads_multi_turn_with_model_role():
    raw = _raw(
        {
            "contents": [
                _user({"text": "Un café ?"}),
                _user({"text": "Oui, merci."}, role="model"),
                _user({"text": "Avec du sucre ?"}),
            ]
        }
    )

    request = parse_request(raw)

    assert [c.role for c in request.contents] == ["user", "model", "user"]
    assert prompt_text(request) == "Un café ?\nOui, merci.\nAvec du sucre ?"


def test_parse_request_reads_inline_image_in_base64():
    raw = _raw({"contents": [_user({"text": "Décris"}, {"inlineData": {"mimeType": "image/png", "data": PNG}})]})

    part = parse_request(raw).contents[0].parts[1]

    assert part.inline_data is not None
    assert (part.inline_data.mime_type, part.inline_data.data) == ("image/png", PNG)


@pytest.mark.parametrize(
    "data",
    ["", "Zm8", "Zm8=", "Zg", "Zg==", "-_-_", "+/+/", "Zm9v\nYmFy", "Zm9v\r\nYmFy"],
    ids=["empty", "unpadded", "padded", "unpadded-2", "padded-2", "url-safe", "standard", "lf", "crlf"],
)
def test_parse_request_reads_base64_as_protobuf_does(data):
    parse_request(_raw({"contents": [_user({"inlineData": {"mimeType": "image/png", "data": data}})]}))


def test_parse_request_reads_function_round_trip():
    declaration = {
        "name": "get_weather",
        "description": "Météo actuelle",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]},
    }
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Orléans"}, "id": "c1"}}
    result = {"functionResponse": {"name": "get_weather", "response": {"output": {"temp_c": 21}}, "id": "c1"}}
    raw = _raw(
        {
            "contents": [_user({"text": "Quel temps ?"}), _user(call, role="model"), _user(result)],
            "tools": [{"functionDeclarations": [declaration]}, {"googleSearch": {}}, {"codeExecution": {}}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
        }
    )

    request = parse_request(raw)

    assert request.tools[0].function_declarations[0].parameters == declaration["parameters"]
    assert request.contents[1].parts[0].function_call is not None
    assert request.contents[1].parts[0].function_call.args == {"city": "Orléans"}
    assert request.contents[2].parts[0].function_response is not None
    assert request.tool_config is not None
    assert request.tool_config.function_calling_config is not None
    assert request.tool_config.function_calling_config.mode == "ANY"


def test_parse_request_reads_model_turn_echoed_from_golden_stream():
    frame = (GOLDEN / "function_call.sse").read_text().removeprefix("data: ").strip()
    model_turn = json.loads(frame)["candidates"][0]["content"]

    request = parse_request(_raw({"contents": [_user({"text": "Météo ?"}), model_turn]}))

    parts = request.contents[1].parts
    assert parts[0].thought is True
    assert parts[1].thought_signature == "CiQB0e2Kb1r9yWj4V2J3uLhN1t0VQ2h4U3V6b3p3d2F5"


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_parse_request_reads_every_category_with_each_threshold(threshold):
    settings = [{"category": category, "threshold": threshold} for category in CATEGORIES]

    request = parse_request(_with(safetySettings=settings))

    assert [(s.category, s.threshold) for s in request.safety_settings] == [(c, threshold) for c in CATEGORIES]


def test_parse_request_reads_generation_config_with_thinking_and_schema():
    config = {
        "stopSequences": ["FIN"],
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"label": {"type": "STRING"}}},
        "responseModalities": ["TEXT"],
        "candidateCount": 1,
        "maxOutputTokens": 1024,
        "temperature": 2,
        "topP": 0.95,
        "topK": 0,
        "seed": 42,
        "presencePenalty": -0.5,
        "frequencyPenalty": 0.5,
        "responseLogprobs": True,
        "logprobs": 5,
        "enableEnhancedCivicAnswers": False,
        "mediaResolution": "MEDIA_RESOLUTION_LOW",
        "thinkingConfig": {"includeThoughts": True, "thinkingBudget": -1, "thinkingLevel": "LOW"},
        "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
    }

    request = parse_request(_with(generationConfig=config))

    assert request.generation_config is not None
    thinking = request.generation_config.thinking_config
    assert thinking is not None
    assert (thinking.include_thoughts, thinking.thinking_budget, thinking.thinking_level) == (True, -1, "LOW")
    assert request.generation_config.response_schema == config["responseSchema"]
    assert request.generation_config.temperature == 2.0
    assert max_output_tokens(request) == 1024


def test_parse_request_reads_system_instruction_without_role():
    request = parse_request(_with(systemInstruction={"parts": [{"text": "Réponds en français."}]}))

    assert request.system_instruction is not None
    assert request.system_instruction.role is None
    assert prompt_text(request) == "Réponds en français.\nBonjour"


def test_parse_request_reads_proto_names_as_google_does():
    raw = _raw(
        {
            "contents": [{"role": "user", "parts": [{"text": "Salut"}]}],
            "system_instruction": {"parts": [{"text": "Sois bref."}]},
            "generation_config": {"max_output_tokens": 64, "thinking_config": {"thinking_budget": 0}},
            "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        }
    )

    request = parse_request(raw)

    assert request.system_instruction is not None
    assert max_output_tokens(request) == 64


def test_parse_request_reads_values_as_protobuf_does():
    raw = _raw(
        {
            "contents": {"parts": {"text": "Une seule"}},  # a lone object where a list belongs: one element
            "generationConfig": {"maxOutputTokens": "256", "temperature": "0.5", "candidateCount": 1.0, "seed": None},
            "safetySettings": [{"category": "harm-category-harassment", "threshold": 4}],
            "toolConfig": {"functionCallingConfig": {"mode": "auto"}},
        }
    )

    request = parse_request(raw)

    assert request.contents[0].parts[0].text == "Une seule"
    assert request.generation_config is not None
    assert request.generation_config.max_output_tokens == 256
    assert request.generation_config.temperature == 0.5
    assert request.generation_config.candidate_count == 1
    assert request.generation_config.seed is None
    assert (request.safety_settings[0].category, request.safety_settings[0].threshold) == (
        "HARM_CATEGORY_HARASSMENT",
        "BLOCK_NONE",
    )
    assert request.tool_config is not None
    assert request.tool_config.function_calling_config is not None
    assert request.tool_config.function_calling_config.mode == "AUTO"


def test_parse_request_reads_body_with_bom_and_bytes_not_utf8():
    request = parse_request(b'\xef\xbb\xbf{"contents": [{"parts": [{"text": "caf\xff"}]}]}')

    assert request.contents[0].parts[0].text == "caf\ufffd"


def test_parse_request_reads_function_role_of_older_clients():
    result = {"functionResponse": {"name": "get_time", "response": {"output": "midi"}}}

    request = parse_request(_raw({"contents": [_user({"text": "Heure ?"}), _user(result, role="function")]}))

    assert request.contents[1].role == "function"


# --- pass 1: the JSON text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "Invalid JSON payload received. Unexpected token.\nnot json\n^"),
        (
            b'{"contents": [{"parts": [{"text": "x"}]}], "n": NaN}',
            'Invalid JSON payload received. Unexpected token.\next": "x"}]}], "n": NaN}\n                    ^',
        ),
        (b'{"contents": nope}', 'Invalid JSON payload received. Unexpected token.\n{"contents": nope}\n             ^'),
        (b'{"contents":', "Invalid JSON payload received. Unexpected end of string. Expected a value.\n\n^"),
        (b'{"a": 1e999}', "Invalid JSON payload received. Unexpected token."),
    ],
    ids=["bare-word", "nan", "bad-literal", "truncated", "past-double"],
)
def test_parse_request_refuses_text_that_is_not_json(raw, message):
    _assert_rule_refusal(_refusal(raw), message)


def test_parse_request_refuses_depth_bomb_without_recursion():
    for raw in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
        error = _refusal(raw)

        assert error.message.startswith("Invalid JSON payload received. Message too deep: ")
        assert error.message.endswith("levels of nesting; at most 64 are read.")
        assert error.body() == _google(400, error.message, "INVALID_ARGUMENT")


def test_parse_request_refuses_nesting_past_max_depth_in_free_json():
    args: dict[str, Any] = {}
    for _ in range(10):
        args = {"a": args}
    raw = _raw({"contents": [_user({"functionCall": {"name": "f", "args": args}})]})

    _assert_rule_refusal(
        _refusal(raw, max_depth=8),
        "Invalid JSON payload received. Message too deep: 17 levels of nesting; at most 8 are read.",
    )


def test_parse_request_refuses_huge_array_cleanly():
    raw = b'{"contents": [' + b",".join([b'{"parts": [{"text": "a"}]}'] * 20_001) + b"]}"

    error = _refusal(raw, max_items=20_000)

    message = "Invalid JSON payload received. 'contents' has 20001 elements; at most 20000 are read."
    assert (error.message, error.field_path) == (message, "contents")
    assert error.body() == _google(400, message, "INVALID_ARGUMENT")


# --- pass 2: the JSON into the proto message ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "violations"),
    [
        (
            b"[]",
            [(None, 'Invalid JSON payload received. Unknown name "": Root element must be a message.')],
        ),
        (
            _with(foo=1),
            [(None, 'Invalid JSON payload received. Unknown name "foo": Cannot find field.')],
        ),
        (
            _with(labels={"team": "a"}),  # Vertex AI only
            [(None, 'Invalid JSON payload received. Unknown name "labels": Cannot find field.')],
        ),
        (
            _with(generationConfig={"foo": 1}),
            [
                (
                    "generation_config",
                    "Invalid JSON payload received. Unknown name \"foo\" at 'generation_config': Cannot find field.",
                )
            ],
        ),
        (
            _with(safetySettings=[{"category": "NOPE", "threshold": "BLOCK_NONE"}]),
            [
                (
                    "safety_settings[0].category",
                    f"Invalid value at 'safety_settings[0].category' ({URL}.HarmCategory), \"NOPE\"",
                )
            ],
        ),
        (
            _with(safetySettings=[{"category": "HARM_CATEGORY_IMAGE_HATE", "threshold": "BLOCK_NONE"}]),
            [
                (
                    "safety_settings[0].category",
                    f"Invalid value at 'safety_settings[0].category' ({URL}.HarmCategory), "
                    '"HARM_CATEGORY_IMAGE_HATE"',
                )
            ],
        ),
        (
            _with(safetySettings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_SOME"}]),
            [
                (
                    "safety_settings[0].threshold",
                    f"Invalid value at 'safety_settings[0].threshold' ({URL}.SafetySetting.HarmBlockThreshold), "
                    '"BLOCK_SOME"',
                )
            ],
        ),
        (
            _with(toolConfig={"functionCallingConfig": {"mode": "REQUIRED"}}),
            [
                (
                    "tool_config.function_calling_config.mode",
                    "Invalid value at 'tool_config.function_calling_config.mode' "
                    f'({URL}.FunctionCallingConfig.Mode), "REQUIRED"',
                )
            ],
        ),
        (
            _with(generationConfig={"maxOutputTokens": "many"}),
            [
                (
                    "generation_config.max_output_tokens",
                    "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), \"many\"",
                )
            ],
        ),
        (
            _with(generationConfig={"topK": 1.5}),
            [("generation_config.top_k", "Invalid value at 'generation_config.top_k' (TYPE_INT32), 1.5")],
        ),
        (
            _with(generationConfig={"seed": 2**31}),
            [("generation_config.seed", "Invalid value at 'generation_config.seed' (TYPE_INT32), 2147483648")],
        ),
        (
            _with(generationConfig={"temperature": True}),
            [("generation_config.temperature", "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), true")],
        ),
        (
            _raw({"contents": [_user({"text": 5})]}),
            [("contents[0].parts[0].text", "Invalid value at 'contents[0].parts[0].text' (TYPE_STRING), 5")],
        ),
        (
            _raw({"contents": [_user({"text": "x", "thought": "maybe"})]}),
            [
                (
                    "contents[0].parts[0].thought",
                    "Invalid value at 'contents[0].parts[0].thought' (TYPE_BOOL), \"maybe\"",
                )
            ],
        ),
        (
            _raw({"contents": [_user({"inlineData": {"mimeType": "image/png", "data": "data:image/png;base64,AA"}})]}),
            [
                (
                    "contents[0].parts[0].inline_data.data",
                    "Invalid value at 'contents[0].parts[0].inline_data.data' (TYPE_BYTES), "
                    'Base64 decoding failed for "data:image/png;base64,AA"',
                )
            ],
        ),
        (
            _raw({"contents": [_user({"text": "x", "thoughtSignature": "AAAAA"})]}),
            [
                (
                    "contents[0].parts[0].thought_signature",
                    "Invalid value at 'contents[0].parts[0].thought_signature' (TYPE_BYTES), "
                    'Base64 decoding failed for "AAAAA"',
                )
            ],
        ),
        (
            _with(generationConfig=[]),
            [
                (
                    None,
                    'Invalid JSON payload received. Unknown name "generationConfig": '
                    "Proto field is not repeating, cannot start list.",
                )
            ],
        ),
        (
            _with(generationConfig={"temperature": {"value": 1}}),
            [
                (
                    "generation_config",
                    "Invalid value at 'generation_config' (temperature), Starting an object on a scalar field",
                )
            ],
        ),
        (
            _raw({"contents": ["Bonjour"]}),
            [("contents[0]", f"Invalid value at 'contents[0]' ({URL}.Content), \"Bonjour\"")],
        ),
        (
            _raw({"contents": [_user({"text": "x", "inlineData": {"mimeType": "image/png", "data": PNG}})]}),
            [
                (
                    "contents[0].parts[0]",
                    "Invalid value at 'contents[0].parts[0]' (oneof), "
                    "oneof field 'data' is already set. Cannot set 'inlineData'",
                )
            ],
        ),
    ],
    ids=[
        "root-array",
        "unknown-top-level",
        "vertex-labels",
        "unknown-nested",
        "bad-category",
        "image-category",
        "bad-threshold",
        "bad-mode",
        "int32-word",
        "int32-fraction",
        "int32-overflow",
        "float-bool",
        "string-number",
        "bool-word",
        "data-url",
        "bad-signature",
        "list-on-message",
        "object-on-scalar",
        "scalar-for-message",
        "two-data-fields",
    ],
)
def test_parse_request_refuses_values_the_proto_cannot_take(raw, violations):
    _assert_field_refusal(_refusal(raw), *violations)


def test_parse_request_reports_every_proto_refusal_at_once():
    raw = _raw(
        {
            "contents": [_user({"text": "x"})],
            "generationConfig": {"foo": 1, "temperature": "hot"},
            "safetySettings": [{"category": "NOPE", "threshold": "BLOCK_NONE"}],
        }
    )

    _assert_field_refusal(
        _refusal(raw),
        (
            "generation_config",
            "Invalid JSON payload received. Unknown name \"foo\" at 'generation_config': Cannot find field.",
        ),
        ("generation_config.temperature", "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\""),
        (
            "safety_settings[0].category",
            f"Invalid value at 'safety_settings[0].category' ({URL}.HarmCategory), \"NOPE\"",
        ),
    )


def test_parse_request_caps_reported_refusals():
    error = _refusal(_raw({"contents": [1] * 500}))

    assert len(error.violations) == 100
    assert error.violations[-1] == ("contents[99]", f"Invalid value at 'contents[99]' ({URL}.Content), 1")


# --- passes 3 and 4: the request's own rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "* GenerateContentRequest.contents: contents is not specified\n"),
        (b"{}", "* GenerateContentRequest.contents: contents is not specified\n"),
        (_raw({"contents": []}), "* GenerateContentRequest.contents: contents is not specified\n"),
        (
            _raw({"contents": [_user()]}),
            "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n",
        ),
        (
            _raw({"contents": [_user({})]}),
            "* GenerateContentRequest.contents[0].parts[0].data: required oneof field 'data' must have one "
            "initialized field\n",
        ),
        (
            _raw({"contents": [_user({"text": ""})]}),
            "* GenerateContentRequest.contents[0].parts[0].data: required oneof field 'data' must have one "
            "initialized field\n",
        ),
        (
            _raw({"contents": [_user({"functionResponse": {"response": {"output": 1}}})]}),
            "* GenerateContentRequest.contents[0].parts[0].function_response.name: Name cannot be empty.\n",
        ),
        (
            _with(tools=[{"functionDeclarations": [{"name": "1st"}, {"name": "ok"}, {"name": "mcp/tool"}]}]),
            f"* GenerateContentRequest.tools[0].function_declarations[0].name: {BAD_NAME}\n"
            f"* GenerateContentRequest.tools[0].function_declarations[2].name: {BAD_NAME}\n",
        ),
        (
            _with(tools=[{"functionDeclarations": [{"name": "a" * 65}]}]),
            f"* GenerateContentRequest.tools[0].function_declarations[0].name: {BAD_NAME}\n",
        ),
        (
            _with(safetySettings=[{"category": "HARM_CATEGORY_DEROGATORY", "threshold": "BLOCK_NONE"}]),
            f"* GenerateContentRequest.safety_settings[0]: {PREDICATE}\n",
        ),
        (
            _with(safetySettings=[{"threshold": "BLOCK_NONE"}]),
            f"* GenerateContentRequest.safety_settings[0]: {PREDICATE}\n",
        ),
        (
            _with(generationConfig={"temperature": 2.5}),
            "* GenerateContentRequest.generation_config.temperature: temperature must be in the range [0.0, 2.0].\n",
        ),
        (
            _with(generationConfig={"stopSequences": ["a", "b", "c", "d", "e", "f"]}),
            "* GenerateContentRequest.generation_config.stop_sequences: stop_sequences must have at most 5 elements.\n",
        ),
        (
            _with(generationConfig={"responseMimeType": "text/csv"}),
            "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are `text/plain`, "
            "`application/json`, `application/xml`, `application/yaml` and `text/x.enum`.\n",
        ),
        (
            _raw({"contents": [_user(), _user({})], "generationConfig": {"temperature": -1}}),
            "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n"
            "* GenerateContentRequest.contents[1].parts[0].data: required oneof field 'data' must have one "
            "initialized field\n"
            "* GenerateContentRequest.generation_config.temperature: temperature must be in the range [0.0, 2.0].\n",
        ),
        (
            _with(safetySettings=[{"category": c, "threshold": "OFF"} for c in (*CATEGORIES, CATEGORIES[0])]),
            "Multiple safety settings with the same category.",
        ),
        (
            _raw({"contents": [_user({"text": "Bonjour"}, role="assistant")]}),
            "Please use a valid role: user, model.",
        ),
    ],
    ids=[
        "empty-body",
        "empty-object",
        "empty-contents",
        "empty-parts",
        "part-without-data",
        "empty-text",
        "unnamed-function-response",
        "bad-function-names",
        "long-function-name",
        "palm-category",
        "missing-category",
        "temperature-above-2",
        "six-stop-sequences",
        "bad-mime-type",
        "several-rules",
        "duplicate-category",
        "assistant-role",
    ],
)
def test_parse_request_refuses_requests_breaking_gemini_rules(raw, message):
    _assert_rule_refusal(_refusal(raw), message)


def test_parse_request_names_first_broken_field():
    error = _refusal(_raw({"contents": [_user({"text": "a"}), _user({"text": ""})]}))

    assert error.field_path == "contents[1].parts[0].data"
    assert error.param == "contents[1].parts[0].data"


# --- the error body and the path ------------------------------------------------------------------------------


def test_error_body_is_googles_bytes():
    body = error_body(400, "* GenerateContentRequest.contents: contents is not specified\n", "INVALID_ARGUMENT")

    assert body == (
        b'{\n  "error": {\n    "code": 400,\n'
        b'    "message": "* GenerateContentRequest.contents: contents is not specified\\n",\n'
        b'    "status": "INVALID_ARGUMENT"\n  }\n}\n'
    )


def test_error_body_carries_field_violations_only_when_given():
    body = json.loads(error_body(400, "m", "INVALID_ARGUMENT", violations=[("a.b", "m"), (None, "n")]))

    assert body["error"]["details"] == [
        {"@type": BAD_REQUEST, "fieldViolations": [{"field": "a.b", "description": "m"}, {"description": "n"}]}
    ]


def test_error_body_escapes_line_breaks_clients_split_on():
    assert b"\\u2028" in error_body(400, "a\u2028b", "INVALID_ARGUMENT")


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
        (418, "UNKNOWN"),
    ],
)
def test_google_status_pairs_http_status_with_rpc_code(status, name):
    assert google_status(status) == name
    assert GOOGLE_STATUS.get(status, "UNKNOWN") == name


def test_gemini_request_error_is_a_gateway_invalid_request():
    error = GeminiRequestError("Method not found.", status="NOT_FOUND", code=404)

    assert isinstance(error, InvalidRequestError)
    assert (error.code, error.http_status) == (ErrorCode.NOT_FOUND, 404)
    assert error.body() == _google(404, "Method not found.", "NOT_FOUND")


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        (
            GatewayProblem(status=400, code=ErrorCode.INVALID_REQUEST, message="Invalid JSON payload received."),
            b'{\n  "error": {\n    "code": 400,\n    "message": "Invalid JSON payload received.",\n'
            b'    "status": "INVALID_ARGUMENT"\n  }\n}\n',
        ),
        (
            GatewayProblem(status=401, code=ErrorCode.AUTHENTICATION, message="invalid API key"),
            b'{\n  "error": {\n    "code": 401,\n    "message": "invalid API key",\n'
            b'    "status": "UNAUTHENTICATED"\n  }\n}\n',
        ),
        (
            GatewayProblem(status=403, code=ErrorCode.PERMISSION_DENIED, message="this key may not use gemini-2.5-pro"),
            b'{\n  "error": {\n    "code": 403,\n    "message": "this key may not use gemini-2.5-pro",\n'
            b'    "status": "PERMISSION_DENIED"\n  }\n}\n',
        ),
        (
            GatewayProblem(status=429, code=ErrorCode.RATE_LIMITED, message="rate limit reached", retry_after=3.0),
            b'{\n  "error": {\n    "code": 429,\n    "message": "rate limit reached",\n'
            b'    "status": "RESOURCE_EXHAUSTED"\n  }\n}\n',
        ),
        (
            GatewayProblem(status=503, code=ErrorCode.UNAVAILABLE, message="the gateway cannot reach Redis"),
            b'{\n  "error": {\n    "code": 503,\n    "message": "the gateway cannot reach Redis",\n'
            b'    "status": "UNAVAILABLE"\n  }\n}\n',
        ),
    ],
    ids=["400", "401", "403", "429", "503"],
)
def test_render_error_writes_googles_bytes(problem, expected):
    assert render_error(problem) == expected
    assert render_error(problem) == _google(problem.status, problem.message, google_status(problem.status))


def test_render_error_names_a_cancelled_request_cancelled():
    problem = GatewayProblem(status=499, code=ErrorCode.CANCELLED, message="the client went away")

    assert json.loads(render_error(problem)) == {
        "error": {"code": 499, "message": "the client went away", "status": "CANCELLED"}
    }


def test_render_error_leaves_out_param_and_details():
    problem = GatewayProblem(status=400, code=ErrorCode.INVALID_REQUEST, message="bad model", param="model")

    assert set(json.loads(render_error(problem))["error"]) == {"code", "message", "status"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("gemini-2.5-flash:streamGenerateContent", ("gemini-2.5-flash", "streamGenerateContent")),
        ("gemini-2.0-flash-001:generateContent", ("gemini-2.0-flash-001", "generateContent")),
        ("models/gemini-flash-latest:generateContent", ("gemini-flash-latest", "generateContent")),
        ("tunedModels/mon-modele-42:generateContent", ("tunedModels/mon-modele-42", "generateContent")),
    ],
)
def test_parse_model_task_splits_model_and_method(path, expected):
    assert parse_model_task(path) == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("gemini-2.5-flash:countTokens", "Method not found."),
        ("gemini-2.5-flash:generatecontent", "Method not found."),
        ("gemini-2.5-flash", "Method not found."),
        (
            "Gemini Pro:generateContent",
            "models/Gemini Pro is not found for API version v1beta, or is not supported for generateContent. "
            "Call ListModels to see the list of available models and their supported methods.",
        ),
        (
            "models/:streamGenerateContent",
            "models/ is not found for API version v1beta, or is not supported for streamGenerateContent. "
            "Call ListModels to see the list of available models and their supported methods.",
        ),
    ],
    ids=["count-tokens", "lowercase-method", "no-method", "bad-model", "empty-model"],
)
def test_parse_model_task_refuses_with_googles_404(path, message):
    with pytest.raises(GeminiRequestError) as info:
        parse_model_task(path)

    error = info.value
    assert (error.http_status, error.status, error.message) == (404, "NOT_FOUND", message)
    assert error.body() == _google(404, message, "NOT_FOUND")
