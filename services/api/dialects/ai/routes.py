"""``POST /api/ai/chat`` and ``POST /api/ai/completions``: the simple AI API (Pro and Enterprise tiers)."""

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.response import Stream

from services.api.auth.deps import provide_paid_principal
from services.api.body import decode_body
from services.api.caller import Caller, provide_caller
from services.api.deps import generation_of
from services.api.dialects.ai import docs
from services.api.dialects.ai.schemas import AiChatRequest, AiCompletionRequest
from services.api.dialects.ai.sse import TokenEncoder
from services.api.dialects.ai.translate import answer_body, choose_model, to_messages, to_params
from services.api.generation import GenerationService, JobRequest, Rendering, stream_body
from services.api.openapi_doc import documented
from services.api.openapi_parts import GENERATION_HEADERS
from services.api.sse import JOB_HEADER, sse_response

__all__ = ["ANSWER_FIELDS", "CHAT", "COMPLETION", "ROUTES"]

#: dialect names in a job's StreamView (``dialect.py`` maps them back to encoders)
CHAT = "ai.chat"
COMPLETION = "ai.completion"
#: the field of the answer body holding the text, per dialect
ANSWER_FIELDS = {CHAT: "content", COMPLETION: "completion"}

_CHAT = msgspec.json.Decoder(AiChatRequest)
_COMPLETION = msgspec.json.Decoder(AiCompletionRequest)
_PAID = {"principal": Provide(provide_paid_principal), "caller": Provide(provide_caller)}
_CHOICE = (
    "The provider is `provider` if given; else the one `model` names (`provider/model`, a catalog id or a bare "
    "name by prefix); else OpenAI, or the built-in `echo` when no OpenAI key is configured."
)


async def _generate(
    caller: Caller, generation: GenerationService, body: AiChatRequest | AiCompletionRequest, dialect: str
) -> Response[bytes] | Stream:
    provider, model = choose_model(generation.catalog, await generation.providers(), body)
    rendering = Rendering(dialect, "", model)
    spec = JobRequest(provider, model, to_messages(body), to_params(body), body.stream, rendering)
    job, _, limits = await generation.prepare(caller, spec)
    if body.stream:
        stream = await generation.open_stream(caller, job)
        return sse_response(stream_body(stream, TokenEncoder()), job.id, stream.close, limits)
    answer = await generation.collect(caller, job)
    body_bytes = answer_body(ANSWER_FIELDS[dialect], model, answer)
    return Response(body_bytes, media_type="application/json", headers={**limits, JOB_HEADER: job.id})


@post(
    "/api/ai/chat",
    status_code=200,
    dependencies=_PAID,
    operation_class=documented(
        body=AiChatRequest, body_examples=docs.CHAT_EXAMPLES, replies=docs.CHAT_REPLIES, headers=GENERATION_HEADERS
    ),
    summary="Chat (stream: `data: {token}` events)",
    description=_CHOICE,
    tags=["ai"],
)
async def ai_chat(
    request: Request[Any, Any, State],
    caller: NamedDependency[Caller],
    state: State,
) -> Response[bytes] | Stream:
    generation = generation_of(state)
    return await _generate(caller, generation, decode_body(_CHAT, await request.body(), generation.settings), CHAT)


@post(
    "/api/ai/completions",
    status_code=200,
    dependencies=_PAID,
    operation_class=documented(
        body=AiCompletionRequest,
        body_examples=docs.COMPLETION_EXAMPLES,
        replies=docs.COMPLETION_REPLIES,
        headers=GENERATION_HEADERS,
    ),
    summary="Complete a prompt",
    description=_CHOICE,
    tags=["ai"],
)
async def ai_completions(
    request: Request[Any, Any, State],
    caller: NamedDependency[Caller],
    state: State,
) -> Response[bytes] | Stream:
    generation = generation_of(state)
    body = decode_body(_COMPLETION, await request.body(), generation.settings)
    return await _generate(caller, generation, body, COMPLETION)


ROUTES = [ai_chat, ai_completions]
