import gc
from collections.abc import Iterator

import pytest

from shared.heap import THRESHOLDS, settle


@pytest.fixture
def _restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("_restore_gc")
def test_settle_freezes_what_lives_and_raises_the_thresholds() -> None:
    gc.unfreeze()
    kept = [[index] for index in range(1000)]  # lists are tracked by the collector
    settle()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == THRESHOLDS
    assert gc.get_count()[0] < THRESHOLDS[0]  # a full collection just ran
