"""The ``conduit`` command's local state: the development JWT secret and the record of a running ``conduit up``.

It lives in one directory: ``CONDUIT_STATE_DIR`` if set; else ``.conduit/`` in the checkout when Conduit runs
from one (``make up``, an editable install); else, for an installed package, the per-user state directory
``$XDG_STATE_HOME/conduit`` (``~/.local/state/conduit``). Not the current directory: the secret a token is
signed with, and the Redis the running stack uses, must not depend on where a command happens to be run.

One ``conduit up`` per state directory: it holds an exclusive ``flock`` on ``up.lock`` for its whole life and
publishes ``up.json`` (its pid, Redis URL and API URL) while it runs. The lock, not the file, says whether a
stack is running: the kernel drops it when the process dies, however it dies, so a record left behind by a
killed ``conduit up`` is recognised as stale and never used.
"""

import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

import msgspec

__all__ = [
    "DEFAULT_REDIS_URL",
    "AlreadyRunningError",
    "DevState",
    "RedisChoice",
    "StackRecord",
    "StackStartingError",
    "UpLock",
    "choose_redis",
    "files_dir",
    "state_dir",
]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: the checkout this module runs from, if it runs from one (an installed wheel has no pyproject.toml beside it)
_CHECKOUT = Path(__file__).resolve().parent.parent


def state_dir(environ: Mapping[str, str]) -> Path:
    """Where the ``conduit`` command keeps its state (see the module docstring)."""
    explicit = environ.get("CONDUIT_STATE_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser().resolve()
    if (_CHECKOUT / "pyproject.toml").is_file():
        return _CHECKOUT / ".conduit"
    xdg = environ.get("XDG_STATE_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():  # the XDG spec: a relative value is to be ignored
        return Path(xdg) / "conduit"
    home = environ.get("HOME", "").strip()
    return (Path(home) if home else Path.home()) / ".local" / "state" / "conduit"


def files_dir(configured: str, environ: Mapping[str, str]) -> Path:
    """Where uploaded files are kept: ``configured`` (``CONDUIT_FILES_DIR``), else ``files/`` in the state
    directory; the API and the batch workers resolve it alike."""
    return Path(configured).expanduser() if configured.strip() else state_dir(environ) / "files"


class StackRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What a running ``conduit up`` publishes in ``up.json``."""

    pid: int
    api_url: str
    redis_url: str = ""  # empty while its Redis is starting

    def describe(self) -> str:
        redis = self.redis_url or "(starting)"
        return f"pid {self.pid}, Redis {redis}, API {self.api_url}"


class AlreadyRunningError(Exception):
    """Another ``conduit up`` holds the state directory's lock."""

    def __init__(self, state: "DevState", record: StackRecord | None) -> None:
        self.record = record
        running = record.describe() if record else "starting"
        super().__init__(
            f"another `conduit up` is running from {state.dir} ({running}); stop it first "
            f"(Ctrl-C in its terminal{f', or kill {record.pid}' if record else ''}), "
            "or give this one its own CONDUIT_STATE_DIR"
        )


class DevState:
    """The files in one state directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.secret_file = directory / "dev-secret"
        self.lock_file = directory / "up.lock"
        self.stack_file = directory / "up.json"  # the running stack's record (its Redis URL: the "pointer")
        self.redis_dir = directory / "redis"  # an embedded redis-server's working directory

    def ensure(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def dev_secret(self, create: bool) -> str | None:
        """The development JWT secret, made on first use when ``create``."""
        if self.secret_file.exists():
            return self.secret_file.read_text().strip()
        if not create:
            return None
        self.ensure()
        partial = self.dir / f"dev-secret.{os.getpid()}.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):  # another command made it first: theirs stands
            os.link(partial, self.secret_file)
        partial.unlink()
        return self.secret_file.read_text().strip()

    def stack_held(self) -> bool:
        """Whether a ``conduit up`` holds the lock now (a shared, non-blocking probe, released at once)."""
        try:
            fd = os.open(self.lock_file, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also releases the probe's lock
        return False

    def read_record(self) -> StackRecord | None:
        try:
            return msgspec.json.decode(self.stack_file.read_bytes(), type=StackRecord)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None


class UpLock:
    """The state directory's ``conduit up`` lock, held from ``acquire()`` until ``release()`` (or death)."""

    #: how long ``acquire`` retries: a reader's probe holds a shared lock for microseconds
    PATIENCE = 0.5

    def __init__(self, state: DevState) -> None:
        self.state = state
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``AlreadyRunningError`` (within ``PATIENCE``); drop any stale record."""
        self.state.ensure()
        fd = os.open(self.state.lock_file, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
        deadline = time.monotonic() + self.PATIENCE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise AlreadyRunningError(self.state, self.state.read_record()) from None
                time.sleep(0.02)
        self._fd = fd
        self.state.stack_file.unlink(missing_ok=True)  # left by a `conduit up` that was killed

    def publish(self, record: StackRecord) -> None:
        """Write the record atomically (readers see the old one or the new one, never half)."""
        if self._fd is None:
            raise RuntimeError("publish() without the lock")
        partial = self.state.stack_file.with_suffix(".json.partial")
        partial.write_bytes(msgspec.json.encode(record) + b"\n")
        partial.replace(self.state.stack_file)

    def release(self) -> None:
        """Remove the record, then let go of the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.state.stack_file.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


class RedisChoice(msgspec.Struct, frozen=True):
    """The Redis a command uses, and a sentence saying why (printed to stderr)."""

    url: str
    reason: str


class StackStartingError(Exception):
    """A ``conduit up`` holds the lock but has not published its Redis yet."""


def choose_redis(environ: Mapping[str, str], state: DevState) -> RedisChoice:
    """``REDIS_URL``; else the Redis of the ``conduit up`` running from ``state``; else the default local one."""
    held = state.stack_held()
    record = state.read_record()
    running = record if held and record is not None and record.redis_url else None
    url = environ.get("REDIS_URL", "").strip()
    if url:
        note = ""
        if running is not None and running.redis_url != url:
            note = f"; note: the running `conduit up` (pid {running.pid}) uses {running.redis_url}"
        return RedisChoice(url, f"from REDIS_URL{note}")
    if running is not None:
        return RedisChoice(running.redis_url, f"the one the running `conduit up` (pid {running.pid}) uses")
    if held:
        raise StackStartingError(
            f"a `conduit up` is starting from {state.dir} and has not published its Redis yet; "
            "try again in a moment, or set REDIS_URL"
        )
    reason = "the default: REDIS_URL is not set and no `conduit up` is running"
    if record is not None:
        reason += (
            f" (ignored {state.stack_file}, left by a `conduit up` that is no longer running: "
            f"pid {record.pid}, Redis {record.redis_url or '-'})"
        )
    return RedisChoice(DEFAULT_REDIS_URL, reason)
