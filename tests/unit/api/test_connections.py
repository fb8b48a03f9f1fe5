"""The connection cap fits the process's file-descriptor limit, raising its soft value first."""

import resource

import pytest

from services.api.connections import FD_RESERVE, connection_limits
from services.api.settings import ApiSettings


def _limits(monkeypatch: pytest.MonkeyPatch, soft: int, hard: int) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    state = {"soft": soft}

    def getrlimit(_: int) -> tuple[int, int]:
        return state["soft"], hard

    def setrlimit(_: int, limits: tuple[int, int]) -> None:
        calls.append(limits)
        state["soft"] = limits[0]

    monkeypatch.setattr(resource, "getrlimit", getrlimit)
    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    return calls


def test_the_soft_limit_is_raised_to_make_room_for_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _limits(monkeypatch, soft=1024, hard=65536)
    limits = connection_limits(ApiSettings(max_connections=4096))
    assert calls == [(4096 + FD_RESERVE, 65536)]
    assert limits.max_connections == 4096


def test_the_cap_is_lowered_to_fit_a_low_hard_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _limits(monkeypatch, soft=512, hard=1024)
    limits = connection_limits(ApiSettings(max_connections=4096, header_timeout=3, body_timeout=7))
    assert calls == [(1024, 1024)]
    assert limits.max_connections == 1024 - FD_RESERVE
    assert (limits.header_timeout, limits.body_timeout, limits.keep_alive_timeout) == (3, 7, 5)


def test_a_large_enough_limit_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _limits(monkeypatch, soft=resource.RLIM_INFINITY, hard=resource.RLIM_INFINITY)
    assert connection_limits(ApiSettings(max_connections=100)).max_connections == 100
    assert calls == []
