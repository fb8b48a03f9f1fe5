"""Bodies and query strings of the chat API (``/api/v1/chat/*``)."""

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from services.api.settings import ApiSettings
from shared.errors import ErrorCode, InvalidRequestError

__all__ = [
    "ChatRequest",
    "ChatTools",
    "ForkRequest",
    "GenerateRequest",
    "ChatError",
    "ErrorDetail",
    "HistoryMessage",
    "NewChatRequest",
    "PatchRequest",
    "PinRequest",
]

Title = Annotated[str, Meta(min_length=1, max_length=200)]
ChatId = Annotated[str, Meta(min_length=1, max_length=64)]


class HistoryMessage(msgspec.Struct, kw_only=True):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatTools(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Options of the answer's tools. ``research`` (a multi-step research mode) and ``internet`` (web search)
    are known and refused when true until the gateway runs them; any other key is a 400."""

    research: bool = False
    internet: bool = False

    def check(self) -> None:
        for option in ("research", "internet"):
            if getattr(self, option):
                raise InvalidRequestError(
                    f"tools.{option} is not available on this gateway yet",
                    code=ErrorCode.UNSUPPORTED_PARAMETER,
                    param=f"tools.{option}",
                )


def _check_messages(messages: list[HistoryMessage], field: str, settings: ApiSettings) -> None:
    cap = settings.chat_max_message_bytes
    for index, message in enumerate(messages):
        size = len(message.content.encode())
        if size > cap:
            raise InvalidRequestError(
                f"{field}.[{index}].content is {size} bytes; a message may hold at most {cap}",
                code=ErrorCode.REQUEST_TOO_LARGE,
                param=f"{field}.[{index}].content",
            )
    if len(messages) > settings.chat_max_messages:
        raise InvalidRequestError(
            f"{field} holds {len(messages)} messages; a chat may hold at most {settings.chat_max_messages}",
            code=ErrorCode.REQUEST_TOO_LARGE,
            param=field,
        )


class ChatRequest(msgspec.Struct, kw_only=True):
    """``POST /api/v1/chat``: a one-off answer, not saved."""

    chat_history: Annotated[list[HistoryMessage], Meta(min_length=1)]
    persona: Annotated[str, Meta(max_length=40)] | None = None
    #: a model other than the persona's (``provider/model``, a catalog id, or a bare name by prefix)
    model: Annotated[str, Meta(max_length=200)] | None = None
    voice: bool = False
    fastContext: Annotated[list[str | dict[str, Any]], Meta(max_length=50)] = []  # noqa: N815 - the wire name
    stream: bool = False

    def check_limits(self, settings: ApiSettings) -> None:
        _check_messages(self.chat_history, "chat_history", settings)
        context = sum(len(item if isinstance(item, str) else msgspec.json.encode(item)) for item in self.fastContext)
        if context > settings.chat_max_message_bytes:
            raise InvalidRequestError(
                f"fastContext holds {context} bytes; at most {settings.chat_max_message_bytes} are allowed",
                code=ErrorCode.REQUEST_TOO_LARGE,
                param="fastContext",
            )


class GenerateRequest(ChatRequest, kw_only=True):
    """``POST /api/v1/chat/generate`` (``chatId`` also as a query parameter) and ``/generate/stream``."""

    tools: ChatTools | None = None
    scope: Annotated[str, Meta(min_length=1, max_length=64)] = "internal"
    chatId: ChatId | None = None  # noqa: N815


class NewChatRequest(msgspec.Struct, kw_only=True):
    title: Title | None = None
    messages: list[HistoryMessage] = []
    persona: Annotated[str, Meta(max_length=40)] | None = None

    def check_limits(self, settings: ApiSettings) -> None:
        _check_messages(self.messages, "messages", settings)


class ForkRequest(msgspec.Struct, kw_only=True):
    chatId: ChatId  # noqa: N815
    messageId: Annotated[str, Meta(min_length=1, max_length=64)]  # noqa: N815


class PinRequest(msgspec.Struct, kw_only=True):
    pinned: bool


class PatchRequest(msgspec.Struct, kw_only=True):
    title: Title | None = None
    pinned: bool | None = None


class ErrorDetail(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    status: int
    code: str
    message: str
    param: str | None


class ChatError(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every error on ``/api/v1/*``."""

    error: ErrorDetail
