"""``POST /api/ai/chat`` and ``POST /api/ai/completions``: the simple AI API (Pro and Enterprise tiers)."""

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.response import Stream

from services.api.auth.deps import provide_paid_principal
from services.api.body import decode_body
from services.api.dialects.ai import docs
from services.api.dialects.ai.schemas import AiChatRequest, AiCompletionRequest
from services.api.dialects.ai.sse import TokenEncoder
from services.api.dialects.ai.translate import answer_body, choose_model, to_messages, to_params
from services.api.generation import Rendering, collect, open_stream, prepare_job, stream_body
from services.api.openapi_doc import documented
from services.api.openapi_parts import GENERATION_HEADERS
from services.api.sse import JOB_HEADER, sse_response
from shared.jobs import Principal

__all__ = ["ANSWER_FIELDS", "CHAT", "COMPLETION", "ROUTES"]

#: dialect names in a job's StreamView (``services.api.streams`` maps them back to encoders)
CHAT = "ai.chat"
COMPLETION = "ai.completion"
#: the field of the answer body holding the text, per dialect
ANSWER_FIELDS = {CHAT: "content", COMPLETION: "completion"}

_CHAT = msgspec.json.Decoder(AiChatRequest)
_COMPLETION = msgspec.json.Decoder(AiCompletionRequest)
_PAID = {"principal": Provide(provide_paid_principal)}
_CHOICE = (
    "The provider is `provider` if given; else the one `model` names (`provider/model`, a catalog id or a bare "
    "name by prefix); else OpenAI, or the built-in `echo` when no OpenAI key is configured."
)


async def _generate(
    request: Request[Any, Any, State], principal: Principal, body: AiChatRequest | AiCompletionRequest, dialect: str
) -> Response[bytes] | Stream:
    state = request.app.state
    directory = await state.directory.current()
    provider, model = choose_model(state.catalog, directory.providers, body)
    rendering = Rendering(dialect, "", model)
    job, _, limits = await prepare_job(
        request, principal, provider, model, to_messages(body), to_params(body), body.stream, rendering
    )
    if body.stream:
        stream = await open_stream(request, job)
        return sse_response(stream_body(stream, TokenEncoder()), job.id, stream.close, limits)
    answer = await collect(request, job)
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
async def ai_chat(request: Request[Any, Any, State], principal: Principal) -> Response[bytes] | Stream:
    return await _generate(
        request, principal, decode_body(_CHAT, await request.body(), request.app.state.settings), CHAT
    )


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
async def ai_completions(request: Request[Any, Any, State], principal: Principal) -> Response[bytes] | Stream:
    return await _generate(
        request, principal, decode_body(_COMPLETION, await request.body(), request.app.state.settings), COMPLETION
    )


ROUTES = [ai_chat, ai_completions]
