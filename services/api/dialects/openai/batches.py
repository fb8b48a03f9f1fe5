"""``/v1/batches``: batches of an uploaded file's requests, run by the gateway's batch workers on any
configured provider, in OpenAI's shapes. Creating one is for the tiers that may generate (free: 403); reading,
listing and cancelling one's own is open to every tier; another user's batch is a 404."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter
from litestar.response import Stream

from services.api.auth.deps import provide_paid_principal, provide_principal
from services.api.batches.results import Drawing, rendered
from services.api.batches.service import BatchService
from services.api.body import decode_body
from services.api.deps import Files, batches_of, files_of, generation_of
from services.api.dialects.openai import batch_docs as docs
from services.api.dialects.openai.errors import render_error
from services.api.dialects.openai.schemas import CreateBatchRequest
from services.api.dialects.openai.translate import answer_body, batch_object
from services.api.openapi_doc import documented
from services.api.options import options_for
from services.api.wire import encode_json
from services.stores.batches import TERMINAL, BatchRecord
from shared.jobs import Principal

__all__ = ["ROUTES"]

_JSON = "application/json"
_TAGS = ["openai"]
_CREATE = msgspec.json.Decoder(CreateBatchRequest)
BatchId = Annotated[str, PathParameter(max_length=64)]
MAX_PAGE = 100
_DRAW = Drawing(answer_body, render_error)


def _json(body: object) -> Response[bytes]:
    return Response(encode_json(body), media_type=_JSON)


@post(
    "/v1/batches",
    status_code=200,
    dependencies={"principal": Provide(provide_paid_principal)},
    summary="Create a batch of an uploaded file's requests",
    description="Its lines run on the gateway's batch workers, at your tier's pace, on the providers they name; "
    "poll it until it ends, then read `output_file_id` (and `error_file_id`) with `GET /v1/files/{id}/content`.",
    tags=_TAGS,
    operation_class=documented(
        body=CreateBatchRequest, body_examples=docs.BATCH_EXAMPLES, replies=docs.CREATE_BATCH_REPLIES
    ),
)
async def create_batch(
    request: Request[Any, Any, State], principal: NamedDependency[Principal], state: State
) -> Response[bytes]:
    body = decode_body(_CREATE, await request.body(), generation_of(state).settings)
    batches = batches_of(state)
    expiry = body.output_expires_after.seconds if body.output_expires_after else 0
    record = await batches.create(
        principal, body.input_file_id, body.endpoint, body.completion_window, body.metadata, expiry
    )
    return _json(batch_object(record))


@get(
    "/v1/batches",
    dependencies={"principal": Provide(provide_principal)},
    summary="Your batches, newest first; the next page is `after=<last_id>`",
    tags=_TAGS,
    operation_class=documented(replies=docs.LIST_BATCHES_REPLIES),
)
async def list_batches(
    principal: NamedDependency[Principal],
    state: State,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 20,
    after: Annotated[str | None, QueryParameter(max_length=64, required=False)] = None,
) -> Response[bytes]:
    page = await batches_of(state).page(principal.user_id, limit, after or None)
    data = [batch_object(record) for record in page.batches]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return _json({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": page.has_more})


@get(
    "/v1/batches/{batch_id:str}",
    dependencies={"principal": Provide(provide_principal)},
    summary="A batch",
    tags=_TAGS,
    operation_class=documented(replies=docs.BATCH_REPLIES),
)
async def retrieve_batch(principal: NamedDependency[Principal], state: State, batch_id: BatchId) -> Response[bytes]:
    return _json(batch_object(await batches_of(state).get(principal.user_id, batch_id)))


@post(
    "/v1/batches/{batch_id:str}/cancel",
    status_code=200,
    dependencies={"principal": Provide(provide_principal)},
    summary="Cancel a batch: no more of its lines start; it ends `cancelled` with what was done",
    tags=_TAGS,
    operation_class=documented(replies=docs.CANCEL_BATCH_REPLIES),
)
async def cancel_batch(principal: NamedDependency[Principal], state: State, batch_id: BatchId) -> Response[bytes]:
    return _json(batch_object(await batches_of(state).cancel(principal.user_id, batch_id)))


@get(
    "/v1/batches/{batch_id:str}/results",
    dependencies={"principal": Provide(provide_principal)},
    summary="The results so far, as output and error file lines (a Conduit extension; JSONL)",
    description="While the batch runs: a line for each request that has ended, in OpenAI's output file format "
    "(`response.status_code` 200 for an answer, the endpoint's error status otherwise), in input order. Once it "
    "ended: its output file, then its error file.",
    tags=_TAGS,
    operation_class=documented(replies=docs.RESULTS_REPLIES),
)
async def batch_results(principal: NamedDependency[Principal], state: State, batch_id: BatchId) -> Stream:
    batches, files = batches_of(state), files_of(state)
    record = await batches.get(principal.user_id, batch_id)
    return Stream(_results(batches, files, record), media_type="application/jsonl")


async def _results(batches: BatchService, files: Files, record: BatchRecord) -> AsyncIterator[bytes]:
    if record.status in TERMINAL:
        for file_id in (record.output_file_id, record.error_file_id):
            if file_id is not None:
                async for chunk in files.store.read(file_id):
                    yield chunk
        return
    async for _, line in rendered(batches.store, files.store, record, None, _DRAW):
        yield line


ROUTES = [
    options_for("/v1/batches", create_batch, list_batches),
    create_batch,
    list_batches,
    retrieve_batch,
    batch_results,
    cancel_batch,
]
