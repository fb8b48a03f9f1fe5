"""The worker's transport for upstreams a client named (the proxy endpoints): ``LeanTransport`` that checks
before it connects.

Each new connection's host is checked again against the egress policy (``shared.egress.parse_upstream``: the API
checked it too, but the worker is the one that connects), then resolved here, once, and every address it resolves
to is checked (``check_resolved``): one address in a refused range refuses the host, so a name that answers both
a public and a private address cannot be steered. The connection goes to the first checked address itself, with
the host name kept for TLS (SNI and the certificate check), so no second lookup can swap in another address (DNS
rebinding). Redirects are never followed (the client never follows any); an answer larger than ``max_bytes``
ends with an error, and the job's deadline bounds its time.

A refusal is a ``GatewayError`` coded ``upstream_not_allowed`` (a 400 naming the rule), raised before any
connection is attempted.
"""

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx

from services.worker.http_connection import Key
from services.worker.http_pool import LeanTransport
from shared.egress import EgressPolicy, EgressRefusedError, Upstream, check_resolved, parse_upstream
from shared.errors import ErrorCode, GatewayError, UpstreamError

__all__ = ["GuardedTransport", "Resolver", "refused"]

#: (host, port) -> the addresses it resolves to
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def refused(exc: EgressRefusedError) -> GatewayError:
    return GatewayError(exc.message, code=ErrorCode.UPSTREAM_NOT_ALLOWED, param="proxyUrl")


class _Capped(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, limit: int) -> None:
        self._stream, self._limit, self._seen = stream, limit, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            self._seen += len(chunk)
            if self._seen > self._limit:
                raise UpstreamError(f"the upstream's answer is larger than {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class GuardedTransport(LeanTransport):
    def __init__(
        self,
        limits: httpx.Limits,
        policy: EgressPolicy,
        *,
        max_bytes: int,
        resolve: Resolver = _getaddrinfo,
    ) -> None:
        super().__init__(limits)
        self._policy, self._max_bytes, self._resolve = policy, max_bytes, resolve

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        response.stream = _Capped(response.stream, self._max_bytes)  # type: ignore[arg-type]
        return response

    async def _address(self, key: Key, timeout: float | None) -> str:
        """The first address of the host, every one of its addresses checked (TLS keeps the host name)."""
        scheme, host, port = key
        shown = f"[{host}]" if ":" in host else host
        try:
            upstream = parse_upstream(f"{scheme}://{shown}:{port}", self._policy)
            return (await self._addresses(upstream, timeout))[0]
        except EgressRefusedError as exc:
            raise refused(exc) from None

    async def _addresses(self, upstream: Upstream, timeout: float | None) -> list[str]:
        """The addresses to connect to, every one checked; refused if any is not allowed."""
        if upstream.ip is not None:
            found = [str(upstream.ip)]
        else:
            try:
                async with asyncio.timeout(timeout):
                    found = await self._resolve(upstream.host, upstream.port)
            except TimeoutError:
                raise httpx.ConnectTimeout(f"could not resolve {upstream.host} in time") from None
            except OSError as exc:
                raise httpx.ConnectError(f"could not resolve {upstream.host}: {exc}") from exc
        if not found:
            raise httpx.ConnectError(f"{upstream.host} resolves to no address")
        for address in found:
            check_resolved(upstream, ipaddress.ip_address(address.split("%", 1)[0]), self._policy)
        return found
