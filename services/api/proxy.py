"""What the proxy endpoints share: the upstream a client named in the path, checked against the egress policy,
and the key it gave, sealed for the trip through Redis (``UpstreamOverride``).

The upstream's base URL is one path segment, percent-encoded (``https%3A%2F%2Fapi.example.com%2Fv1``). The
server decodes a path before routing, which would split it at its ``%2F``s: ``ProxyPaths`` (an ASGI wrapper
before routing) hands the app the path with the ``/`` inside a segment still encoded, so the routes see one
segment, which ``upstream_segment`` decodes. The same wrapper masks the key in the path (and a ``key=`` query
parameter) in the scope the server's access log reads, so no log line carries a client's upstream key.
"""

import re
from typing import Any, Literal, cast
from urllib.parse import unquote

from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from services.api.settings import ApiSettings
from services.proxy_config import proxy_policy, proxy_sealer
from shared.egress import EgressRefusedError, parse_upstream
from shared.errors import ErrorCode, InvalidRequestError, UnavailableError
from shared.jobs import UpstreamOverride

__all__ = ["PREFIX", "ProxyGate", "ProxyPaths", "proxy_of", "upstream_segment"]

PREFIX = "/api/v1/proxy/"
_RAW_PREFIX = PREFIX.encode()
_USERINFO = re.compile(r"\A([^:/]*:/*)[^/]*@")
_QUERY_KEY = re.compile(rb"(\A|&)key=[^&]*")
MASK = "***"


def _segment(raw: str) -> str:
    """A raw path segment as the routes see it: decoded, but a ``/`` (and a ``%``) still encoded."""
    return unquote(raw).replace("%", "%25").replace("/", "%2F")


def upstream_segment(value: str) -> str:
    """A path parameter the routes got as ``ProxyPaths`` left it, decoded once: what the client encoded."""
    return unquote(value)


def _shown(segments: list[str]) -> str:
    """What the access log shows of a proxy path: the upstream's URL decoded but for its user information, and
    the segment after it masked unless it is Gemini's API version (the key of ``/{url}/{key}/chat/completions``,
    or whatever a mistyped path holds there); ``key=`` in the query is masked too."""
    shown = [unquote(segment) for segment in segments]
    shown[0] = _USERINFO.sub(rf"\g<1>{MASK}@", shown[0])
    if len(shown) > 1 and shown[1] not in ("v1beta", "v1"):
        shown[1] = MASK
    return PREFIX + "/".join(shown)


class ProxyPaths:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] != ScopeType.HTTP or not isinstance(raw, bytes) or not raw.startswith(_RAW_PREFIX):
            await self._app(scope, receive, send)
            return
        segments = raw.decode("latin-1")[len(PREFIX) :].split("/")
        inner: dict[str, Any] = dict(scope)
        inner["path"] = PREFIX + "/".join(_segment(segment) for segment in segments)
        scope["path"] = _shown(segments)
        scope["query_string"] = _QUERY_KEY.sub(rb"\1key=" + MASK.encode(), scope.get("query_string", b""))
        await self._app(cast(Scope, inner), receive, send)


class ProxyGate:
    """The egress policy and the key sealer, from the settings (``SettingsError`` naming a bad one)."""

    def __init__(self, settings: ApiSettings) -> None:
        self._policy = proxy_policy(settings)
        self._sealer = proxy_sealer(settings)

    def upstream(
        self,
        encoded_url: str,
        owner: str,
        key: str,
        *,
        kind: Literal["openai", "gemini"],
        body: bytes = b"",
        max_tokens_field: str = "max_tokens",
        api_version: str = "v1beta",
    ) -> UpstreamOverride:
        """The job's upstream: ``encoded_url`` (the path parameter) checked, ``key`` sealed for ``owner`` (an
        empty key: the gateway's own, for Gemini); a 400 naming the rule for an upstream the policy refuses."""
        try:
            upstream = parse_upstream(upstream_segment(encoded_url), self._policy)
        except EgressRefusedError as exc:
            raise InvalidRequestError(exc.message, code=ErrorCode.UPSTREAM_NOT_ALLOWED, param="proxyUrl") from None
        sealed = ""
        if key:
            if self._sealer is None:
                raise UnavailableError(
                    "the proxy endpoints are not set up on this gateway (CONDUIT_SEALING_KEY is not set)",
                    retryable=False,
                )
            sealed = self._sealer.seal(key, owner)
        return UpstreamOverride(
            base_url=upstream.base_url,
            kind=kind,
            origin=upstream.origin,
            sealed_key=sealed,
            body=body,
            max_tokens_field=max_tokens_field,
            api_version=api_version,
        )


def proxy_of(state: State) -> ProxyGate:
    gate: ProxyGate = state.proxy
    return gate
