"""A user's saved chats: list, fetch, fork, pin, patch, delete, and save one without generating.

Reading and managing one's own chats is open to every tier; another user's chat is a 404 everywhere.
"""

import time
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter

from services.api.auth.deps import provide_principal
from services.api.body import decode_body
from services.api.chats.service import ChatService, missing, stored
from services.api.chats.turns import auto_title
from services.api.deps import chats_of, generation_of
from services.api.dialects.chat import docs, examples
from services.api.dialects.chat.schemas import ForkRequest, NewChatRequest, PatchRequest, PinRequest
from services.api.dialects.chat.translate import chat_body, summary_object
from services.api.openapi_doc import documented
from services.api.options import options_for
from services.api.wire import encode_json
from services.stores.chats import NewChat, encode_messages
from shared.errors import InvalidRequestError
from shared.jobs import Principal

__all__ = ["ROUTES"]

_ANY = {"principal": Provide(provide_principal)}
_JSON = "application/json"
_TAGS = ["chat"]
_FORK = msgspec.json.Decoder(ForkRequest)
_NEW = msgspec.json.Decoder(NewChatRequest)
_PIN = msgspec.json.Decoder(PinRequest)
_PATCH = msgspec.json.Decoder(PatchRequest)
ChatId = Annotated[str, PathParameter(max_length=64)]
MAX_PAGE = 100


def _json(body: object, status: int = 200) -> Response[bytes]:
    return Response(encode_json(body), status_code=status, media_type=_JSON)


@get(
    "/api/v1/chat/history",
    dependencies=_ANY,
    summary="Your chats: pinned first, then newest activity",
    description="A page of `limit` chats, without their messages; the next page is `after=nextCursor`.",
    tags=_TAGS,
    operation_class=documented(replies=docs.HISTORY_REPLIES),
)
async def history(
    principal: NamedDependency[Principal],
    state: State,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 20,
    after: Annotated[str | None, QueryParameter(max_length=64, required=False)] = None,
) -> Response[bytes]:
    chats = chats_of(state)
    page = await chats.page(principal.user_id, limit, after or None)
    items = [summary_object(chat) for chat in page.chats]
    next_cursor = items[-1]["id"] if page.has_more and items else None
    return _json({"chats": items, "hasMore": page.has_more, "nextCursor": next_cursor})


@get(
    "/api/v1/chat/fetch/{chat_id:str}",
    dependencies=_ANY,
    summary="One chat with its messages",
    tags=_TAGS,
    operation_id=docs.FETCH_OPERATION,
    operation_class=documented(replies=docs.FETCH_REPLIES, refinements=docs.MESSAGE_REFINEMENTS),
)
async def fetch(
    principal: NamedDependency[Principal],
    chat_id: ChatId,
    state: State,
) -> Response[bytes]:
    chats = chats_of(state)
    found = await chats.read(principal.user_id, chat_id)
    return Response(chat_body(found.chat, found.raw), media_type=_JSON)


@post(
    "/api/v1/chat/fork",
    status_code=201,
    dependencies=_ANY,
    summary="A new chat holding a chat's messages up to and including one of them",
    tags=_TAGS,
    operation_id=docs.FORK_OPERATION,
    operation_class=documented(
        body=ForkRequest,
        body_examples=examples.FORK_EXAMPLES,
        replies=docs.FORK_REPLIES,
        refinements=docs.MESSAGE_REFINEMENTS,
    ),
)
async def fork(
    request: Request[Any, Any, State],
    principal: NamedDependency[Principal],
    state: State,
) -> Response[bytes]:
    generation = generation_of(state)
    chats = chats_of(state)
    body = decode_body(_FORK, await request.body(), generation.settings)
    chat, messages = await chats.fork(principal.user_id, body.chatId, body.messageId)
    return Response(chat_body(chat, encode_messages(messages)), status_code=201, media_type=_JSON)


