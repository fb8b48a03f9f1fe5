"""AWS Signature Version 4 for S3 requests, as small pure functions (no I/O, no clock: the caller passes the time).

``sign(...)`` returns the headers a request needs (``x-amz-date``, ``x-amz-content-sha256``,
``x-amz-security-token`` with temporary credentials, and ``authorization``); the functions it is made of
follow the steps of AWS's description: canonical request, string to sign, signing key, signature. S3 signs the
path as sent, each segment URI-encoded once (``quote_path``), and the hex SHA-256 of the body as the payload
hash (``payload_hash``). The secret key enters only ``signing_key``; nothing here logs.
"""

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

__all__ = [
    "ALGORITHM",
    "EMPTY_PAYLOAD_HASH",
    "Credentials",
    "amz_date",
    "authorization",
    "canonical_query",
    "canonical_request",
    "credential_scope",
    "payload_hash",
    "quote_path",
    "sign",
    "signing_key",
    "string_to_sign",
]

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_PAYLOAD_HASH = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    #: set for temporary credentials (STS, an instance role): sent as ``x-amz-security-token``
    session_token: str | None = field(default=None, repr=False)


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def amz_date(now: datetime) -> str:
    """``20240101T120000Z``: the request's time, in UTC."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def quote_path(path: str) -> str:
    """A path as S3 signs and receives it: every byte but unreserved ones (``A-Za-z0-9-_.~``) and ``/``
    percent-encoded from UTF-8, once (no normalisation: ``a//b`` and ``./`` stay, as S3 keys may hold them)."""
    return quote(path, safe="/~")


def _quote_component(text: str) -> str:
    return quote(text, safe="~")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """The query string, each name and value URI-encoded, sorted by name then value; also what is sent."""
    pairs = sorted((_quote_component(name), _quote_component(value)) for name, value in params)
    return "&".join(f"{name}={value}" for name, value in pairs)


def _canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """``name:value`` lines (names lowercased, values trimmed, inner runs of spaces made one) and the
    ``;``-joined names, both sorted by name."""
    cleaned = {name.lower().strip(): " ".join(value.split()) for name, value in headers.items()}
    names = sorted(cleaned)
    return "".join(f"{name}:{cleaned[name]}\n" for name in names), ";".join(names)


def canonical_request(method: str, path: str, query: str, headers: Mapping[str, str], content_hash: str) -> str:
    """``path`` as sent (``quote_path``), ``query`` as sent (``canonical_query``); ``headers`` are the signed
    ones, ``host`` among them."""
    lines, names = _canonical_headers(headers)
    return "\n".join([method.upper(), path, query, lines, names, content_hash])


def credential_scope(date: str, region: str, service: str) -> str:
    """``date`` is ``YYYYMMDD``."""
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(timestamp: str, scope: str, request: str) -> str:
    """``timestamp`` is the ``x-amz-date`` value, ``request`` the canonical request."""
    digest = hashlib.sha256(request.encode()).hexdigest()
    return "\n".join([ALGORITHM, timestamp, scope, digest])


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret_access_key}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def authorization(access_key_id: str, scope: str, signed_headers: str, signature: str) -> str:
    return f"{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"


def sign(
    method: str,
    host: str,
    path: str,
    query: str,
    content_hash: str,
    credentials: Credentials,
    region: str,
    now: datetime,
    *,
    headers: Mapping[str, str] | None = None,
    service: str = "s3",
) -> dict[str, str]:
    """The headers to send with the request, signed: ``host``, ``x-amz-date``, ``x-amz-content-sha256``,
    ``x-amz-security-token`` (with a session token), ``authorization``, and ``headers`` (all of them signed).

    ``host`` is the ``Host`` header's value (with the port when it is not the scheme's default); ``path`` and
    ``query`` are as sent (``quote_path``, ``canonical_query``); ``content_hash`` is ``payload_hash(body)``.
    """
    timestamp = amz_date(now)
    signed = {name.lower(): value for name, value in (headers or {}).items()}
    signed.update({"host": host, "x-amz-date": timestamp, "x-amz-content-sha256": content_hash})
    if credentials.session_token:
        signed["x-amz-security-token"] = credentials.session_token
    request = canonical_request(method, path, query, signed, content_hash)
    scope = credential_scope(timestamp[:8], region, service)
    key = signing_key(credentials.secret_access_key, timestamp[:8], region, service)
    signature = hmac.new(key, string_to_sign(timestamp, scope, request).encode(), hashlib.sha256).hexdigest()
    _, names = _canonical_headers(signed)
    return {**signed, "authorization": authorization(credentials.access_key_id, scope, names, signature)}
