"""Dependencies that authenticate a request: ``principal`` (any tier) and ``paid_principal`` (a tier that may
generate).

``Authorization: Bearer <token>`` (or ``x-api-key: <token>``, for SDKs that send that) carries either an
API key (``sk-conduit-…``, looked up in Redis on every request, so a revoked one fails at once everywhere)
or a JWT. The key's record, when there is one, stays on the request for the admission (its own limits).
"""

import logging
import time

from litestar import Request
from litestar.datastructures import State

from services.api.auth.keys import ApiKey, KeyStore, is_api_key
from services.api.auth.tokens import TokenVerifier
from services.api.tiers import TierPolicy
from shared.errors import AuthError, ErrorCode, UnavailableError
from shared.jobs import Principal

__all__ = ["api_key_of", "provide_paid_principal", "provide_principal"]

log = logging.getLogger("conduit.api")


def _bearer(request: Request[object, object, State]) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    if api_key:
        return api_key
    if header:
        raise AuthError("the Authorization header must be `Bearer <token>`")
    raise AuthError("missing bearer token: send `Authorization: Bearer <token>`")


async def _from_key(request: Request[object, object, State], secret: str) -> Principal:
    store: KeyStore = request.app.state.api_keys
    try:
        record = await store.lookup(secret)
    except Exception as exc:
        raise UnavailableError("the gateway cannot reach Redis to check your API key; try again shortly") from exc
    now = time.time()
    if record is None:
        raise AuthError("invalid API key")
    if record.revoked:
        raise AuthError("this API key was revoked")
    if not record.usable(now):
        raise AuthError("this API key has expired")
    try:
        await store.touch(secret, record, now)
    except Exception as exc:  # a missed last-used time is not worth refusing the request
        log.warning("could not record the use of key %s: %s", record.id, exc)
    request.scope.setdefault("state", {})["api_key"] = record
    return Principal(user_id=record.user, tier=record.tier, key_id=record.id)


def api_key_of(request: Request[object, object, State]) -> ApiKey | None:
    """The API key the request authenticated with, if it used one."""
    record: ApiKey | None = request.scope.get("state", {}).get("api_key")
    return record


async def provide_principal(request: Request[object, object, State]) -> Principal:
    token = _bearer(request)
    if is_api_key(token):
        return await _from_key(request, token)
    verifier: TokenVerifier = request.app.state.verifier
    return verifier.verify(token)


async def provide_paid_principal(request: Request[object, object, State]) -> Principal:
    principal = await provide_principal(request)
    tiers: dict[str, TierPolicy] = request.app.state.tiers
    if not tiers[principal.tier].generation:
        allowed = " or ".join(name.capitalize() for name, policy in tiers.items() if policy.generation)
        raise AuthError(
            f"This endpoint requires a {allowed} tier; your tier is {principal.tier}.",
            code=ErrorCode.PERMISSION_DENIED,
        )
    return principal
