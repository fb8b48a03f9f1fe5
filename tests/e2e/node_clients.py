"""The node clients of the e2e tests (``tests/e2e/node/*.mjs``): installed on first use, run as subprocesses.

Their packages are pinned in ``node/package-lock.json`` and installed with ``npm ci`` into ``node/node_modules``
(git-ignored) when it is missing or was installed from another lock; a stamp in it records the lock's hash, and
an exclusive ``flock`` on the folder keeps parallel runs from installing over each other.
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["NODE_DIR", "NodeUnavailableError", "install", "result", "start", "stop"]

NODE_DIR = Path(__file__).resolve().parent / "node"
_STAMP = NODE_DIR / "node_modules" / ".conduit-lock-sha256"
_MIN_NODE = 20
_INSTALL_TIMEOUT = 120.0
#: npm's error codes when it cannot reach the registry at all
_OFFLINE = re.compile(r"\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH)\b")


class NodeUnavailableError(Exception):
    """Node or npm is missing or too old, or the npm registry cannot be reached: the node clients cannot run."""


def install() -> str:
    """The ``node`` executable, once ``node_modules`` matches the lock file; NodeUnavailableError otherwise."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise NodeUnavailableError(f"node/npm not found: the node client tests need Node.js {_MIN_NODE}+ and npm")
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True, encoding="utf-8"
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < _MIN_NODE:
        raise NodeUnavailableError(f"node {version} found: the node client tests need Node.js {_MIN_NODE}+")
    wanted = hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()
    folder = os.open(NODE_DIR, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)  # released when the descriptor is closed
        if not _STAMP.is_file() or _STAMP.read_text().strip() != wanted:
            _npm_ci(npm)
            _STAMP.write_text(wanted + "\n")
    finally:
        os.close(folder)
    return node


def _npm_ci(npm: str) -> None:
    env = {**os.environ, "npm_config_update_notifier": "false"}
    argv = [npm, "ci", "--no-audit", "--no-fund"]
    try:
        done = subprocess.run(
            argv,
            check=False,
            cwd=NODE_DIR,
            env=env,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=_INSTALL_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        message = f"npm ci did not finish within {_INSTALL_TIMEOUT:g} s: is the npm registry reachable?"
        raise NodeUnavailableError(message) from exc
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if _OFFLINE.search(output):
            raise NodeUnavailableError(f"the npm registry is unreachable, npm ci failed:\n{output[-2000:]}")
        raise RuntimeError(f"npm ci failed in {NODE_DIR}:\n{output[-4000:]}")


def start(node: str, script: str, *args: str) -> "subprocess.Popen[str]":
    """Run ``node/<script>`` with ``args``; read its answer with ``result``."""
    argv = [node, str(NODE_DIR / script), *args]
    pipe = subprocess.PIPE
    return subprocess.Popen(argv, cwd=NODE_DIR, stdout=pipe, stderr=pipe, encoding="utf-8", errors="replace")


def stop(proc: "subprocess.Popen[str]") -> None:
    """Kill a client script still running (a test that failed before reading it) and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def result(proc: "subprocess.Popen[str]", timeout: float) -> dict[str, Any]:
    """The JSON object a client script printed last; AssertionError with its stderr when it failed."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args!r} did not finish within {timeout:g} s:\n{err[-3000:]}") from None
    if proc.returncode != 0:
        raise AssertionError(f"{proc.args!r} exited {proc.returncode}:\n{err[-3000:]}")
    last = out.rstrip("\n").rpartition("\n")[2]  # not splitlines(): JSON.stringify leaves U+2028 raw
    try:
        answer: dict[str, Any] = json.loads(last)
    except json.JSONDecodeError:
        raise AssertionError(f"{proc.args!r} printed no JSON answer:\n{out[-2000:]}\n{err[-2000:]}") from None
    return answer
