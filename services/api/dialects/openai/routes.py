"""``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``: the OpenAI API, so its SDKs work unchanged."""

from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Stream

from services.api.auth.deps import provide_paid_principal, provide_principal
from services.api.caller import Caller, provide_caller
from services.api.deps import generation_of
from services.api.dialects.openai import docs
from services.api.dialects.openai.requests import chat_request, completion_request
from services.api.dialects.openai.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
)
from services.api.dialects.openai.sse import ChatChunkEncoder, CompletionChunkEncoder
from services.api.dialects.openai.translate import (
    chat_body,
    completion_body,
)
from services.api.generation import GenerationService, JobRequest, stream_body
from services.api.openapi_doc import documented
from services.api.openapi_parts import GENERATION_HEADERS
from services.api.sse import JOB_HEADER, sse_response
from services.api.wire import encode_json
from shared.catalog import resolve_model
from shared.errors import ErrorCode, InvalidRequestError
from shared.jobs import Principal

__all__ = ["CHAT_DOC", "ROUTES", "chat_reply"]

_PAID = {"principal": Provide(provide_paid_principal), "caller": Provide(provide_caller)}
_ANY = {"principal": Provide(provide_principal)}
_JSON = "application/json"


#: the chat completions' document (the proxy endpoint's too: the same body and answers)
CHAT_DOC = documented(
    body=ChatCompletionRequest,
    body_examples=docs.CHAT_EXAMPLES,
    replies=docs.CHAT_REPLIES,
    headers=GENERATION_HEADERS,
    refinements=docs.CHAT_REFINEMENTS,
)


@post(
    "/v1/chat/completions",
    status_code=200,
    dependencies=_PAID,
    operation_class=CHAT_DOC,
    summary="Create a chat completion (OpenAI-compatible; `stream: true` for SSE)",
    description="A model is named `provider/model` (as `GET /v1/models` lists them), by a catalog id, or by a bare "
    "name whose prefix picks the provider (`gpt-4o-mini`, `claude-sonnet-4-5`). Fields the gateway does not "
    "use itself reach an OpenAI-compatible upstream unchanged; for Anthropic and Gemini a field with no "
    "mapping is refused with a 400 naming it. A request without `max_tokens` is sent with your tier's cap, "
    "if it has one.",
    tags=["openai"],
)
async def chat_completions(
    request: Request[Any, Any, State],
    caller: NamedDependency[Caller],
    state: State,
) -> Response[bytes] | Stream:
    generation = generation_of(state)
    body, spec = chat_request(await request.body(), generation.settings, generation.catalog)
    return await chat_reply(generation, caller, body, spec)


async def chat_reply(
    generation: GenerationService, caller: Caller, body: ChatCompletionRequest, spec: JobRequest
) -> Response[bytes] | Stream:
    """Run a chat completion's job and answer it: its chunks with ``stream``, else one body."""
    job, view, limits = await generation.prepare(caller, spec)
    if body.stream:
        stream = await generation.open_stream(caller, job)
        return sse_response(stream_body(stream, ChatChunkEncoder.for_view(view)), job.id, stream.close, limits)
    answer = await generation.collect(caller, job)
    return Response(chat_body(view.id, body.model, answer), media_type=_JSON, headers={**limits, JOB_HEADER: job.id})


@post(
    "/v1/completions",
    status_code=200,
    dependencies=_PAID,
    operation_class=documented(
        body=CompletionRequest,
        body_examples=docs.COMPLETION_EXAMPLES,
        replies=docs.COMPLETION_REPLIES,
        headers=GENERATION_HEADERS,
        refinements=docs.COMPLETION_REFINEMENTS,
    ),
    summary="Create a completion (legacy)",
    tags=["openai"],
)
async def completions(
    request: Request[Any, Any, State],
    caller: NamedDependency[Caller],
    state: State,
) -> Response[bytes] | Stream:
    generation = generation_of(state)
    body, spec = completion_request(await request.body(), generation.settings, generation.catalog)
    job, view, limits = await generation.prepare(caller, spec)
    if body.stream:
        stream = await generation.open_stream(caller, job)
        return sse_response(stream_body(stream, CompletionChunkEncoder.for_view(view)), job.id, stream.close, limits)
    answer = await generation.collect(caller, job)
    return Response(
        completion_body(view.id, body.model, answer), media_type=_JSON, headers={**limits, JOB_HEADER: job.id}
    )


def _model_object(model_id: str, created: int, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owner}


async def _listed(generation: GenerationService) -> list[dict[str, Any]]:
    """The models of the providers live workers serve, by the names to use: ``provider/model``."""
    catalog = generation.catalog
    providers = await generation.providers()
    listed = [
        _model_object(catalog.listed_name(r), r.created, r.provider) for r in catalog.models if r.provider in providers
    ]
    known = {m["id"] for m in listed}
    for name in sorted(providers):
        spec = catalog.providers.get(name)
        if spec is not None and f"{name}/{spec.default_model}" not in known:
            listed.append(_model_object(f"{name}/{spec.default_model}", 0, name))
    return listed


@get(
    "/v1/models",
    dependencies=_ANY,
    summary="List the models this gateway can serve now",
    tags=["openai"],
    operation_class=documented(replies=docs.LIST_MODELS_REPLIES),
)
async def list_models(
    principal: NamedDependency[Principal],
    state: State,
) -> Response[bytes]:
    generation = generation_of(state)
    return Response(encode_json({"object": "list", "data": await _listed(generation)}), media_type=_JSON)


@get(
    "/v1/models/{model_id:path}",
    dependencies=_ANY,
    summary="Retrieve a model",
    description="Any name the chat endpoint takes now: `provider/model`, a catalog id, or a bare name by prefix.",
    tags=["openai"],
    operation_class=documented(replies=docs.RETRIEVE_MODEL_REPLIES),
)
async def retrieve_model(
    principal: NamedDependency[Principal],
    model_id: FromPath[str],
    state: State,
) -> Response[bytes]:
    """Any name the chat endpoint takes now: ``provider/model``, a catalog id, or a bare name by prefix."""
    generation = generation_of(state)
    wanted = model_id.lstrip("/")
    catalog = generation.catalog
    missing = InvalidRequestError(
        f"The model `{wanted}` does not exist or you do not have access to it.",
        code=ErrorCode.MODEL_NOT_FOUND,
        param="model",
    )
    try:
        provider, _ = resolve_model(catalog, wanted)
    except InvalidRequestError:
        raise missing from None
    if not wanted or provider not in await generation.providers():
        raise missing
    return Response(encode_json(_model_object(wanted, catalog.created(wanted), provider)), media_type=_JSON)


ROUTES = [chat_completions, completions, list_models, retrieve_model]
