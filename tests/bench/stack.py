"""The processes a benchmark run starts: a private redis-server, the fake upstream, Conduit's API and workers.

Conduit runs as a user runs it (``conduit api`` and ``conduit worker`` with their default settings); only the
provider's key and base URL point at the fake upstream. Every process is ours, on loopback, and is stopped when
the run ends. ``Sampler`` reads the RSS and CPU time of the gateway's processes while a scenario runs.
"""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

from services.api.auth.tokens import issue_token
from services.stack import find_redis_server
from shared import keys

__all__ = ["BenchStack", "Sampler", "free_port"]

ROOT = Path(__file__).resolve().parents[2]
#: the bench's user is an enterprise one whose limits are far above the load, so every request still goes
#: through the admission (its cost is part of what is measured) and none is refused
BENCH_LIMITS = {
    "CONDUIT_TIER_ENTERPRISE_REQUESTS_PER_MINUTE": "100000000",
    "CONDUIT_TIER_ENTERPRISE_TOKENS_PER_MINUTE": "1000000000000",
    "CONDUIT_TIER_ENTERPRISE_CONCURRENT_STREAMS": "1000000",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")
        time.sleep(0.1)


@dataclass
class BenchStack:
    """Redis + fake upstream + Conduit (one API process, ``workers`` worker processes)."""

    log_dir: Path
    upstream_port: int = 0
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    redis_url: str = ""
    api_port: int = 0
    api_ports: list[int] = field(default_factory=list)

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}/v1"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def token(self) -> str:
        return issue_token(self.secret, "bench", "enterprise", 86400)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.procs[name] = proc
        return proc

    def start_upstream(self) -> None:
        self.upstream_port = self.upstream_port or free_port()
        self._spawn("upstream", [sys.executable, "-m", "tests.bench.upstream", "--port", str(self.upstream_port)])
        _wait_http(f"{self.upstream_url}/models", 20)

    def start_conduit(self, workers: int = 1, apis: int = 1) -> None:
        """Redis, ``workers`` worker processes and ``apis`` API processes (the first on ``api_port``, the others on
        ``api_ports``)."""
        binary = find_redis_server()
        if binary is None:
            raise RuntimeError("no redis-server on PATH and no embedded one (run `make install`)")
        port = free_port()
        data = tempfile.mkdtemp(prefix="conduit-bench-redis-")
        self._spawn(
            "redis",
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", data],
        )
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(self.redis_url)
        for _ in range(100):
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    break
            time.sleep(0.05)
        self.api_port = free_port()
        for index in range(workers):
            self.add_worker(index)
        self.api_ports = [self.api_port, *(free_port() for _ in range(apis - 1))]
        for index, api_port in enumerate(self.api_ports):
            env = self._env({"CONDUIT_PORT": str(api_port), "CONDUIT_JWT_SECRET": self.secret, **BENCH_LIMITS})
            self._spawn(f"api{index or ''}", [sys.executable, "-m", "services.cli", "api", "--quiet"], env)
        for api_port in self.api_ports:
            _wait_http(f"http://127.0.0.1:{api_port}/readyz", 60)
        self.wait_workers(workers)

    def add_worker(self, index: int, queues: str = "interactive") -> None:
        env = self._env({"OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": self.upstream_url})
        name = f"worker{index}" if queues == "interactive" else f"{queues}-worker{index}"
        argv = [sys.executable, "-m", "services.cli", "worker", "--quiet", "--queues", queues]
        self._spawn(name, argv, env)

    def wait_workers(self, count: int, timeout: float = 60) -> None:
        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + timeout
        while client.zcount(keys.WORKERS, time.time() - 30, "+inf") < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} workers did not announce themselves within {timeout:.0f} s")
            time.sleep(0.1)

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_") and not k.endswith("_API_KEY")}
        env = {k: v for k, v in env.items() if not k.endswith("_BASE_URL")}
        env.update({"REDIS_URL": self.redis_url, "PYTHONUNBUFFERED": "1", **extra})
        env["CONDUIT_FILES_DIR"] = str(self.log_dir / "files")  # the API's and the batch worker's
        return env

    def gateway_pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items() if name.startswith(("api", "worker"))}

    def check_alive(self) -> None:
        dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited; see {self.log_dir}")

    def stop(self, names: list[str] | None = None) -> None:
        chosen = [n for n in self.procs if names is None or n in names]
        for name in reversed(chosen):
            if self.procs[name].poll() is None:
                self.procs[name].send_signal(signal.SIGTERM)
        for name in reversed(chosen):
            proc = self.procs.pop(name)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Sampler:
    """Peak RSS and CPU seconds of some processes, read every 100 ms in a thread while a scenario runs."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak: dict[str, int] = dict.fromkeys(self.procs, 0)
        self._cpu0: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = 0.0
        self.elapsed = 0.0

    def rss(self) -> dict[str, int]:
        out = {}
        for name, proc in self.procs.items():
            with contextlib.suppress(psutil.Error):
                out[name] = proc.memory_info().rss
        return out

    def _cpu(self) -> dict[str, float]:
        out = {}
        for name, proc in self.procs.items():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                out[name] = times.user + times.system
        return out

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for name, value in self.rss().items():
                self.peak[name] = max(self.peak[name], value)

    def __enter__(self) -> "Sampler":
        self._cpu0 = self._cpu()
        self._t0 = time.perf_counter()
        for name, value in self.rss().items():
            self.peak[name] = value
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.elapsed = time.perf_counter() - self._t0
        end = self._cpu()
        self.cpu = {name: (end[name] - self._cpu0.get(name, 0.0)) / self.elapsed for name in end}
