"""An explicit ``OPTIONS`` answer for a path served by several handlers.

Litestar 2 makes a path's automatic OPTIONS answer when the path's first handler is registered, and keeps it
when more come, so its ``Allow`` names the first handler's methods alone (litestar#4169, fixed in 3). This
one, registered before them, names them all.
"""

from litestar import Response, route
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler

__all__ = ["options_for"]


def options_for(path: str, *handlers: HTTPRouteHandler) -> HTTPRouteHandler:
    allow = ", ".join(sorted({HttpMethod.OPTIONS, *(m for h in handlers for m in h.http_methods)}))

    def options() -> Response[None]:
        return Response(None, status_code=204, headers={"allow": allow}, media_type="text/plain")

    return route(path, http_method=HttpMethod.OPTIONS, include_in_schema=False, sync_to_thread=False)(options)
