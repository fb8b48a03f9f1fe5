"""A better title for a new chat, written by a model in the background (``CONDUIT_CHAT_TITLE_MODEL``).

After a chat's first reply is saved, while its title is still the one made from the first user message, the
worker asks the title model for a few words (one short upstream call through the same provider adapters,
not on any client's path) and replaces the title, unless a user has renamed the chat meanwhile. A failure
leaves the automatic title, and is logged.
"""

import asyncio
import contextlib
import logging
import time
import uuid

import httpx

from services.stores.chats import ChatStore
from services.worker.generate import resolve_target
from services.worker.providers.base import TextPiece
from services.worker.providers.registry import Streamer
from services.worker.settings import WorkerSettings
from shared.catalog import Catalog, resolve_model
from shared.jobs import ChatMessage, GenerationJob, Principal, SamplingParams

__all__ = ["TITLE_PROMPT", "Titler", "clean_title"]

log = logging.getLogger("conduit.worker")

TITLE_PROMPT = (
    "Write a title of at most six words for the conversation below. Answer with the title alone: no quotes, "
    "no trailing period."
)
MAX_TITLE = 80
#: at most this many titles are written at once by one worker process (more are skipped: they keep theirs)
MAX_PENDING = 64


def clean_title(text: str) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = line.strip("\"'`*# ").removeprefix("Title:").strip().rstrip(".").strip("\"' ")
    return line[:MAX_TITLE]


class Titler:
    def __init__(
        self,
        store: ChatStore,
        settings: WorkerSettings,
        catalog: Catalog,
        client: httpx.AsyncClient,
        streamers: dict[str, Streamer],
    ) -> None:
        self._store = store
        self._provider, self._model = resolve_model(catalog, settings.chat_title_model)
        self._settings, self._catalog = settings, catalog
        self._client, self._streamers = client, streamers
        self._pending: set[asyncio.Task[None]] = set()

    def schedule(self, owner: str, chat_id: str, question: str, answer: str) -> None:
        if len(self._pending) >= MAX_PENDING:
            return
        task = asyncio.create_task(self._retitle(owner, chat_id, question, answer), name=f"title:{chat_id}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _retitle(self, owner: str, chat_id: str, question: str, answer: str) -> None:
        try:
            title = clean_title(await self.write(owner, question, answer))
            if title:
                await self._store.retitle(owner, chat_id, title)
        except Exception as exc:
            log.warning("could not write a title for chat %s: %s", chat_id, exc)

    async def write(self, owner: str, question: str, answer: str) -> str:
        target = resolve_target(self._provider, self._model, self._settings, self._catalog)
        conversation = f"User: {question[:2000]}\n\nAssistant: {answer[:2000]}"
        job = GenerationJob(
            id=uuid.uuid4().hex,
            request_id="title",
            principal=Principal(user_id=owner, tier="internal"),
            provider=self._provider,
            model=self._model,
            messages=[ChatMessage(role="system", content=TITLE_PROMPT), ChatMessage(role="user", content=conversation)],
            params=SamplingParams(temperature=0.2, max_tokens=24),
            created=time.time(),
        )
        parts: list[str] = []
        async with asyncio.timeout(30):
            stream = self._streamers[target.spec.kind](self._client, job, target)
            async with contextlib.aclosing(stream) as pieces:
                parts.extend([piece.text async for piece in pieces if isinstance(piece, TextPiece)])
        return "".join(parts)

    async def aclose(self) -> None:
        for task in list(self._pending):
            task.cancel()
        if self._pending:
            await asyncio.wait(self._pending, timeout=5)