async def _set(chats: ChatService, principal: Principal, chat_id: str, title: str | None, pinned: bool | None) -> Any:
    chat = await chats.store.update(principal.user_id, chat_id, title=title, pinned=pinned, now=time.time())
    if chat is None:
        raise missing(chat_id)
    return summary_object(chat)


@put(
    "/api/v1/chat/{chat_id:str}/pin",
    dependencies=_ANY,
    summary='Pin or unpin a chat (`{"pinned": true|false}`; no body toggles)',
    tags=_TAGS,
    operation_id=docs.PIN_OPERATION,
    operation_class=documented(
        body=PinRequest, body_examples=examples.PIN_EXAMPLES, body_required=False, replies=docs.PIN_REPLIES
    ),
)
async def pin(
    request: Request[Any, Any, State],
    principal: NamedDependency[Principal],
    state: State,
    chat_id: ChatId,
) -> Response[bytes]:
    generation = generation_of(state)
    chats = chats_of(state)
    raw = await request.body()
    if raw.strip():
        pinned = decode_body(_PIN, raw, generation.settings).pinned
    else:
        pinned = not (await chats.require(principal.user_id, chat_id)).pinned
    return _json(await _set(chats, principal, chat_id, None, pinned))


@patch(
    "/api/v1/chat/{chat_id:str}",
    dependencies=_ANY,
    summary="Rename and/or pin a chat",
    tags=_TAGS,
    operation_id=docs.PATCH_OPERATION,
    operation_class=documented(
        body=PatchRequest,
        body_examples=examples.PATCH_EXAMPLES,
        replies=docs.PATCH_REPLIES,
        refinements=docs.PATCH_REFINEMENTS,
    ),
)
async def patch_chat(
    request: Request[Any, Any, State],
    principal: NamedDependency[Principal],
    state: State,
    chat_id: ChatId,
) -> Response[bytes]:
    generation = generation_of(state)
    chats = chats_of(state)
    body = decode_body(_PATCH, await request.body(), generation.settings)
    if body.title is None and body.pinned is None:
        raise InvalidRequestError("send title and/or pinned")
    return _json(await _set(chats, principal, chat_id, body.title, body.pinned))


@delete(
    "/api/v1/chat/{chat_id:str}",
    status_code=204,
    dependencies=_ANY,
    summary="Delete a chat",
    tags=_TAGS,
    operation_id=docs.DELETE_OPERATION,
    operation_class=documented(replies=docs.DELETE_REPLIES),
)
async def delete_chat(
    principal: NamedDependency[Principal],
    chat_id: ChatId,
    state: State,
) -> None:
    chats = chats_of(state)
    if not await chats.store.delete(principal.user_id, chat_id):
        raise missing(chat_id)


@post(
    "/api/v1/chat/new",
    status_code=201,
    dependencies=_ANY,
    summary="Save a chat without generating",
    description="Titled by `title`, else by its first user message.",
    tags=_TAGS,
    operation_class=documented(
        body=NewChatRequest,
        body_examples=examples.NEW_EXAMPLES,
        replies=docs.NEW_REPLIES,
        refinements=docs.MESSAGE_REFINEMENTS,
    ),
)
async def new_chat(
    request: Request[Any, Any, State],
    principal: NamedDependency[Principal],
    state: State,
) -> Response[bytes]:
    generation = generation_of(state)
    chats = chats_of(state)
    body = decode_body(_NEW, await request.body(), generation.settings)
    persona = chats.personas.get(body.persona).name
    lines = body.messages
    messages = stored(lines, time.time())
    new = NewChat(title=body.title or auto_title(lines), title_auto=body.title is None, persona=persona)
    chat = await chats.create(principal.user_id, new, messages)
    return Response(chat_body(chat, encode_messages(messages)), status_code=201, media_type=_JSON)


ROUTES = [
    history,
    fetch,
    fork,
    pin,
    options_for("/api/v1/chat/{chat_id:str}", patch_chat, delete_chat),
    patch_chat,
    delete_chat,
    new_chat,
]
