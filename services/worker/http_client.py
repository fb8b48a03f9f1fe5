"""The worker's httpx client for provider calls: ``LeanTransport`` underneath, and a ``send`` that goes straight
to it.

``httpx.AsyncClient.send`` runs every request through an auth flow, a redirect loop, event hooks, a timer
and the client's cookie jar (parsing every response's ``Set-Cookie``). The worker uses none of them: keys
go in headers, redirects are refused, and a cookie jar shared by the jobs of every user is a leak, not a
feature. Those steps were about a tenth of a busy worker's CPU. Requests are still built by
``build_request`` (URL, headers, JSON body, the timeouts in its extensions), and the transport's errors are
httpx's own.
"""

import httpx

from services.worker.http_pool import LeanTransport

__all__ = ["UpstreamClient", "upstream_client"]


class UpstreamClient(httpx.AsyncClient):
    async def send(self, request: httpx.Request, *, stream: bool = False, **_: object) -> httpx.Response:
        response = await self._transport.handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response


def upstream_client(timeout: httpx.Timeout, limits: httpx.Limits) -> httpx.AsyncClient:
    """An httpx client for provider calls: no proxies from the environment, no redirects, no cookies."""
    return UpstreamClient(timeout=timeout, transport=LeanTransport(limits), trust_env=False, follow_redirects=False)
