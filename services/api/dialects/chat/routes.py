"""Generation on the chat API: ``POST /api/v1/chat/generate`` (+ ``/stream``), a one-off ``POST /api/v1/chat``,
and ``GET /api/v1/personas``."""

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from litestar.response import Stream

from services.api.auth.deps import provide_paid_principal, provide_principal
from services.api.body import decode_body
from services.api.caller import Caller, provide_caller
from services.api.chats.personas import Persona, persona_object
from services.api.chats.service import ChatService, Turn, new_job_id
from services.api.chats.turns import auto_title, context_messages
from services.api.deps import chats_of, generation_of
from services.api.dialect import BodyBuilder
from services.api.dialects.chat import docs, examples
from services.api.dialects.chat.schemas import ChatRequest, GenerateRequest
from services.api.dialects.chat.sse import ChatEventEncoder
from services.api.dialects.chat.translate import CHAT_ID, PERSONA, TITLE, generate_body, oneoff_body
from services.api.generation import GenerationService, JobRequest, Prepared, Rendering, stream_body
from services.api.openapi_doc import documented
from services.api.openapi_parts import GENERATION_HEADERS
from services.api.relay.run import NotEnqueuedError
from services.api.sse import JOB_HEADER, sse_response
from services.api.wire import encode_json
from services.stores.chats import NewChat, new_message_id
from shared.catalog import resolve_model
from shared.jobs import ChatTurn, Principal, SamplingParams, TurnMessage

__all__ = ["GENERATE", "ONEOFF", "ROUTES"]

#: dialect names in a job's StreamView
GENERATE = "chat.generate"
ONEOFF = "chat.oneoff"

_GENERATE = msgspec.json.Decoder(GenerateRequest)
_CHAT = msgspec.json.Decoder(ChatRequest)
_PAID = {"principal": Provide(provide_paid_principal), "caller": Provide(provide_caller)}
_JSON = "application/json"
_TAGS = ["chat"]
Query = Annotated[str | None, QueryParameter(max_length=200, required=False)]


async def _model(generation: GenerationService, persona: Persona, named: str | None) -> tuple[str, str, str]:
    """(provider, upstream model, the model as named): the request's, else the persona's, else the gateway's
    default provider (OpenAI, or the built-in echo when no OpenAI key is configured)."""
    wanted = (named or "").strip() or persona.model
    if wanted:
        provider, model = resolve_model(generation.catalog, wanted)
        return provider, model, wanted
    provider = persona.provider or ("openai" if "openai" in await generation.providers() else "echo")
    model = generation.catalog.providers[provider].default_model
    return provider, model, model


def _context(body: ChatRequest) -> list[str]:
    return [item if isinstance(item, str) else encode_json(item).decode() for item in body.fastContext]


async def _run(
    caller: Caller, generation: GenerationService, prepared: Prepared, body_of: BodyBuilder, status: int
) -> Response[bytes] | Stream:
    job, view, limits = prepared
    if job.stream:
        stream = await generation.open_stream(caller, job)
        return sse_response(stream_body(stream, ChatEventEncoder(view)), job.id, stream.close, limits)
    answer = await generation.collect(caller, job)
    headers = {**limits, JOB_HEADER: job.id}
    return Response(body_of(view, answer), status_code=status, media_type=_JSON, headers=headers)


async def _generate(
    caller: Caller,
    generation: GenerationService,
    chats: ChatService,
    body: GenerateRequest,
    query: dict[str, str | None],
) -> Response[bytes] | Stream:
    persona = chats.personas.get(body.persona)
    if body.tools is not None:
        body.tools.check()
    provider, model, named = await _model(generation, persona, body.model)
    await generation.check_provider(provider)
    owner, job_id = caller.principal.user_id, new_job_id()
    lines = body.chat_history
    title = query["title"]
    new = NewChat(
        title=title or auto_title(lines),
        title_auto=not title,
        persona=persona.name,
        scope=body.scope,
        username=query["username"] or "",
        source=query["source"] or "",
    )
    turn = await chats.begin(owner, query["chatId"] or body.chatId, lines, new, job_id)
    labels = {CHAT_ID: turn.chat.id, TITLE: turn.chat.title, PERSONA: persona.name}
    spec = JobRequest(
        provider,
        model,
        context_messages(persona.system, body.voice, _context(body), turn.history),
        SamplingParams(temperature=persona.temperature),
        body.stream,
        Rendering(GENERATE, "", named, labels=labels),
        chat=ChatTurn(
            chat_id=turn.chat.id,
            reply_id=new_message_id(),
            persona=persona.name,
            first=turn.created,
            turns=[TurnMessage(id=m.id, role=m.role, content=m.content, created_at=m.created_at) for m in turn.pending],
        ),
        job_id=job_id,
    )
    return await _generate_turn(caller, generation, chats, turn, spec)


