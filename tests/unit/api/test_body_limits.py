import base64

import msgspec
import pytest

from services.api.body import decode_body
from services.api.dialects.ai.schemas import AiChatRequest
from services.api.dialects.openai.schemas import CHAT_FIELDS, ChatCompletionRequest
from services.api.dialects.openai.translate import extra_fields
from services.api.images import check_image_url
from services.api.settings import ApiSettings
from shared.errors import InvalidRequestError

CHAT = msgspec.json.Decoder(ChatCompletionRequest)
AI_CHAT = msgspec.json.Decoder(AiChatRequest)
PREFIX = b'{"model":"m","messages":[{"role":"user","content":"hi"}]'
PARAM = "messages.[0].content.[1].image_url.url"


def _refused(raw: bytes, settings: ApiSettings | None = None) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        decode_body(CHAT, raw, settings or ApiSettings())
    return info.value


def _nested(levels: int) -> bytes:
    return PREFIX + b',"x":' + b"[" * levels + b"]" * levels + b"}"


def test_a_body_within_the_nesting_bound_decodes_and_one_beyond_it_is_refused() -> None:
    settings = ApiSettings(max_json_depth=10)

    assert decode_body(CHAT, _nested(9), settings).model == "m"  # 9 + the body's own object
    error = _refused(_nested(10), settings)
    assert error.message == "The request body nests arrays and objects 11 levels deep; at most 10 are allowed."


@pytest.mark.parametrize("levels", [970, 5000, 100_000])
def test_deep_nesting_is_refused_before_decoding_on_both_dialects(levels: int) -> None:
    assert "levels deep" in _refused(_nested(levels)).message
    with pytest.raises(InvalidRequestError):
        decode_body(AI_CHAT, _nested(levels))


def test_a_recursion_error_within_the_bound_is_still_the_clients_error() -> None:
    error = _refused(_nested(2000), ApiSettings(max_json_depth=100_000))
    assert error.message == "The request body nests arrays and objects too deeply."


@pytest.mark.parametrize("raw", [PREFIX + b',"user":"\xff"}', PREFIX + b',"x_unknown":"caf\xe9"}', b"\xff"])
def test_a_body_that_is_not_utf8_is_refused_even_in_a_field_the_dialect_ignores(raw: bytes) -> None:
    assert "not valid UTF-8" in _refused(raw).message
    with pytest.raises(InvalidRequestError):
        decode_body(AI_CHAT, raw)


@pytest.mark.parametrize(
    ("field", "value"), [("seed", b"9" * 40), ("max_tokens", b"9" * 12), ("seed", b"-" + b"9" * 20)]
)
def test_numbers_beyond_what_an_upstream_takes_are_refused(field: str, value: bytes) -> None:
    assert _refused(PREFIX + b',"' + field.encode() + b'":' + value + b"}").param == field


@pytest.mark.parametrize("value", [b"1" + b"0" * 5000, b"1e999", b"-1e400"])
def test_an_unknown_field_the_upstream_could_not_read_is_a_400_naming_it(value: bytes) -> None:
    raw = PREFIX + b',"x_big":' + value + b"}"
    with pytest.raises(InvalidRequestError) as info:
        extra_fields(raw, CHAT_FIELDS)
    assert info.value.param == "x_big"


def _with_image(url: str) -> bytes:
    parts = [{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": url}}]
    return msgspec.json.encode({"model": "m", "messages": [{"role": "user", "content": parts}]})


def test_image_urls_are_checked_while_decoding_with_the_settings_bound() -> None:
    small = "data:image/png;base64," + base64.b64encode(bytes(100)).decode()

    assert decode_body(CHAT, _with_image(small), ApiSettings(max_image_bytes=100)).messages
    assert _refused(_with_image(small), ApiSettings(max_image_bytes=99)).param == PARAM
    assert _refused(_with_image("file:///etc/passwd")).param == PARAM


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.png",
        "HTTP://EXAMPLE.COM/A.PNG",
        "http://127.0.0.1:8080/a?x=1#y",
        "data:image/png;base64,iVBORw0KGgo=",
        "data:image/svg+xml;base64,PHN2Zy8+",
        "data:image/jpeg;name=a.jpg;base64,/9j/4AA=",
    ],
)
def test_web_and_data_images_are_accepted(url: str) -> None:
    check_image_url(url, 1000, "p")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "the scheme 'file' is not accepted"),
        ("gopher://127.0.0.1:6379/_INFO", "the scheme 'gopher' is not accepted"),
        ("/etc/passwd", "a URL without a scheme is not accepted"),
        ("https://", "the URL has no host"),
        ("https://a b.example/x.png", "the URL contains spaces or control characters"),
        ("https://[::1/x.png", "the URL is malformed"),
        ("data:text/plain;base64,aGk=", "a data URL must hold a base64-encoded image"),
        ("data:image/png,raw", "a data URL must hold a base64-encoded image"),
        ("data:image/png;base64,", "not valid base64"),
        ("data:image/png;base64,abc", "not valid base64"),
        ("data:image/png;base64,ab$d", "not valid base64"),
        ("data:image/png;base64," + "A" * 2000, "the image is 1500 bytes; at most 1000 are accepted"),
    ],
)
def test_other_image_urls_are_refused_naming_the_param(url: str, why: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_image_url(url, 1000, PARAM)
    assert info.value.param == PARAM
    assert why in info.value.message and info.value.message.startswith(f"Invalid '{PARAM}': ")


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\xef\xbb\xbf" + PREFIX + b"}", "it starts with a byte-order mark"),
        (PREFIX + b',"user":"\\ud800"}', "a lone UTF-16 surrogate escape"),
        (PREFIX + b',"x":"a\\udc00b"}', "a lone UTF-16 surrogate escape"),
        (PREFIX + b',"x":NaN}', "JSON is malformed"),
    ],
)
def test_a_body_that_does_not_parse_says_why(raw: bytes, why: str) -> None:
    message = _refused(raw).message
    assert message.startswith("We could not parse the JSON body of your request (") and why in message


def test_a_surrogate_pair_escape_is_text() -> None:
    assert decode_body(CHAT, PREFIX + b',"user":"\\ud83d\\ude00"}').user == "\U0001f600"
