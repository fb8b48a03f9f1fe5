"""Sealing a client's upstream key for the trip through Redis: authenticated encryption (AES-256-GCM) under a
key the API and the workers share (``CONDUIT_SEALING_KEY``), so that the key a client put in a proxy path is
never in clear in a job, a queue message, a log or any Redis value.

The AES key is derived from the setting with HKDF-SHA256 (any string of at least 32 characters will do; make
one with ``python -c 'import secrets; print(secrets.token_urlsafe(32))'``). A sealed value is bound to what it
was sealed for (``context``: the job's owner), so a sealed key copied into another user's job does not open.
A value sealed under another key, altered, or bound to another context fails to open with ``SealError``.
"""

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["MIN_SECRET", "SealError", "Sealer"]

#: the shortest sealing key accepted, in characters
MIN_SECRET = 32
_VERSION = "v1."
_NONCE = 12


class SealError(ValueError):
    """A sealed value that cannot be opened (another key, altered, or sealed for another context)."""


class Sealer:
    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_SECRET:
            raise ValueError(f"a sealing key has at least {MIN_SECRET} characters")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"conduit upstream keys v1")
        self._aead = AESGCM(derived.derive(secret.encode()))

    def __repr__(self) -> str:
        return "Sealer(***)"

    def seal(self, value: str, context: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, value.encode(), context.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, context: str) -> str:
        if not sealed.startswith(_VERSION):
            raise SealError("not a sealed value")
        try:
            raw = base64.b64decode(sealed[len(_VERSION) :], altchars=b"-_", validate=True)
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode()).decode()
        except (InvalidTag, ValueError) as exc:  # binascii.Error is a ValueError
            raise SealError("the sealed value does not open with this key (another CONDUIT_SEALING_KEY?)") from exc
