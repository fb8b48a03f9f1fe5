"""Strict request-body decoding: the body is decoded once, by the dialect's own typed decoder.

Litestar's own body parsing coerces (``"5"`` -> 5); OpenAI-style APIs answer such input with a 400,
and so do we. Errors name the offending field as ``param`` (``messages.[0].content``).

A body is refused before decoding when it is not UTF-8 (RFC 8259; a field the dialect ignores would
otherwise pass unchecked to the upstream) or nests deeper than ``max_json_depth`` levels in any field,
unknown ones included: a worker could not decode the job it would make (see ``shared.jsondepth``).
After decoding, a request that has bounds of its own to check (image URLs, say) checks them
(``LimitedBody``).
"""

import re
from typing import Protocol, TypeVar, runtime_checkable

import msgspec

from services.api.settings import ApiSettings
from shared.errors import InvalidRequestError
from shared.jsondepth import nesting_depth

__all__ = ["LimitedBody", "decode_body"]

T = TypeVar("T")

_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_HIGH, _LOW = rb"\\u[dD][89abAB][0-9a-fA-F]{2}", rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
_LONE_SURROGATE = re.compile(rb"%s(?!%s)|(?<!%s)%s" % (_HIGH, _LOW, _HIGH, _LOW))
_DEFAULTS = ApiSettings()


@runtime_checkable
class LimitedBody(Protocol):
    def check_limits(self, settings: ApiSettings) -> None:
        """Raise ``InvalidRequestError`` for a field beyond ``settings``' bounds."""
        ...


def _param(path: str) -> str:
    return re.sub(r"\[(\d+)\]", r".[\1]", path)


def _check_text(raw: bytes, max_depth: int) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(
            f"The request body is not valid UTF-8 (byte {exc.start}); send JSON encoded as UTF-8."
        ) from exc
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise InvalidRequestError(
            f"The request body nests arrays and objects {depth} levels deep; at most {max_depth} are allowed."
        )


def _why(raw: bytes, exc: msgspec.DecodeError) -> str:
    """msgspec's reason, or a clearer one where its own misleads."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return "it starts with a byte-order mark; send JSON without one"
    if _LONE_SURROGATE.search(raw):
        return "it holds a lone UTF-16 surrogate escape such as \\ud800; JSON text must be valid Unicode"
    return str(exc)


def decode_body(decoder: msgspec.json.Decoder[T], raw: bytes, settings: ApiSettings = _DEFAULTS) -> T:
    if not raw.strip():
        raise InvalidRequestError("the request body is empty; send a JSON object")
    _check_text(raw, settings.max_json_depth)
    try:
        body = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _PATH.search(text)
        if match is None:
            raise InvalidRequestError(f"invalid request body: {text}") from exc
        param = _param(match.group(1))
        raise InvalidRequestError(f"Invalid '{param}': {text[: match.start()]}", param=param or None) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"We could not parse the JSON body of your request ({_why(raw, exc)}).") from exc
    except RecursionError as exc:  # within max_json_depth but beyond this stack's room: still the client's
        raise InvalidRequestError("The request body nests arrays and objects too deeply.") from exc
    if isinstance(body, LimitedBody):
        body.check_limits(settings)
    return body
