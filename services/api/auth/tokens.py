"""Bearer JWTs: HS256 with the configured secret; ``sub`` is the user, ``tier`` the plan, ``exp`` required."""

import time
from typing import Any, Literal, get_args

import jwt

from shared.errors import AuthError, ErrorCode
from shared.jobs import Principal

__all__ = ["TIERS", "Tier", "TokenVerifier", "issue_token", "require_paid", "verify_token"]

Tier = Literal["free", "pro", "enterprise"]
TIERS: tuple[str, ...] = get_args(Tier)
ALGORITHM = "HS256"
LEEWAY = 30


def issue_token(secret: str, user_id: str, tier: str, ttl: int = 86400) -> str:
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}")
    now = int(time.time())
    return jwt.encode({"sub": user_id, "tier": tier, "iat": now, "exp": now + ttl}, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str) -> Principal:
    """The principal of a valid token; ``AuthError`` for anything else (never another exception)."""
    return _verify(secret, token)[0]


def _verify(secret: str, token: str) -> tuple[Principal, float]:
    """The principal of a valid token and its ``exp``."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}, leeway=LEEWAY
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("the bearer token has expired") from exc
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid bearer token ({exc})") from exc
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

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._accepted: dict[str, tuple[Principal, float]] = {}

    def verify(self, token: str) -> Principal:
        known = self._accepted.get(token)
        if known is not None:
            principal, until = known
            if time.time() < until:
                return principal
            del self._accepted[token]
        principal, exp = _verify(self._secret, token)
        if len(self._accepted) >= self.SIZE:
            del self._accepted[next(iter(self._accepted))]
        self._accepted[token] = (principal, exp)
        return principal


def require_paid(principal: Principal) -> Principal:
    if principal.tier == "free":
        raise AuthError(
            "This endpoint requires a Pro or Enterprise tier; your tier is free.", code=ErrorCode.PERMISSION_DENIED
        )
    return principal
