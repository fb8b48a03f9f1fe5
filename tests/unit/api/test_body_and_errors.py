from typing import Any

import msgspec
import pytest

from services.api.body import decode_body
from services.api.dialects.ai import errors as ai_errors
from services.api.dialects.ai.schemas import AiChatRequest
from services.api.dialects.openai import errors as openai_errors
from services.api.dialects.openai.schemas import ChatCompletionRequest
from services.api.errors import STATUS, GatewayProblem, status_for
from shared.errors import ErrorCode, InvalidRequestError

CHAT = msgspec.json.Decoder(ChatCompletionRequest)
AI_CHAT = msgspec.json.Decoder(AiChatRequest)
MESSAGES = '"messages":[{"role":"user","content":"hi"}]'


def _body(extra: str = "") -> bytes:
    return ('{"model":"gpt-4o",' + MESSAGES + extra + "}").encode()


def _decode_error(decoder: msgspec.json.Decoder[Any], raw: bytes) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        decode_body(decoder, raw)
    return info.value


# --- decode_body -----------------------------------------------------------------------------------


def test_decode_body_returns_typed_request():
    body = decode_body(CHAT, _body(',"temperature":0.5,"future_field":1'))

    assert isinstance(body, ChatCompletionRequest)
    assert body.model == "gpt-4o"
    assert body.temperature == 0.5
    assert body.messages[0].role == "user"


@pytest.mark.parametrize("raw", [b"", b"   ", b"\r\n\t"])
def test_decode_body_rejects_empty_body(raw):
    error = _decode_error(CHAT, raw)

    assert error.code == ErrorCode.INVALID_REQUEST
    assert error.message == "the request body is empty; send a JSON object"
    assert error.param is None


@pytest.mark.parametrize("raw", [b"{", b'{"model": }', b"not json", b'{"model":"a",}'])
def test_decode_body_rejects_malformed_json(raw):
    error = _decode_error(CHAT, raw)

    assert error.code == ErrorCode.INVALID_REQUEST
    assert error.message.startswith("We could not parse the JSON body of your request (")
    assert error.param is None
    assert isinstance(error.__cause__, msgspec.DecodeError)


def test_decode_body_names_top_level_field_in_type_error():
    error = _decode_error(CHAT, _body(',"temperature":"hot"'))

    assert error.param == "temperature"
    assert error.message == "Invalid 'temperature': Expected `float | null`, got `str`"
    assert error.code == ErrorCode.INVALID_REQUEST


def test_decode_body_does_not_coerce_numeric_strings():
    error = _decode_error(CHAT, _body(',"max_tokens":"5"'))

    assert error.param == "max_tokens"


def test_decode_body_names_out_of_range_field():
    error = _decode_error(CHAT, _body(',"temperature":3'))

    assert error.param == "temperature"
    assert error.message == "Invalid 'temperature': Expected `float` <= 2.0"


def test_decode_body_names_nested_list_item_field():
    error = _decode_error(CHAT, b'{"model":"m","messages":[{"role":"user","content":"a"},{"role":"wizard"}]}')

    assert error.param == "messages.[1].role"
    assert error.message == "Invalid 'messages.[1].role': Invalid enum value 'wizard'"


def test_decode_body_names_first_message_role():
    error = _decode_error(CHAT, b'{"model":"m","messages":[{"role":7,"content":"a"}]}')

    assert error.param == "messages.[0].role"


def test_decode_body_names_deeply_nested_field():
    raw = b'{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":5}}]}]}'

    error = _decode_error(CHAT, raw)

    assert error.param == "messages.[0].content.[0].image_url.url"


def test_decode_body_names_list_for_missing_nested_field():
    error = _decode_error(CHAT, b'{"model":"m","messages":[{"content":"a"}]}')

    assert error.param == "messages.[0]"
    assert error.message == "Invalid 'messages.[0]': Object missing required field `role`"


def test_decode_body_reports_top_level_shape_without_param():
    error = _decode_error(CHAT, b"[]")

    assert error.param is None
    assert error.message == "invalid request body: Expected `object`, got `array`"


def test_decode_body_applies_ai_dialect_ranges():
    error = _decode_error(AI_CHAT, b'{"messages":[{"role":"user","content":"a"}],"max_tokens":20000}')

    assert error.param == "max_tokens"
    assert error.message == "Invalid 'max_tokens': Expected `int` <= 16384"


# --- the status table ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_has_an_http_status(code):
    assert code in STATUS
    assert 400 <= STATUS[code] <= 599


