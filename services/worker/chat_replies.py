"""Saving a chat's reply when its job ends (a job-end hook).

The worker saves it, not the API, because the worker is the one process that always sees a job end: the
client may have hung up (a detached job runs on), its API replica may have died, and a cancelled job's
partial answer is known only here. The turn (the client's new messages, which the job carries, and the reply)
is saved, and the chat let go for the next generation, by one command sent ahead of the job's terminal event
in the event's own round trip: a client that saw the end of the stream finds the reply in the chat, and may
generate again at once; a chat never holds a turn's question without the turn's end.

A job that ended with an answer saves it whole; one cancelled or failed after part of its answer saves that
part marked ``cut_short`` with the job's error code; one that failed before any text saves nothing (the
chat keeps the user's messages, and a retry that sends them again does not repeat them).
"""

import time
from collections.abc import Sequence
from typing import Protocol

from services.stores.chats import MessageUsage, StoredMessage, ms
from services.worker.job_end import Command, JobEnd
from services.worker.titles import Titler
from shared.events import Done, Failed
from shared.jobs import GenerationJob, message_text

__all__ = ["ChatReplies", "TurnEnds", "reply_of"]


def reply_of(job: GenerationJob, end: JobEnd, now: float) -> StoredMessage | None:
    turn = job.chat
    if turn is None:
        return None
    failed = end.terminal if isinstance(end.terminal, Failed) else None
    if failed is not None and not end.text:
        return None
    usage = end.usage
    return StoredMessage(
        id=turn.reply_id,
        role="assistant",
        content=end.text,
        created_at=ms(now),
        model=end.terminal.model if isinstance(end.terminal, Done) and end.terminal.model else end.model,
        usage=MessageUsage(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.prompt_tokens + usage.completion_tokens,
        )
        if usage is not None
        else None,
        persona=turn.persona,
        status="cut_short" if failed is not None else "complete",
        error=failed.code if failed is not None else None,
    )


class TurnEnds(Protocol):
    def finish_turn_command(
        self, owner: str, chat_id: str, job_id: str, messages: Sequence[StoredMessage], now: float
    ) -> Command:
        """``ChatStore.finish_turn`` as a command to send (``RedisChatStore``)."""
        ...


class ChatReplies:
    def __init__(self, store: TurnEnds, titler: "Titler | None" = None) -> None:
        self._store = store
        self._titler = titler

    async def on_end(self, job: GenerationJob, end: JobEnd) -> Command | None:
        """The job-end hook: the command saving the turn and letting go of the chat (sent ahead of the job's
        terminal event), and a better title asked for in the background after a new chat's first reply."""
        turn = job.chat
        if turn is None:
            return None
        now = time.time()
        reply = reply_of(job, end, now)
        turns = [StoredMessage(id=m.id, role=m.role, content=m.content, created_at=m.created_at) for m in turn.turns]
        saved = [*turns, reply] if reply is not None else turns
        command = self._store.finish_turn_command(job.principal.user_id, turn.chat_id, job.id, saved, now)
        if self._titler is not None and turn.first and reply is not None and reply.status == "complete":
            question = next((message_text(m) for m in reversed(job.messages) if m.role == "user"), "")
            self._titler.schedule(job.principal.user_id, turn.chat_id, question, reply.content)
        return command
