"""JSON bytes for the wire: every body and SSE payload the API writes is encoded here.

msgspec writes non-ASCII characters raw, which JSON allows; but U+2028 and U+2029 (and U+0085) are line
breaks to clients that split text into lines with ``str.splitlines`` (``requests``' ``iter_lines`` with
``decode_unicode``, httpx's ``aiter_lines``, JavaScript engines before ES2019), so a frame carrying one is
cut in two. They can only occur inside JSON strings, where ``\\uXXXX`` escapes mean the same text.
"""

from typing import Any

import msgspec

__all__ = ["encode_json", "escape_line_breaks"]

_encode = msgspec.json.encode
_ESCAPES = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"), (b"\xc2\x85", b"\\u0085"))


def encode_json(value: Any) -> bytes:
    """``value`` as JSON, with the characters that break line-splitting clients escaped."""
    return escape_line_breaks(_encode(value))


def escape_line_breaks(out: bytes) -> bytes:
    """JSON text (from elsewhere: a store's) with the characters that break line-splitting clients escaped."""
    if out.isascii():  # the common case, and a scan ten times faster than looking for the sequences
        return out
    if b"\xe2\x80" in out or b"\xc2\x85" in out:
        for raw, escaped in _ESCAPES:
            out = out.replace(raw, escaped)
    return out
