"""How the chat API answers, for ``/openapi.json``: every reply of each route (the response Structs are in
``responses.py``, the examples, made by the dialect's own functions, in ``examples.py``), errors drawn by the
dialect's own renderer, and the rules of its requests that the request Structs cannot state.
"""

from collections.abc import Iterable, Mapping

from services.api.dialects.chat import examples
from services.api.dialects.chat.errors import render_error
from services.api.dialects.chat.examples import CHAT
from services.api.dialects.chat.responses import (
    FRAMES,
    ChatGenerateResponse,
    ChatHistoryPage,
    ChatOneOffResponse,
    PersonaList,
    SavedChat,
    SavedChatSummary,
)
from services.api.dialects.chat.schemas import ChatError
from services.api.errors import LOST_REDIS
from services.api.openapi_doc import JOB_ID, RATE_LIMIT_HEADERS, EventStream, JsonSchema, Refinement, Reply
from services.api.openapi_parts import ERRORS, GENERATION_ERRORS, REDIS_DOWN, RESUME, ErrorCase, error_replies
from shared.errors import ErrorCode

__all__ = [
    "CHOICE",
    "DELETE_OPERATION",
    "FETCH_OPERATION",
    "FORK_OPERATION",
    "PATCH_OPERATION",
    "PIN_OPERATION",
    "DELETE_REPLIES",
    "FETCH_REPLIES",
    "FORK_REPLIES",
    "GENERATE_REFINEMENTS",
    "GENERATE_REPLIES",
    "HISTORY_REPLIES",
    "MESSAGE_REFINEMENTS",
    "NEW_REPLIES",
    "ONEOFF_REPLIES",
    "PATCH_REFINEMENTS",
    "PATCH_REPLIES",
    "PERSONAS_REPLIES",
    "PIN_REPLIES",
    "STREAM",
    "STREAM_REPLIES",
]

#: how a generation's model is chosen (the routes' descriptions)
CHOICE = (
    "The model is `model` if given (`provider/model`, a catalog id or a bare name by prefix), else the persona's, "
    "else OpenAI's default, or the built-in `echo` when no OpenAI key is configured. Free tier: 403."
)

# --- rules the request Structs cannot state (the handlers check them), and one of the response Structs ---

_REFUSED = "not available on this gateway yet, so `true` is refused (400, `unsupported_parameter`)."
GENERATE_REFINEMENTS = (
    Refinement(
        "ChatTools",
        {
            "research": {"const": False, "default": False, "description": f"Multi-step research: {_REFUSED}"},
            "internet": {"const": False, "default": False, "description": f"Web search: {_REFUSED}"},
        },
    ),
)
PATCH_REFINEMENTS = (
    Refinement(
        "PatchRequest",
        extra={
            "description": "`title` and/or `pinned` (one of them, not null).",
            "anyOf": [
                {"required": ["title"], "properties": {"title": {"type": "string"}}},
                {"required": ["pinned"], "properties": {"pinned": {"type": "boolean"}}},
            ],
        },
    ),
)
_ASSISTANT_ONLY = ["model", "persona", "usage", "status"]
MESSAGE_REFINEMENTS = (
    Refinement(
        "SavedMessage",
        extra={
            # a reply the gateway wrote carries them all (usage when the provider reported it); an assistant
            # message a client saved itself (`/new`, `chat_history`) none, like every other message
            "if": {"anyOf": [{"required": [name]} for name in [*_ASSISTANT_ONLY, "error"]]},
            "then": {
                "required": ["model", "persona", "status"],
                "properties": {"role": {"const": "assistant"}},
            },
        },
    ),
)

# --- streams ---

_SSE_TEXT = (
    '`id:` and `data:` lines per frame. Each `data` is `{"type", "content"}`: `thinking_update` (a note when a '
    "worker starts the reply, then the provider's reasoning as it comes), `final_response` (the reply, piece by "
    "piece), then one `metadata` (or `error` if the reply failed), then `data: [DONE]`. Keep-alive comments "
    "(`: ping`) come while the upstream is silent. Resume with `GET /v1/streams/{job_id}` and `Last-Event-ID`."
)
STREAM = EventStream(_SSE_TEXT, examples.STREAMS, FRAMES)
_ONEOFF_STREAM = EventStream(
    f"With `stream: true`: {_SSE_TEXT} `metadata` has no `chatId` and `title`.", examples.ONEOFF_STREAMS, FRAMES
)

# --- errors ---


