"""Bearer JWTs: ``sub`` is the user, ``tier`` the plan, ``exp`` required.

Tokens are checked with exactly one algorithm (never the one a token names for itself): HS256 with
``CONDUIT_JWT_SECRET``, or, for tokens an identity provider issues, RS256/ES256 with a PEM public key
(``CONDUIT_JWT_PUBLIC_KEY``: a file or the PEM itself) or a JWKS file (``CONDUIT_JWT_JWKS``), whose key is
chosen by the token's ``kid``. ``iss`` and ``aud`` are checked when configured; a leeway of 30 s allows for
clock skew. Anything wrong (``alg: none``, an HS256 token signed with the public key, a tampered payload, an
unknown ``kid``, an expired token) is an ``AuthError`` (401), never another exception.
"""

import json
import time
from pathlib import Path
from typing import Any, Literal, get_args

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.config import SettingsError
from shared.errors import AuthError
from shared.jobs import Principal

__all__ = ["TIERS", "JwtConfig", "Tier", "TokenVerifier", "issue_token", "verify_token"]

Tier = Literal["free", "pro", "enterprise"]
TIERS: tuple[str, ...] = get_args(Tier)
ALGORITHM = "HS256"
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "ES512", "EdDSA")
LEEWAY = 30


def issue_token(secret: str, user_id: str, tier: str, ttl: int = 86400) -> str:
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}")
    now = int(time.time())
    return jwt.encode({"sub": user_id, "tier": tier, "iat": now, "exp": now + ttl}, secret, algorithm=ALGORITHM)


class JwtConfig:
    """The one algorithm and the key(s) tokens are checked with, from the API's settings."""

    def __init__(
        self,
        secret: str = "",
        public_key: str = "",
        jwks: str = "",
        algorithm: str = "",
        issuer: str = "",
        audience: str = "",
    ) -> None:
        self.issuer = issuer or None
        self.audience = audience or None
        self._keys: dict[str | None, Any] = {}
        if jwks or public_key:
            self.algorithm = algorithm or ""
            if self.algorithm and self.algorithm not in ASYMMETRIC:
                raise SettingsError(f"CONDUIT_JWT_ALGORITHM: {algorithm} does not go with a public key")
            if jwks:
                self._load_jwks(jwks)
            else:
                self._keys[None] = self._load_pem(public_key)
            if not self.algorithm:
                elliptic = any(isinstance(key, ec.EllipticCurvePublicKey) for key in self._keys.values())
                self.algorithm = "ES256" if elliptic else "RS256"
        elif secret:
            if algorithm and algorithm != ALGORITHM:
                raise SettingsError(f"CONDUIT_JWT_ALGORITHM: a shared secret goes with HS256, not {algorithm}")
            self.algorithm = ALGORITHM
            self._keys[None] = secret
        else:
            raise SettingsError(
                "CONDUIT_JWT_SECRET: required, unless CONDUIT_JWT_PUBLIC_KEY or CONDUIT_JWT_JWKS verifies tokens"
            )

    @staticmethod
    def _load_pem(value: str) -> Any:
        text = value if value.lstrip().startswith("-----BEGIN") else _read("CONDUIT_JWT_PUBLIC_KEY", value)
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as exc:
            raise SettingsError(f"CONDUIT_JWT_PUBLIC_KEY: not a public key in PEM ({exc})") from exc
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise SettingsError("CONDUIT_JWT_PUBLIC_KEY: an RSA or EC public key is needed")
        return key

    def _load_jwks(self, path: str) -> None:
        try:
            keyset = jwt.PyJWKSet.from_json(_read("CONDUIT_JWT_JWKS", path))
        except (jwt.PyJWTError, json.JSONDecodeError, ValueError) as exc:
            raise SettingsError(f"CONDUIT_JWT_JWKS: {exc}") from exc
        for key in keyset.keys:
            self._keys[key.key_id] = key.key
        if len(keyset.keys) == 1:
            self._keys[None] = keyset.keys[0].key  # a token without kid uses the only key

    def key_for(self, token: str) -> Any:
        if list(self._keys) == [None]:
            return self._keys[None]
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid bearer token ({exc})") from exc
        if kid not in self._keys:
            raise AuthError("invalid bearer token (no key for its kid)")
        return self._keys[kid]


def _read(variable: str, path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise SettingsError(f"{variable}: {exc}") from exc


_NUMERIC_DATES = ("exp", "nbf", "iat")


def verify_token(config: JwtConfig | str, token: str) -> Principal:
    """The principal of a valid token; ``AuthError`` for anything else (never another exception)."""
    return _verify(config if isinstance(config, JwtConfig) else JwtConfig(secret=config), token)[0]


def _verify(config: JwtConfig, token: str) -> tuple[Principal, float]:
    """The principal of a valid token and its ``exp``."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            config.key_for(token),
            algorithms=[config.algorithm],
            options={"require": ["exp", "sub"]},
            leeway=LEEWAY,
            issuer=config.issuer,
            audience=config.audience,
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("the bearer token has expired") from exc
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise AuthError(f"invalid bearer token ({exc})") from exc
    for name in _NUMERIC_DATES:  # RFC 7519 NumericDate is a JSON number; PyJWT would take "1700000000" too
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise AuthError(f"invalid bearer token (the {name} claim must be a number, a NumericDate)")
    tier = claims.get("tier")
    subject = claims.get("sub")
    if tier not in TIERS:
        raise AuthError("invalid bearer token (the tier claim must be free, pro or enterprise)")
    if not isinstance(subject, str) or not subject:
        raise AuthError("invalid bearer token (no subject)")
    return Principal(user_id=subject, tier=tier), float(claims["exp"])


class TokenVerifier:
    """``verify_token`` with a memory of the tokens it accepted, until their ``exp``: a client sends the same
    bearer token with every request, and checking its signature and claims again was the largest single cost
    of a request in the API (15 % of its CPU). A token is only ever remembered as valid, never as invalid,
    and for no longer than it is valid; the memory is bounded (oldest first out)."""

    SIZE = 4096

    def __init__(self, config: JwtConfig) -> None:
        self.config = config
        self._accepted: dict[str, tuple[Principal, float]] = {}

    def verify(self, token: str) -> Principal:
        known = self._accepted.get(token)
        if known is not None:
            principal, until = known
            if time.time() < until:
                return principal
            del self._accepted[token]
        principal, exp = _verify(self.config, token)
        if len(self._accepted) >= self.SIZE:
            del self._accepted[next(iter(self._accepted))]
        self._accepted[token] = (principal, exp)
        return principal
