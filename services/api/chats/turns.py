"""Pure rules of a chat turn: which of the messages a client sent are new, the title made from the first user
message, and the context a model sees (persona, voice, fast context, then the history)."""

import re
from collections.abc import Sequence
from typing import NamedTuple, Protocol

from services.stores.chats import StoredMessage
from shared.jobs import ChatMessage, Role

__all__ = ["VOICE_INSTRUCTION", "Line", "Said", "auto_title", "context_messages", "new_lines"]

#: what ``voice: true`` adds to the system prompt (the README quotes it)
VOICE_INSTRUCTION = (
    "Your answer will be read aloud by a speech synthesizer. Write plain spoken sentences: no markdown, no "
    "lists, tables, headings, code blocks, links or emoji. Keep sentences short, and the whole answer brief."
)
TITLE_CHARS = 60
_SPACE = re.compile(r"\s+")


class Said(Protocol):
    """A message as a client sends it (the dialect's ``chat_history`` items, taken as they were decoded)."""

    @property
    def role(self) -> Role: ...

    @property
    def content(self) -> str: ...


class Line(NamedTuple):
    """A message made here (``Said``)."""

    role: Role
    content: str


def new_lines(stored: Sequence[StoredMessage], sent: Sequence[Said]) -> list[Said]:
    """The messages of ``sent`` the chat does not hold yet: ``sent`` may repeat the whole chat (or its last
    messages) before its new ones, so the longest tail of ``stored`` that ``sent`` starts with is dropped."""
    for overlap in range(min(len(stored), len(sent)), 0, -1):
        tail = stored[len(stored) - overlap :]
        if all(m.role == line.role and m.content == line.content for m, line in zip(tail, sent, strict=False)):
            return list(sent[overlap:])
    return list(sent)


def auto_title(lines: Sequence[Said]) -> str:
    """The first user message, on one line, cut at a word boundary near ``TITLE_CHARS`` characters."""
    text = next((_SPACE.sub(" ", line.content).strip() for line in lines if line.role == "user"), "")
    if not text:
        return "New chat"
    if len(text) <= TITLE_CHARS:
        return text
    cut = text[:TITLE_CHARS].rsplit(" ", 1)[0] or text[:TITLE_CHARS]
    return cut.rstrip(" ,.;:") + "…"


def context_messages(
    system: str, voice: bool, fast_context: Sequence[str], history: Sequence[StoredMessage | Said]
) -> list[ChatMessage]:
    """What the model sees: the persona's system prompt (with the voice instruction), the fast context as
    material before the history, then the history."""
    prompt = f"{system}\n\n{VOICE_INSTRUCTION}" if voice else system
    messages = [ChatMessage(role="system", content=prompt)] if prompt else []
    if fast_context:
        notes = "\n\n".join(f"[{index}] {item}" for index, item in enumerate(fast_context, 1))
        messages.append(
            ChatMessage(role="system", content=f"Context for this conversation (use it where it helps):\n\n{notes}")
        )
    messages.extend(ChatMessage(role=m.role, content=m.content) for m in history)
    return messages
