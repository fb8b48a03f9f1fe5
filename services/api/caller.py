"""What a generation route learns of its request besides the body: who asks, with which key, under which
request id, what the client's disconnect does to its job, the client's own name for it, and how to notice
the client leaving. ``GenerationService`` takes this, never the Litestar ``Request``."""

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import NamedTuple, get_args

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from services.api.auth.deps import api_key_of
from services.api.auth.keys import ApiKey
from shared.errors import InvalidRequestError
from shared.jobs import OnDisconnect, Principal

__all__ = ["NAME_HEADER", "POLICY_HEADER", "Caller", "provide_caller", "request_id"]

POLICY_HEADER = "x-conduit-on-disconnect"
_POLICIES: tuple[str, ...] = get_args(OnDisconnect)
#: a client's own name for its job, to fetch or resume it by (``GET /v1/streams/{name}``) even if it hung up
#: before the response told it the job's id
NAME_HEADER = "x-conduit-job-name"
_NAME = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class Caller(NamedTuple):
    principal: Principal
    #: the API key the request authenticated with (its own limits apply), if it used one
    api_key: ApiKey | None
    request_id: str
    on_disconnect: OnDisconnect
    #: ``x-conduit-job-name``, or empty
    job_name: str
    #: returns once the client has closed the connection
    disconnected: Callable[[], Awaitable[None]]


def request_id(request: Request[object, object, State]) -> str:
    rid: str = request.scope.get("state", {}).get("request_id", "") or f"req_{uuid.uuid4().hex}"
    return rid


def _policy(request: Request[object, object, State]) -> OnDisconnect:
    value = request.headers.get(POLICY_HEADER, "cancel").strip().lower() or "cancel"
    if value not in _POLICIES:
        raise InvalidRequestError(f"{POLICY_HEADER} must be cancel or detach, not {value!r}", param=POLICY_HEADER)
    return value  # type: ignore[return-value]  # checked against the Literal's values just above


def _name(request: Request[object, object, State]) -> str:
    name = request.headers.get(NAME_HEADER)
    if name is None:
        return ""
    if not _NAME.match(name):
        raise InvalidRequestError(f"{NAME_HEADER} must be 1-128 letters, digits or ._:-", param=NAME_HEADER)
    return name


async def provide_caller(request: Request[object, object, State], principal: NamedDependency[Principal]) -> Caller:
    """The ``caller`` dependency of generation routes (after ``principal``)."""

    async def disconnected() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    return Caller(principal, api_key_of(request), request_id(request), _policy(request), _name(request), disconnected)
