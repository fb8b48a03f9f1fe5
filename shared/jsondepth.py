"""How deeply a JSON text nests, measured without recursion (so without a recursion limit to hit).

JSON decoders here (msgspec, the stdlib's ``json`` that kombu uses) recurse once per level and give up near
Python's recursion limit (about 1,000 levels, fewer the deeper the caller's own stack). A text is measured
by removing its strings and counting brackets, all in C passes but for one over the brackets themselves:
escaped backslashes and quotes go first (``bytes.replace``, pairs left to right as JSON reads them), then
every byte but quotes and brackets (``bytes.translate``), then what lies between quotes (a split): a
chat of 85 kB is measured in about 0.3 ms, where a regular expression over its strings took 1.6 ms.
"""

import itertools
import re

__all__ = ["nesting_depth", "flatten_below"]

_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_NOT_QUOTES_OR_BRACKETS = bytes(set(range(256)) - set(b'"[]{}'))
_STEP = [0] * 256
for _open in b"[{":
    _STEP[_open] = 1
for _close in b"]}":
    _STEP[_close] = -1


def nesting_depth(text: bytes) -> int:
    """The deepest level of arrays and objects in ``text`` (``{}`` is 1, ``{"a": [1]}`` 2, a scalar 0).

    For a text that is not JSON (an unclosed string, say), the number is a guess; its decoder refuses it."""
    if b"\\" in text:  # escaped backslashes and quotes go first: the rest of an escape holds no quote
        text = text.replace(rb"\\", b"").replace(rb"\"", b"")
    outside = text.translate(None, _NOT_QUOTES_OR_BRACKETS).split(b'"')[::2]  # every quote opens or closes a string
    brackets = b"".join(outside).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)


def flatten_below(text: bytes, depth: int) -> bytes:
    """``text`` with each array or object deeper than ``depth`` levels replaced by ``null``, so that a
    decoder can read its outer levels, whatever lies deeper."""
    pieces: list[bytes] = []
    level = 0
    kept = 0  # where the text not yet copied starts
    for token in _TOKEN.finditer(text):
        char = text[token.start()]
        if char in b"[{":
            level += 1
            if level == depth + 1:
                pieces.append(text[kept : token.start()])
        elif char in b"]}":
            level -= 1
            if level == depth:
                pieces.append(b"null")
                kept = token.end()
    if level <= depth:
        pieces.append(text[kept:])
    return b"".join(pieces)
