"""Bearer JWTs: HS256 with the configured secret; ``sub`` is the user, ``tier`` the plan, ``exp`` required."""

import time
from typing import Any, Literal, get_args

import jwt

from shared.errors import AuthError, ErrorCode
from shared.jobs import Principal

__all__ = ["TIERS", "Tier", "issue_token", "require_paid", "verify_token"]

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
    return Principal(user_id=subject, tier=tier)


def require_paid(principal: Principal) -> Principal:
    if principal.tier == "free":
        raise AuthError(
            "This endpoint requires a Pro or Enterprise tier; your tier is free.", code=ErrorCode.PERMISSION_DENIED
        )
    return principal
