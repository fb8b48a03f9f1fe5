"""Where the ``conduit`` command keeps its state, the ``conduit up`` lock, and the Redis ``keys``/``usage`` pick."""

import stat
from pathlib import Path

import pytest

from services import devstate
from services.devstate import (
    DEFAULT_REDIS_URL,
    AlreadyRunningError,
    DevState,
    StackRecord,
    StackStartingError,
    UpLock,
    choose_redis,
    state_dir,
)

ROOT = Path(__file__).resolve().parents[2]
RUNNING = StackRecord(pid=4242, api_url="http://127.0.0.1:8123", redis_url="redis://127.0.0.1:40001/0")


def test_state_dir_is_the_checkouts_dot_conduit_when_running_from_a_checkout():
    assert state_dir({}) == ROOT / ".conduit"


def test_state_dir_setting_wins(tmp_path: Path):
    assert state_dir({"CONDUIT_STATE_DIR": str(tmp_path / "s")}) == tmp_path / "s"


def test_state_dir_of_an_installed_package_is_the_per_user_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(devstate, "_CHECKOUT", tmp_path / "site-packages")  # no pyproject.toml beside the code
    assert state_dir({"XDG_STATE_HOME": "/var/state", "HOME": "/home/u"}) == Path("/var/state/conduit")
    assert state_dir({"HOME": "/home/u"}) == Path("/home/u/.local/state/conduit")
    # the XDG spec: a relative XDG_STATE_HOME is ignored
    assert state_dir({"XDG_STATE_HOME": "rel", "HOME": "/home/u"}) == Path("/home/u/.local/state/conduit")


def test_dev_secret_is_made_once_and_private(tmp_path: Path):
    state = DevState(tmp_path / "state")
    assert state.dev_secret(create=False) is None
    secret = state.dev_secret(create=True)
    assert secret
    assert len(secret) >= 32
    assert state.dev_secret(create=True) == secret
    assert stat.S_IMODE(state.secret_file.stat().st_mode) == 0o600
    assert [p.name for p in state.dir.iterdir()] == ["dev-secret"]  # no partial file left


def test_second_lock_holder_is_refused_with_the_first_ones_record(tmp_path: Path):
    state = DevState(tmp_path)
    first, second = UpLock(state), UpLock(state)
    first.acquire()
    try:
        first.publish(RUNNING)
        with pytest.raises(AlreadyRunningError) as refused:
            second.acquire()
        message = str(refused.value)
        assert "pid 4242" in message
        assert RUNNING.redis_url in message
        assert RUNNING.api_url in message
        assert str(tmp_path) in message
        assert state.stack_held()
    finally:
        first.release()
    assert not state.stack_file.exists()
    assert not state.stack_held()
    second.acquire()  # free again
    second.release()


def test_keys_use_the_running_stacks_redis(tmp_path: Path):
    state = DevState(tmp_path)
    lock = UpLock(state)
    lock.acquire()
    try:
        lock.publish(RUNNING)
        choice = choose_redis({}, state)
        assert choice.url == RUNNING.redis_url
        assert "running `conduit up` (pid 4242)" in choice.reason
        explicit = choose_redis({"REDIS_URL": "redis://10.0.0.5:6379/0"}, state)
        assert explicit.url == "redis://10.0.0.5:6379/0"
        assert "REDIS_URL" in explicit.reason
        assert RUNNING.redis_url in explicit.reason  # says the running stack uses another one
    finally:
        lock.release()


def test_a_record_without_a_lock_holder_is_stale_and_not_used(tmp_path: Path):
    state = DevState(tmp_path)
    state.stack_file.write_bytes(b'{"pid": 4242, "api_url": "http://x", "redis_url": "redis://127.0.0.1:40001/0"}')
    choice = choose_redis({}, state)
    assert choice.url == DEFAULT_REDIS_URL
    assert "no `conduit up` is running" in choice.reason
    assert "no longer running" in choice.reason
    assert "pid 4242" in choice.reason
    lock = UpLock(state)
    lock.acquire()  # the next `conduit up` drops it before publishing its own
    try:
        assert not state.stack_file.exists()
    finally:
        lock.release()


def test_a_stack_still_starting_is_not_guessed_at(tmp_path: Path):
    state = DevState(tmp_path)
    lock = UpLock(state)
    lock.acquire()
    try:
        with pytest.raises(StackStartingError, match="try again"):
            choose_redis({}, state)
        lock.publish(StackRecord(pid=1, api_url="http://x"))  # its Redis not known yet
        with pytest.raises(StackStartingError):
            choose_redis({}, state)
        assert choose_redis({"REDIS_URL": "redis://h:1/0"}, state).url == "redis://h:1/0"
    finally:
        lock.release()


def test_without_redis_url_or_stack_the_default_is_named(tmp_path: Path):
    choice = choose_redis({}, DevState(tmp_path / "none"))
    assert choice.url == DEFAULT_REDIS_URL
    assert choice.reason == "the default: REDIS_URL is not set and no `conduit up` is running"
