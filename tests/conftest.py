"""Markers by directory; the anyio backend for async tests."""

from pathlib import Path

import pytest

_TIERS = {"integration": pytest.mark.integration, "e2e": pytest.mark.e2e}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier, mark in _TIERS.items():
            if tier in parts:
                item.add_marker(mark)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


from tests.stack import _fresh_fake, fake, logs, redis_server, stack  # noqa: E402, F401 - shared fixtures