def _errors(statuses: Iterable[int], overrides: Mapping[int, ErrorCase] | None = None) -> dict[int, Reply]:
    return error_replies(render_error, ChatError, statuses, overrides)


_GONE = "(it never was, is someone else's, or was deleted)"
_NO_CHAT = ErrorCase(f"No chat of yours by that id {_GONE}.", ErrorCode.NOT_FOUND, f"no chat {CHAT!r}", "chatId")
_NO_REDIS = ErrorCase(
    "Redis is unreachable (chats are kept there, API keys checked there); try again shortly.",
    ErrorCode.UNAVAILABLE,
    LOST_REDIS,
)
_CAPS = (
    "the body is larger than the gateway takes (`CONDUIT_MAX_BODY_BYTES`), a message is larger than "
    "`CONDUIT_CHAT_MAX_MESSAGE_BYTES`, or the chat would hold more than `CONDUIT_CHAT_MAX_MESSAGES` messages."
)


def _too_large(field: str) -> ErrorCase:
    param = f"{field}.[0].content"
    message = f"{field}[0].content is 250000 bytes; a message may hold at most 200000"
    return ErrorCase(f"Too large: {_CAPS}", ErrorCode.REQUEST_TOO_LARGE, message, param)


_CHATS_CAP = "You have as many chats as allowed (`CONDUIT_CHAT_MAX_CHATS`); delete some first."
_FULL = ErrorCase(_CHATS_CAP, ErrorCode.PERMISSION_DENIED, "you have 50000 chats, the most allowed; delete some first")
_BAD_ID = ErrorCase(
    "The chat id is longer than 64 characters.",
    ErrorCode.INVALID_REQUEST,
    f"Validation failed for GET /api/v1/chat/fetch/{'x' * 65}",
)
_BAD_BODY = ErrorCase(
    "The body is not JSON or does not match the schema (`param` names the field), or the chat id in the path is "
    "longer than 64 characters.",
    ErrorCode.INVALID_REQUEST,
    "Invalid 'pinned': Expected `bool`, got `int`",
    "pinned",
)
_MANAGE = {400: _BAD_BODY, 403: _FULL, 404: _NO_CHAT, 413: _too_large("messages"), 503: _NO_REDIS}
_GENERATION = {
    400: ErrorCase(
        f"{ERRORS[400].description.removesuffix('.')}; an unknown persona; `tools.research` or `tools.internet` true.",
        ErrorCode.INVALID_REQUEST,
        "Unknown persona 'pirate'; the personas are: coder, maya, tutor",
        "persona",
    ),
    413: _too_large("chat_history"),
}
_ON_A_CHAT = {
    **_GENERATION,
    403: ErrorCase(f"{ERRORS[403].description} Or: {_CHATS_CAP}", ErrorCode.PERMISSION_DENIED, ERRORS[403].message),
    404: ErrorCase(
        f"No chat of yours by that `chatId` {_GONE}; or no such model.", ErrorCode.NOT_FOUND, _NO_CHAT.message, "chatId"
    ),
    409: ErrorCase(
        "A reply is being generated on this chat already (wait for it to finish); or `x-conduit-job-name` names a "
        "job of yours that is still known.",
        ErrorCode.CONFLICT,
        f"chat {CHAT!r} is generating a reply already; wait for it to finish",
    ),
}
_NO_MESSAGE = ErrorCase(
    f"No chat of yours by that `chatId` {_GONE}, or it has no message `messageId`.",
    ErrorCode.NOT_FOUND,
    f"chat {CHAT!r} has no message 'msg_0'",
    "messageId",
)
_NO_FIELD = ErrorCase(
    f"{_BAD_BODY.description} Or neither `title` nor `pinned` was sent.",
    ErrorCode.INVALID_REQUEST,
    "send title and/or pinned",
)

# --- links: from a reply naming a chat to the operations on it ---

#: the operation ids of the routes on one chat (they set them)
FETCH_OPERATION, FORK_OPERATION, PIN_OPERATION, PATCH_OPERATION, DELETE_OPERATION = (
    "fetch_chat",
    "fork_chat",
    "pin_chat",
    "patch_chat",
    "delete_chat",
)


