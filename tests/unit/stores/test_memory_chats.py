"""The ``ChatStore`` contract against ``MemoryChatStore``."""

import pytest

from services.stores.chats import ChatLimits, ChatStore
from services.stores.memory_chats import MemoryChatStore
from tests.stores_contract import ChatStoreContract, MakeStore


@pytest.fixture
def make_store() -> MakeStore:
    def make(limits: ChatLimits) -> ChatStore:
        return MemoryChatStore(limits)

    return make


class TestMemoryChatStore(ChatStoreContract):
    pass