async def _generate_turn(
    caller: Caller, generation: GenerationService, chats: ChatService, turn: Turn, spec: JobRequest
) -> Response[bytes] | Stream:
    owner = caller.principal.user_id
    try:
        prepared = await generation.prepare(caller, spec)
    except BaseException:  # not admitted: the turn is undone (a chat it created goes, an existing one is let go)
        await chats.abandon(owner, turn, spec.job_id)
        raise
    try:
        return await _run(caller, generation, prepared, generate_body, 201)
    except NotEnqueuedError:  # no worker will ever end the job
        await chats.abandon(owner, turn, spec.job_id)
        raise


@post(
    "/api/v1/chat/generate",
    status_code=201,
    dependencies=_PAID,
    summary="Generate a reply on a saved chat (a new one without chatId); `stream: true` answers as /stream",
    description="Answers 201 with the reply, saved on the chat. With `stream: true` it answers as "
    "`POST /api/v1/chat/generate/stream` does: status **200**, `text/event-stream`. `chatId` (the query's, else "
    "the body's) names a chat of yours; without it a new chat is made, titled by `title` or by the first user "
    "message. Resending the whole conversation stores no duplicates: the longest saved tail it starts with is "
    "skipped. One reply at a time per chat (409). " + docs.CHOICE,
    tags=_TAGS,
    operation_class=documented(
        body=GenerateRequest,
        body_examples=examples.GENERATE_EXAMPLES,
        replies=docs.GENERATE_REPLIES,
        headers=GENERATION_HEADERS,
        refinements=docs.GENERATE_REFINEMENTS,
    ),
)
async def generate(
    request: Request[Any, Any, State],
    caller: NamedDependency[Caller],
    state: State,
    chatId: Annotated[str | None, QueryParameter(max_length=64, required=False)] = None,  # noqa: N803 - the wire name
    username: Query = None,
    source: Query = None,
    title: Query = None,
) -> Response[bytes] | Stream:
    generation = generation_of(state)
    chats = chats_of(state)
    body = decode_body(_GENERATE, await request.body(), generation.settings)
    query = {"chatId": chatId, "username": username, "source": source, "title": title}
    return await _generate(caller, generation, chats, body, query)


@post(
    "/api/v1/chat/generate/stream",
    status_code=200,
    dependencies=_PAID,
    summary="Generate a reply on a saved chat as a stream of thinking_update, final_response and metadata events",
    description="As `POST /api/v1/chat/generate` with `stream: true` (the body's `stream` is ignored; `chatId` "
    "is the body's). A client that leaves cancels the reply (the part written is saved, `cut_short`), unless "
    "it sent `x-conduit-on-disconnect: detach`. " + docs.CHOICE,
    tags=_TAGS,
    operation_class=documented(
        body=GenerateRequest,
        body_examples=examples.STREAM_EXAMPLES,
        replies=docs.STREAM_REPLIES,
        headers=GENERATION_HEADERS,
        refinements=docs.GENERATE_REFINEMENTS,
    ),
)
async def generate_stream(
    request: Request[Any, Any, State],
    caller: NamedDependency[Caller],
    state: State,
    username: Query = None,
    source: Query = None,
    title: Query = None,
) -> Response[bytes] | Stream:
    generation = generation_of(state)
    chats = chats_of(state)
    body = decode_body(_GENERATE, await request.body(), generation.settings)
    body.stream = True
    query = {"chatId": None, "username": username, "source": source, "title": title}
    return await _generate(caller, generation, chats, body, query)


@post(
    "/api/v1/chat",
    status_code=200,
    dependencies=_PAID,
    summary="A one-off answer (not saved)",
    description="The reply to `chat_history` as the persona, saving nothing. " + docs.CHOICE,
    tags=_TAGS,
    operation_class=documented(
        body=ChatRequest,
        body_examples=examples.ONEOFF_EXAMPLES,
        replies=docs.ONEOFF_REPLIES,
        headers=GENERATION_HEADERS,
    ),
)
async def one_off(
    request: Request[Any, Any, State],
    caller: NamedDependency[Caller],
    state: State,
) -> Response[bytes] | Stream:
    generation = generation_of(state)
    chats = chats_of(state)
    body = decode_body(_CHAT, await request.body(), generation.settings)
    persona = chats.personas.get(body.persona)
    provider, model, named = await _model(generation, persona, body.model)
    lines = body.chat_history
    spec = JobRequest(
        provider,
        model,
        context_messages(persona.system, body.voice, _context(body), lines),
        SamplingParams(temperature=persona.temperature),
        body.stream,
        Rendering(ONEOFF, "", named, labels={PERSONA: persona.name}),
    )
    return await _run(caller, generation, await generation.prepare(caller, spec), oneoff_body, 200)


@get(
    "/api/v1/personas",
    dependencies={"principal": Provide(provide_principal)},
    summary="The personas chats may answer as",
    description="Open to every tier. A request naming no persona gets `default`.",
    tags=_TAGS,
    operation_class=documented(replies=docs.PERSONAS_REPLIES),
)
async def list_personas(principal: NamedDependency[Principal], state: State) -> Response[bytes]:
    chats = chats_of(state)
    personas = chats.personas
    data = [persona_object(personas.by_name[name], name == personas.default) for name in personas.names()]
    return Response(encode_json({"personas": data, "default": personas.default}), media_type=_JSON)


ROUTES = [generate, generate_stream, one_off, list_personas]
