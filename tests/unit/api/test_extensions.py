"""The original API's ``tone`` and ``image`` on ``/v1/chat/completions``, as the canonical job gets them
(``chat_request``: pure, no sockets); every provider then translates that job as any other."""

import json

import pytest

from services.api.dialects.openai.extensions import TONES
from services.api.dialects.openai.requests import chat_request
from services.api.settings import ApiSettings
from shared.catalog import load_catalog
from shared.errors import GatewayError
from shared.jobs import ImagePart, TextPart

SETTINGS = ApiSettings(jwt_secret="x" * 40)
CATALOG = load_catalog()
PNG = "data:image/png;base64,iVBORw0KGgo="


def _request(**fields: object) -> tuple[object, object]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Describe it"}], **fields}
    _, spec = chat_request(json.dumps(body).encode(), SETTINGS, CATALOG)
    return spec.messages, spec.params


@pytest.mark.parametrize("tone", ["precise", "balanced", "creative"])
def test_a_tone_adds_its_instruction_and_its_temperature(tone: str) -> None:
    messages, params = _request(tone=tone)
    assert [m.role for m in messages] == ["system", "user"]  # type: ignore[attr-defined]
    assert messages[0].content == TONES[tone].instruction  # type: ignore[index]
    assert params.temperature == TONES[tone].temperature  # type: ignore[attr-defined]
    assert "tone" not in params.extra  # type: ignore[attr-defined]


def test_the_clients_temperature_wins_and_no_tone_adds_nothing() -> None:
    _, params = _request(tone="creative", temperature=0.3)
    assert params.temperature == 0.3  # type: ignore[attr-defined]
    messages, params = _request()
    assert [m.role for m in messages] == ["user"] and params.temperature is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("tone", ["loud", "", "PRECISE", 3])
def test_an_unknown_tone_is_a_400_naming_it(tone: object) -> None:
    with pytest.raises(GatewayError) as refused:
        _request(tone=tone)
    assert refused.value.param == "tone" and "tone" in refused.value.message


def test_an_image_joins_the_last_user_message() -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "and this?"}]},
        ],
        "image": PNG,
    }
    _, spec = chat_request(json.dumps(body).encode(), SETTINGS, CATALOG)
    assert spec.messages[0].content == "first"
    assert spec.messages[2].content == [TextPart(text="and this?"), ImagePart(url=PNG)]
    assert "image" not in spec.params.extra


@pytest.mark.parametrize("image", ["file:///etc/passwd", "data:text/plain;base64,aGk=", "gopher://x", " "])
def test_an_image_that_is_not_an_image_url_is_a_400(image: str) -> None:
    with pytest.raises(GatewayError) as refused:
        _request(image=image)
    assert refused.value.param == "image"


def test_an_image_needs_a_user_message() -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "hi"}], "image": PNG}
    with pytest.raises(GatewayError) as refused:
        chat_request(json.dumps(body).encode(), SETTINGS, CATALOG)
    assert refused.value.param == "image"
