"""App-wide dependencies: the typed collaborators handlers take by name (built once by the lifespan)."""

from litestar.datastructures import State
from litestar.di import Provide

from services.api.chats.service import ChatService
from services.api.generation import GenerationService

__all__ = ["DEPENDENCIES"]


def provide_generation(state: State) -> GenerationService:
    service: GenerationService = state.generation
    return service


def provide_chats(state: State) -> ChatService:
    service: ChatService = state.chats
    return service


DEPENDENCIES = {
    "generation": Provide(provide_generation, sync_to_thread=False),
    "chats": Provide(provide_chats, sync_to_thread=False),
}
