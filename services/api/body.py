"""Strict request-body decoding: the body is decoded once, by the dialect's own typed decoder.

Litestar's own body parsing coerces (``"5"`` -> 5); OpenAI-style APIs answer such input with a 400,
and so do we. Errors name the offending field as ``param`` (``messages.[0].content``).
"""

import re
from typing import TypeVar

import msgspec

from shared.errors import InvalidRequestError

__all__ = ["decode_body"]

T = TypeVar("T")

_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


def _param(path: str) -> str:
    return re.sub(r"\[(\d+)\]", r".[\1]", path)


def decode_body(decoder: msgspec.json.Decoder[T], raw: bytes) -> T:
    if not raw.strip():
        raise InvalidRequestError("the request body is empty; send a JSON object")
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _PATH.search(text)
        if match is None:
            raise InvalidRequestError(f"invalid request body: {text}") from exc
        param = _param(match.group(1))
        raise InvalidRequestError(f"Invalid '{param}': {text[: match.start()]}", param=param or None) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"We could not parse the JSON body of your request ({exc}).") from exc
