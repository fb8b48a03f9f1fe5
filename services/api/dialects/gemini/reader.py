"""Passes 1 and 2 of reading a ``GenerateContentRequest``, as Google's front end reads a body.

1. JSON text (``decode_body``): ``Invalid JSON payload received. Unexpected token.``, then a snippet and a
   caret line.
2. JSON into the proto message (``Reader``, as protobuf's proto writer does): unknown names, values of the
   wrong kind, enum names and base64 it cannot read, each named by its snake_case proto path and noted as
   one field violation (``services.api.dialects.gemini.errors.Violation``).

Read as Google reads it: camelCase or snake_case names, ``null`` as unset, numbers in strings, enum names
in any case (``-`` read as ``_``) or as numbers, and a lone object where a list belongs (one element).
Not modelled: Google's parser also takes trailing commas, single quotes and bare keys, which msgspec
refuses.
"""

import math
import re
from collections.abc import Iterator
from typing import Any, Final

import msgspec

from services.api.dialects.gemini.errors import GeminiRequestError, Violation
from services.api.dialects.gemini.schemas import PROTO_PACKAGE, ProtoEnum, ProtoField, ProtoMessage, proto_fields
from shared.jsondepth import nesting_depth

__all__ = ["Reader", "decode_body"]

_MAX_VIOLATIONS = 100  # one body stays readable, however broken the request

# --- pass 2: JSON values into the message, as protobuf's proto writer does -------------------------------


class _RefusedError(Exception):
    """A value the proto writer cannot read; ``text`` is how Google quotes it back. Never leaves this module."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


_SKIP: Final = object()


def _url(field: ProtoField) -> str:
    if field.kind == "message":
        return f"type.googleapis.com/{PROTO_PACKAGE}.{field.target.proto or field.target.__name__}"
    if field.kind == "enum":
        return f"type.googleapis.com/{PROTO_PACKAGE}.{field.target.proto}"
    name = field.target or f"{PROTO_PACKAGE}.{''.join(w.title() for w in field.name.split('_'))}"
    return f"type.googleapis.com/{name}"


def _type_name(field: ProtoField) -> str:
    return _url(field) if field.kind in ("message", "object", "enum") else f"TYPE_{field.kind.upper()}"


def _dtoa(value: float) -> str:
    text = f"{value:.15g}"
    return text if float(text) == value else f"{value:.17g}"


def _text(value: Any) -> str:
    """A value as Google quotes it back: a string in double quotes, nothing escaped."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _dtoa(value)
    return "null" if value is None else str(value)


_INT32 = (-(2**31), 2**31 - 1)
_FLOAT_MAX = 3.4028234663852886e38
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NaN|-?Infinity")
_TRUE, _FALSE = frozenset({"true", "t", "yes", "y", "1"}), frozenset({"false", "f", "no", "n", "0"})
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*(={0,2})")


def _int32(value: Any) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value[:1] != " " and value[-1:] != " ":  # only a space is not stripped
        digits = value.strip(" \t\n\v\f\r")
        number = int(digits) if _INTEGER.fullmatch(digits) else None
    if number is None or not _INT32[0] <= number <= _INT32[1]:
        raise _RefusedError(_text(value))
    return number


def _float(value: Any) -> float:
    number: float | None = None
    if isinstance(value, str):
        number = float(value) if _NUMBER.fullmatch(value) else None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    if number is None or (math.isfinite(number) and abs(number) > _FLOAT_MAX):
        raise _RefusedError(_text(value))
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    folded = value.lower() if isinstance(value, str) and value.isascii() else None
    if folded in _TRUE or folded in _FALSE:
        return folded in _TRUE
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise _RefusedError(_text(value))


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _RefusedError(_text(value))


def _is_base64(text: str) -> bool:
    """Standard or URL-safe base64, padded or not; line breaks skipped (protobuf's reading)."""
    if "\n" in text or "\r" in text:
        text = text.replace("\n", "").replace("\r", "")
    match = _BASE64.fullmatch(text)
    if match is None:
        return False
    padding = len(match.group(1))
    length = len(text) - padding
    return length % 4 != 1 and (padding == 0 or (length + padding) % 4 == 0)


def _bytes(value: Any) -> str:
    if not isinstance(value, str):
        raise _RefusedError(_text(value))
    if not _is_base64(value):
        raise _RefusedError(f'Base64 decoding failed for "{value}"')
    return value


def _enum(value: Any, spec: ProtoEnum) -> str:
    """A name (any case, ``-`` as ``_``) or a number, as its canonical name."""
    if isinstance(value, str):
        if value in spec.names or not spec.names:
            return value
        upper = "".join(c.upper() if c.isascii() else c for c in value).replace("-", "_")
        if upper in spec.names:
            return upper
        if not _INTEGER.fullmatch(value):
            raise _RefusedError(_text(value))
    number = _int32(value)
    return spec.names[number] if spec.numbered and 0 <= number < len(spec.names) else str(number)


_CONVERT = {"string": _string, "bool": _bool, "int32": _int32, "float": _float, "bytes": _bytes}


