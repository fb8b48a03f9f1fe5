"""``GET /v1/streams/{job}``: resume a job's stream on any API replica, or fetch its answer later.

``{job}`` is the job's id (the ``x-conduit-job-id`` response header) or the name the client gave it
(the ``x-conduit-job-name`` request header), which works even if it hung up before any response.

A streamed job is relayed again in its own dialect, byte for byte, from the frame after ``Last-Event-ID``
(the header, or a ``last_event_id`` query parameter for clients that cannot set headers): exactly the
frames the client missed, then the live rest. A job requested without streaming answers with its whole
JSON body once it is done (``x-conduit-on-disconnect: detach`` keeps it running after its client left).
Only the job's owner gets it; anyone else, like a job that never was or has expired, gets a 404.
"""

from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Stream

from services.api.answer import gather_answer
from services.api.auth.deps import provide_principal
from services.api.dialects import registry
from services.api.openapi_doc import JOB_ID, EventStream, Header, Reply, documented
from services.api.openapi_parts import RESUME_OPERATION, ErrorCase, error_replies
from services.api.relay.resume import LogRelay, find_record
from services.api.relay.run import Gateway
from services.api.sse import JOB_HEADER, parse_last_event_id, render, sse_response
from shared.errors import ErrorCode, InvalidRequestError
from shared.jobs import Principal

__all__ = ["ROUTES"]

_FRAME_ID = {"type": "string", "pattern": "^\\s*([0-9]{1,18}(\\.[0-9]{1,6})?)?\\s*$"}
_LAST_EVENT_ID = "The `id:` of the last frame you have (`12` or `12.1`); absent or empty: from the first frame."
_PARAMETERS = (
    Header("last-event-id", _LAST_EVENT_ID, schema=_FRAME_ID, example="3.1"),
    Header("last_event_id", f"{_LAST_EVENT_ID} For clients that cannot set headers.", schema=_FRAME_ID, where="query"),
)
_DOCS = [dialect.resume_doc for dialect in registry.DIALECTS]
_STREAM = EventStream(
    "A streamed job: the frames after `Last-Event-ID`, byte for byte as the first response sent them (same "
    "dialect, same ids), then the live rest, then `[DONE]`.",
    {name: example for doc in _DOCS for name, example in doc.stream_examples.items()},
    tuple(frame for doc in _DOCS for frame in doc.frames),
)
_REPLIES = {
    200: Reply(
        "The job's answer in its own dialect: the rest of its stream, or (a job requested without streaming) its "
        "whole body once it is done.",
        tuple(body for doc in _DOCS for body in doc.bodies),
        {name: example for doc in _DOCS for name, example in doc.body_examples.items()},
        _STREAM,
        (JOB_ID,),
    ),
    **error_replies(
        registry.FALLBACK.render_error,
        registry.FALLBACK.error_schema,
        (400, 401, 404, 429, 500, 502, 503, 504),
        {
            400: ErrorCase(
                "`Last-Event-ID` is not a frame id; or the job itself failed so (a job requested without streaming "
                "answers with its own error, any of the statuses below).",
                ErrorCode.INVALID_REQUEST,
                "Last-Event-ID 'abc' is not a stream frame id (such as 12 or 12.1)",
            ),
            404: ErrorCase(
                "No job of yours by that id or name (it never was, belongs to someone else, or expired); or the "
                "job itself failed so.",
                ErrorCode.NOT_FOUND,
                "no stream 'report-42' (it may have expired)",
            ),
        },
    ),
}


@get(
    "/v1/streams/{job_id:str}",
    dependencies={"principal": Provide(provide_principal)},
    summary="Resume a job's stream after Last-Event-ID (or fetch a detached job's answer)",
    description="`{job_id}` is the job's id (the `x-conduit-job-id` response header) or the name the client gave "
    "it (`x-conduit-job-name`). Only the job's owner gets it.",
    tags=["streams"],
    operation_id=RESUME_OPERATION,
    operation_class=documented(replies=_REPLIES, headers=_PARAMETERS),
)
async def resume_stream(
    request: Request[Any, Any, State], principal: NamedDependency[Principal], job_id: FromPath[str]
) -> Stream | Response[bytes]:
    gateway: Gateway = request.app.state.gateway
    after = parse_last_event_id(request.headers.get("last-event-id") or request.query_params.get("last_event_id"))
    found = await find_record(gateway, principal.user_id, job_id)
    encoder = registry.encoder_for(found[1].view) if found is not None else None
    if found is None or found[1].owner != principal.user_id or encoder is None:
        raise InvalidRequestError(f"no stream {job_id!r} (it may have expired)", code=ErrorCode.NOT_FOUND)
    job_id, record = found
    relay = LogRelay(gateway, job_id)
    if record.stream:
        return sse_response(render(relay, encoder, after), job_id)
    answer = await gather_answer(relay, record.view.model)
    body = registry.body_for(record.view, answer) or b"{}"
    return Response(body, media_type="application/json", headers={JOB_HEADER: job_id})


ROUTES = [resume_stream]
