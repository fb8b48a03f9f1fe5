"""Dependencies that authenticate a request: ``principal`` (any tier) and ``paid_principal`` (pro, enterprise)."""

from litestar import Request
from litestar.datastructures import State

from services.api.auth.tokens import TokenVerifier, require_paid
from shared.errors import AuthError
from shared.jobs import Principal

__all__ = ["provide_paid_principal", "provide_principal"]


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


def provide_principal(request: Request[object, object, State]) -> Principal:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier.verify(_bearer(request))


def provide_paid_principal(request: Request[object, object, State]) -> Principal:
    return require_paid(provide_principal(request))