class Reader:
    """Reads a decoded body into camelCase dicts ``msgspec.convert`` takes, noting each refusal."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self.violations: list[Violation] = []

    def _fail(self, field: str, message: str) -> None:
        if len(self.violations) < _MAX_VIOLATIONS:
            self.violations.append((field or None, message))

    def _unknown(self, loc: str, name: str, why: str) -> None:
        at = f" at '{loc}'" if loc else ""
        self._fail(loc, f'Invalid JSON payload received. Unknown name "{name}"{at}: {why}')

    def _invalid(self, loc: str, type_name: str, text: str) -> None:
        at = f" at '{loc}'" if loc else ""
        self._fail(loc, f"Invalid value{at} ({type_name}), {text}")

    def message(self, value: dict[str, Any], cls: type[ProtoMessage], loc: str) -> dict[str, Any]:
        fields = proto_fields(cls)
        out: dict[str, Any] = {}
        oneofs: set[str] = set()
        for key, item in value.items():
            field = fields.get(key)
            if field is None:
                self._unknown(loc, key, "Cannot find field.")
                continue
            if item is None:  # null leaves a field unset, and its oneof free
                continue
            if field.oneof is not None:
                if field.oneof in oneofs:
                    self._invalid(loc, "oneof", f"oneof field '{field.oneof}' is already set. Cannot set '{key}'")
                    continue
                oneofs.add(field.oneof)
            at = f"{loc}.{field.name}" if loc else field.name
            if isinstance(item, list) and field.kind != "any":
                if field.repeated:
                    out[field.wire] = self._elements(item, field, at, loc)
                else:
                    self._unknown(loc, key, "Proto field is not repeating, cannot start list.")
                continue
            read = self._value(item, field, at, loc)
            if read is not _SKIP:
                out[field.wire] = [read] if field.repeated else read  # an object where a list belongs: one element
        return out

    def _elements(self, items: list[Any], field: ProtoField, at: str, loc: str) -> list[Any]:
        if len(items) > self.max_items:
            message = (
                f"Invalid JSON payload received. '{at}' has {len(items)} elements; at most {self.max_items} are read."
            )
            raise GeminiRequestError(message, field_path=at)
        out = []
        for index, item in enumerate(_flatten(items)):
            read = self._value(item, field, f"{at}[{index}]", loc)
            if read is not _SKIP:
                out.append(read)
        return out

    def _value(self, item: Any, field: ProtoField, at: str, loc: str) -> Any:
        if field.kind == "any":
            return item
        if isinstance(item, dict):
            if field.kind == "message":
                return self.message(item, field.target, at)
            if field.kind == "object":
                return item
            self._invalid(loc, field.name, "Starting an object on a scalar field")
            return _SKIP
        try:
            if field.kind in ("message", "object"):
                raise _RefusedError(_text(item))
            return _enum(item, field.target) if field.kind == "enum" else _CONVERT[field.kind](item)
        except _RefusedError as refused:
            self._invalid(at, _type_name(field), refused.text)
            return _SKIP


def _flatten(items: list[Any]) -> Iterator[Any]:
    """A list's elements, a list inside it read as more elements of the same field; nulls left out."""
    for item in items:
        if isinstance(item, list):
            yield from _flatten(item)
        elif item is not None:
            yield item


# --- pass 1: the JSON text --------------------------------------------------------------------------------

_BOM = b"\xef\xbb\xbf"
_AT_BYTE = re.compile(r"\(byte (\d+)\)")


def _token_start(body: bytes, position: int) -> int:
    """Where the token msgspec stopped in starts: it reports a bad literal (``nope``) past its first letters."""
    for back in (4, 5):
        start = position - back
        if start >= 0 and body[start : start + 1] in (b"n", b"t", b"f") and body[start - 1 : start] in b" \t\r\n:[,":
            return start
    return position


def _syntax_error(body: bytes, exc: Exception) -> GeminiRequestError:
    """Google's words for a body that is not JSON, with 20 bytes either side of where reading stopped."""
    if "truncated" in str(exc):
        return GeminiRequestError("Invalid JSON payload received. Unexpected end of string. Expected a value.\n\n^")
    message = "Invalid JSON payload received. Unexpected token."
    found = _AT_BYTE.search(str(exc))
    if found is not None:
        position = _token_start(body, int(found.group(1)))
        start = max(0, position - 20)
        before = body[start:position].decode("utf-8", "replace")
        after = body[position : position + 20].decode("utf-8", "replace")
        message += f"\n{before}{after}\n{' ' * len(before)}^"
    return GeminiRequestError(message)


def decode_body(body: bytes, max_depth: int) -> Any:
    """Pass 1: the JSON value ``body`` holds, or ``GeminiRequestError`` with Google's words for why not."""
    body = body.removeprefix(_BOM)  # Google skips one
    if not body.strip():
        return {}  # an empty body is an empty message
    depth = nesting_depth(body)
    if depth > max_depth:
        raise GeminiRequestError(
            f"Invalid JSON payload received. Message too deep: {depth} levels of nesting; at most {max_depth} are read."
        )
    try:
        return _json(body)
    except UnicodeDecodeError:  # Google reads bytes that are not UTF-8 as blanks
        return _json(body.decode("utf-8", "replace").encode())


def _json(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:  # ValidationError: a number past a double
        raise _syntax_error(body, exc) from exc
