"""The app-wide services handlers use, built once by the lifespan and kept on the app's state.

Handlers take ``state: State`` and call these, rather than declaring the services as dependencies: Litestar
resolves the dependencies of one level concurrently, in an anyio task group of their own, so a service beside
``principal`` cost every request a task group (about 0.2 ms of a 1 ms request, measured on the chat fetch).
"""

from typing import NamedTuple

from litestar.datastructures import State

from services.api.batches.service import BatchService
from services.api.chats.service import ChatService
from services.api.generation import GenerationService
from services.stores.files import FileRecords, FileStore

__all__ = ["Files", "batches_of", "chats_of", "files_of", "generation_of"]


class Files(NamedTuple):
    """Uploaded files: their bytes, and their records."""

    store: FileStore
    records: FileRecords


def generation_of(state: State) -> GenerationService:
    service: GenerationService = state.generation
    return service


def chats_of(state: State) -> ChatService:
    service: ChatService = state.chats
    return service


def files_of(state: State) -> Files:
    files: Files = state.files
    return files


def batches_of(state: State) -> BatchService:
    batches: BatchService = state.batches
    return batches
