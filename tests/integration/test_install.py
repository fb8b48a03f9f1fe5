"""Conduit installed from its wheel alone, as a packager or a Dockerfile without the lock would, works.

The wheel is built from this checkout and installed into a new, empty virtual environment with plain
``pip install <wheel>``: the dependencies resolve from pyproject.toml's pins only (no requirements.lock). Then,
from a directory outside the checkout and with an environment holding nothing of ours, the installed
``conduit`` runs a worker and the API against a private redis-server, makes a token and a key, and serves
one non-stream and one streamed chat with the built-in echo provider. A dependency that only the lock brings
in (kombu's undeclared ``packaging``), a default file read from the checkout (``deploy/*.toml``) or state
written next to the code (``.conduit/`` in site-packages) fails here.

It needs a package index (PyPI, or the one pip is configured with); without one it is skipped, saying so.
"""

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.harness import RedisServer, free_port

# the first test also builds and installs (a cold pip cache downloads every dependency)
pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
PYPI = "https://pypi.org/simple/"


def _index_url() -> str:
    configured = os.environ.get("PIP_INDEX_URL", "").strip()
    if configured:
        return configured
    asked = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
        capture_output=True,
        text=True,
        check=False,
    )
    return asked.stdout.strip() if asked.returncode == 0 and asked.stdout.strip() else PYPI


def _require_index() -> None:
    index = _index_url()
    probe = index.rstrip("/") + "/litestar/"
    try:
        with urllib.request.urlopen(probe, timeout=15):  # noqa: S310 - pip's own index
            return
    except (urllib.error.URLError, OSError) as exc:
        pytest.skip(f"the package index {index} is unreachable ({exc}): cannot test `pip install` without the lock")


def _run(
    argv: list[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(arg) for arg in argv], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=240
    )
    assert done.returncode == 0, (
        f"{argv} exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done


@dataclass
class Installed:
    venv: Path
    bin: Path
    elsewhere: Path  # a working directory outside the checkout
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        """Nothing of the caller's environment but a PATH to the venv and system tools, and a HOME of its own."""
        return {
            "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    _require_index()
    base = tmp_path_factory.mktemp("install")
    dist = base / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, ROOT])
    (wheel,) = dist.glob("conduit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"shared/providers.toml", "services/api/tiers.toml"} <= names, "the default files are not in the wheel"

    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    pip_env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_CONSTRAINT", "PIP_REQUIREMENT"))}
    # pip from this environment installs into the new one (``--python``); only the wheel is named: no lock
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", wheel], env=pip_env)
    elsewhere = base / "elsewhere"
    home = base / "home"
    elsewhere.mkdir()
    home.mkdir()
    return Installed(venv, venv / "bin", elsewhere, home)


class _Service:
    def __init__(self, installed: Installed, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"installed-{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(installed.bin / "conduit"), name],
                cwd=installed.elsewhere,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def _services(installed: Installed, redis_url: str, secret: str, log_dir: Path) -> Iterator[str]:
    port = free_port()
    worker = _Service(installed, "worker", installed.env(REDIS_URL=redis_url, CONDUIT_ECHO_DELAY="0"), log_dir)
    api_env = installed.env(REDIS_URL=redis_url, CONDUIT_JWT_SECRET=secret, CONDUIT_PORT=str(port))
    api = _Service(installed, "api", api_env, log_dir)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 45
        while True:
            for service in (worker, api):
                assert service.proc.poll() is None, f"the installed {service.name} exited:\n{service.output()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"not ready\n--- worker\n{worker.output()}\n--- api\n{api.output()}"
            time.sleep(0.2)
        yield base
    finally:
        api.stop()
        worker.stop()


def test_installed_package_runs_from_its_own_files(installed: Installed) -> None:
    where = _run(
        [installed.bin / "python", "-c", "import services, shared; print(services.__file__, shared.__file__)"],
        cwd=installed.elsewhere,
        env=installed.env(),
    )
    assert str(ROOT) not in where.stdout
    assert all(path.startswith(str(installed.venv)) for path in where.stdout.split())


def test_installed_worker_and_api_serve_echo_chats_from_outside_the_checkout(
    installed: Installed, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path)
    try:
        # a token with the development secret: kept in the per-user state dir, not next to the installed code
        made = _run(
            [installed.bin / "conduit", "token", "create", "--user", "alice", "--tier", "pro"],
            cwd=installed.elsewhere,
            env=installed.env(),
        )
        secret_file = installed.home / ".local" / "state" / "conduit" / "dev-secret"
        assert str(secret_file) in made.stderr
        assert not list(installed.venv.rglob(".conduit"))
        token = made.stdout.strip()
        key = _run(
            [installed.bin / "conduit", "keys", "create", "--user", "bob", "--tier", "pro"],
            cwd=installed.elsewhere,
            env=installed.env(REDIS_URL=redis.url),
        )
        assert f"using Redis {redis.url} (from REDIS_URL)" in key.stderr

        with _services(installed, redis.url, secret_file.read_text().strip(), tmp_path) as base:
            body = {"model": "echo", "messages": [{"role": "user", "content": "installed without the lock"}]}
            answer = httpx.post(
                f"{base}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {token}"}, timeout=30
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["choices"][0]["message"]["content"] == "installed without the lock"

            streamed = httpx.post(
                f"{base}/v1/chat/completions",
                json={**body, "stream": True},
                headers={"authorization": f"Bearer {key.stdout.strip()}"},
                timeout=30,
            )
            assert streamed.status_code == 200, streamed.text
            chunks = [
                json.loads(line[len("data: ") :]) for line in streamed.text.splitlines() if line.startswith("data: {")
            ]
            text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
            assert text == "installed without the lock"
            assert streamed.text.rstrip().endswith("data: [DONE]")
    finally:
        redis.stop()
