"""The worker's httpx client, on a connection pool whose bookkeeping stays cheap with many connections.

httpcore 1.0.9's ``AsyncConnectionPool`` runs ``_assign_requests_to_connections`` twice per request (when it
is queued and when its response closes), and that pass is quadratic in the pool's size (it counts every
connection once per idle connection) and polls the socket of every idle connection (``has_expired``). With
a few hundred upstream connections, the profile of a busy worker was a third pool bookkeeping. This pass is
linear, and polls only the connection it is about to hand out. Behaviour is otherwise the same: closed
connections are dropped, idle ones beyond ``max_keepalive_connections`` are closed, a request takes an
available connection to its origin (the most recently used first, the least likely to have expired), else a
new one while under ``max_connections``, else replaces an idle connection to another origin, else waits.
"""

import httpcore
import httpx

__all__ = ["LeanConnectionPool", "upstream_client"]


class LeanConnectionPool(httpcore.AsyncConnectionPool):
    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        kept: list[httpcore.AsyncConnectionInterface] = []
        idle = 0
        for connection in reversed(self._connections):  # newest first: surplus closing hits the oldest
            if connection.is_closed():
                continue
            if connection.is_idle():
                if idle >= self._max_keepalive_connections:
                    closing.append(connection)
                    continue
                idle += 1
            kept.append(connection)
        kept.reverse()
        self._connections = kept

        for pool_request in [request for request in self._requests if request.is_queued()]:
            origin = pool_request.request.url.origin
            chosen = self._available(origin, closing)
            if chosen is None and len(self._connections) < self._max_connections:
                chosen = self.create_connection(origin)
                self._connections.append(chosen)
            elif chosen is None:
                spare = next((c for c in self._connections if c.is_idle()), None)
                if spare is None:
                    continue  # stays queued until a connection frees up
                self._connections.remove(spare)
                closing.append(spare)
                chosen = self.create_connection(origin)
                self._connections.append(chosen)
            pool_request.assign_to_connection(chosen)
        return closing

    def _available(
        self, origin: httpcore.Origin, closing: list[httpcore.AsyncConnectionInterface]
    ) -> httpcore.AsyncConnectionInterface | None:
        for connection in reversed(list(self._connections)):
            if not (connection.can_handle_request(origin) and connection.is_available()):
                continue
            if connection.has_expired():  # keep-alive ran out, or the server closed it while idle
                self._connections.remove(connection)
                closing.append(connection)
                continue
            return connection
        return None


def upstream_client(timeout: httpx.Timeout, limits: httpx.Limits) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for provider calls: no proxies from the environment, no redirects."""
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    standard = transport._pool
    transport._pool = LeanConnectionPool(
        ssl_context=standard._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
    )
    return httpx.AsyncClient(timeout=timeout, transport=transport, trust_env=False, follow_redirects=False)