def _chat_links(chat_id: str) -> dict[str, JsonSchema]:
    """Links to the operations on the chat that ``chat_id`` (a runtime expression on the reply) names."""
    return {
        name: {"operationId": operation, "parameters": {"chat_id": chat_id}, "description": what}
        for name, operation, what in (
            ("fetch", FETCH_OPERATION, "The chat with its messages."),
            ("pin", PIN_OPERATION, "Pin or unpin the chat."),
            ("patch", PATCH_OPERATION, "Rename or pin the chat."),
            ("delete", DELETE_OPERATION, "Delete the chat."),
        )
    }


_SAVED = _chat_links("$response.body#/id")
_FORK = {
    "fork": {
        "operationId": FORK_OPERATION,
        "requestBody": {"chatId": "$response.body#/id", "messageId": "$response.body#/messages/0/id"},
        "description": "A new chat holding the chat's first message.",
    }
}

# --- replies ---

_OUT = (JOB_ID, *RATE_LIMIT_HEADERS)
_STREAMED = "The reply as a stream; the chat holds it when the stream ends (also when the client has gone)."
GENERATE_REPLIES = {
    201: Reply(
        "The reply; the chat holds it, and the messages sent, when this is sent.",
        ChatGenerateResponse,
        {"a reply": examples.GENERATE_BODY},
        headers=_OUT,
        links={**RESUME, **_chat_links("$response.body#/chatId")},
    ),
    200: Reply(
        f"Only with `stream: true`: {_STREAMED[0].lower()}{_STREAMED[1:]}", stream=STREAM, headers=_OUT, links=RESUME
    ),
    **_errors(GENERATION_ERRORS, _ON_A_CHAT),
}
STREAM_REPLIES = {
    200: Reply(_STREAMED, stream=STREAM, headers=_OUT, links=RESUME),
    **_errors(GENERATION_ERRORS, _ON_A_CHAT),
}
ONEOFF_REPLIES = {
    200: Reply(
        "The reply (not saved), or with `stream: true` a stream of it.",
        ChatOneOffResponse,
        {"a reply": examples.ONEOFF_BODY},
        _ONEOFF_STREAM,
        _OUT,
        RESUME,
    ),
    **_errors(GENERATION_ERRORS, _GENERATION),
}
PERSONAS_REPLIES = {
    200: Reply("The personas, by name.", PersonaList, {"personas": examples.PERSONA_LIST}),
    **_errors((401, 503), {503: REDIS_DOWN}),
}
_PAGE = ErrorCase(
    "`limit` is not 1 to 100, `after` is longer than 64 characters, or `after` names no chat of yours (it may have "
    "been deleted meanwhile).",
    ErrorCode.INVALID_REQUEST,
    "no chat 'chat_x' to list after (it may have been deleted)",
    "after",
)
HISTORY_REPLIES = {
    200: Reply("Your chats: pinned first, then by latest activity.", ChatHistoryPage, examples.HISTORY_PAGES),
    **_errors((400, 401, 503), {400: _PAGE, 503: _NO_REDIS}),
}
FETCH_REPLIES = {
    200: Reply("The chat with its messages, oldest first.", SavedChat, examples.CHAT_BODIES, links=_FORK),
    **_errors((400, 401, 404, 503), {400: _BAD_ID, 404: _NO_CHAT, 503: _NO_REDIS}),
}
FORK_REPLIES = {
    201: Reply(
        "The new chat; `forkedFrom` names the origin.", SavedChat, {"a fork": examples.FORKED_BODY}, links=_SAVED
    ),
    **_errors((400, 401, 403, 404, 413, 503), {**_MANAGE, 404: _NO_MESSAGE}),
}
_AS_NOW = "The chat as it is now (without its messages)."
PIN_REPLIES = {
    200: Reply(_AS_NOW, SavedChatSummary, {"a pinned chat": examples.SUMMARY_BODY}),
    **_errors((400, 401, 404, 413, 503), _MANAGE),
}
PATCH_REPLIES = {
    200: Reply(_AS_NOW, SavedChatSummary, {"a pinned chat": examples.SUMMARY_BODY}),
    **_errors((400, 401, 404, 413, 503), {**_MANAGE, 400: _NO_FIELD}),
}
DELETE_REPLIES = {
    204: Reply("Deleted, with its messages."),
    **_errors((400, 401, 404, 503), {400: _BAD_ID, 404: _NO_CHAT, 503: _NO_REDIS}),
}
NEW_REPLIES = {
    201: Reply("The chat.", SavedChat, {"a chat": examples.CHAT_BODIES["a chat"]}, links={**_SAVED, **_FORK}),
    **_errors((400, 401, 403, 413, 503), _MANAGE),
}