def test_status_table_has_no_extra_keys():
    assert set(STATUS) == set(ErrorCode)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("invalid_request", 400),
        ("authentication", 401),
        ("permission_denied", 403),
        ("model_not_found", 404),
        ("request_too_large", 413),
        ("rate_limited", 429),
        ("upstream_auth", 502),
        ("upstream_rate_limited", 429),
        ("upstream_overloaded", 503),
        ("upstream_timeout", 504),
        ("no_worker", 503),
        ("cancelled", 499),
        ("internal", 500),
    ],
)
def test_status_for_maps_code_values(code, status):
    assert status_for(code) == status


def test_status_for_unknown_code_is_500():
    assert status_for("flux_capacitor") == 500


# --- OpenAI error body -----------------------------------------------------------------------------


def _openai(code: ErrorCode, message: str = "msg", param: str | None = None) -> dict[str, object]:
    problem = GatewayProblem(status=STATUS[code], code=code, message=message, param=param)
    body = msgspec.json.decode(openai_errors.render_error(problem))
    assert isinstance(body, dict)
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error, dict)
    return error


@pytest.mark.parametrize("code", list(ErrorCode))
def test_openai_error_body_has_exactly_four_keys(code):
    error = _openai(code)

    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] == "msg"
    assert error["param"] is None
    assert isinstance(error["code"], str)
    assert (error["type"] == "server_error") is (STATUS[code] >= 500)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            ErrorCode.AUTHENTICATION,
            {"message": "bad token", "type": "authentication_error", "param": None, "code": "invalid_api_key"},
        ),
        (
            ErrorCode.PERMISSION_DENIED,
            {"message": "bad token", "type": "permission_error", "param": None, "code": "permission_denied"},
        ),
        (
            ErrorCode.RATE_LIMITED,
            {"message": "bad token", "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"},
        ),
        (
            ErrorCode.UPSTREAM_RATE_LIMITED,
            {"message": "bad token", "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"},
        ),
        (
            ErrorCode.UPSTREAM_ERROR,
            {"message": "bad token", "type": "server_error", "param": None, "code": "upstream_error"},
        ),
        (
            ErrorCode.UPSTREAM_TIMEOUT,
            {"message": "bad token", "type": "server_error", "param": None, "code": "upstream_timeout"},
        ),
        (
            ErrorCode.INTERNAL,
            {"message": "bad token", "type": "server_error", "param": None, "code": "internal"},
        ),
        (
            ErrorCode.INVALID_REQUEST,
            {"message": "bad token", "type": "invalid_request_error", "param": None, "code": "invalid_request"},
        ),
        (
            ErrorCode.REQUEST_TOO_LARGE,
            {"message": "bad token", "type": "invalid_request_error", "param": None, "code": "request_too_large"},
        ),
    ],
)
def test_openai_error_body_shape_for_code(code, expected):
    assert _openai(code, "bad token") == expected


def test_openai_error_body_carries_param():
    assert _openai(ErrorCode.MODEL_NOT_FOUND, "The model `x` does not exist.", "model") == {
        "message": "The model `x` does not exist.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


def test_openai_render_error_exact_bytes():
    problem = GatewayProblem(status=401, code=ErrorCode.AUTHENTICATION, message="missing bearer token")

    assert openai_errors.render_error(problem) == (
        b'{"error":{"message":"missing bearer token","type":"authentication_error","param":null,'
        b'"code":"invalid_api_key"}}'
    )


def test_openai_error_object_passes_unknown_code_through():
    assert openai_errors.error_object(500, "weird", "m") == {
        "message": "m",
        "type": "server_error",
        "param": None,
        "code": "weird",
    }


# --- AI error body ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", list(ErrorCode))
def test_ai_error_body_has_detail_and_code(code):
    problem = GatewayProblem(status=STATUS[code], code=code, message="msg")

    assert msgspec.json.decode(ai_errors.render_error(problem)) == {"detail": "msg", "code": code.value}


def test_ai_error_body_adds_param_when_present():
    problem = GatewayProblem(status=400, code=ErrorCode.INVALID_REQUEST, message="too hot", param="temperature")

    assert ai_errors.render_error(problem) == b'{"detail":"too hot","code":"invalid_request","param":"temperature"}'


def test_ai_error_body_exact_bytes_for_rate_limit():
    problem = GatewayProblem(status=429, code=ErrorCode.RATE_LIMITED, message="slow down", retry_after=3.0)

    assert ai_errors.render_error(problem) == b'{"detail":"slow down","code":"rate_limited"}'
