"""``conduit up`` runs once per state directory, and ``conduit keys`` / ``usage`` say which Redis they use.

A second ``make up`` from the same checkout used to overwrite the first one's Redis pointer, and ``conduit keys
create`` then wrote a key into the wrong Redis without a word. Here a real ``conduit up`` (its own embedded
redis-server, worker and API, on free ports, with a private state directory) runs; a second one exits at
once naming it and leaves it serving; a key made with ``conduit keys create`` is announced as going to the
running stack's Redis and works there; when the first stops, its record is gone and the lock is free.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.devstate import DevState
from tests.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


def _env(state: Path, port: int) -> dict[str, str]:
    """This environment without anything that would point the stack elsewhere, plus its own state and port."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CONDUIT_") and not k.endswith(("_API_KEY", "_BASE_URL")) and k != "REDIS_URL"
    }
    return env | {"CONDUIT_STATE_DIR": str(state), "CONDUIT_PORT": str(port), "PYTHONUNBUFFERED": "1"}


def _conduit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class Up:
    def __init__(self, state: Path, log: Path) -> None:
        self.state = DevState(state)
        self.port = free_port()
        self.env = _env(state, self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "up", "--quiet"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a hung one can be taken down whole
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"conduit up exited:\n{self.output()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"conduit up was not ready within {timeout} s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # it and the Redis, worker and API it started
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    first = Up(tmp_path / "state", tmp_path / "up.log")
    try:
        first.wait_ready()
        yield first
    finally:
        first.stop()


def test_second_up_from_the_same_state_dir_fails_fast_naming_the_first_which_keeps_serving(
    up: Up, tmp_path: Path
) -> None:
    record = up.state.read_record()
    assert record is not None
    assert record.pid == up.proc.pid
    assert record.api_url == up.url
    assert record.redis_url.startswith("redis://127.0.0.1:")
    assert not record.redis_url.startswith("redis://127.0.0.1:6379/")  # its own, never the shared one

    started = time.monotonic()
    second = _conduit("up", "--quiet", env=_env(up.state.dir, free_port()))
    assert time.monotonic() - started < 10
    assert second.returncode != 0
    assert "another `conduit up` is running" in second.stderr
    assert f"pid {up.proc.pid}" in second.stderr
    assert record.redis_url in second.stderr
    assert up.url in second.stderr
    assert up.state.read_record() == record  # the pointer is the first one's still

    token = _conduit("token", "create", "--user", "alice", "--tier", "pro", env=up.env)
    assert token.returncode == 0, token.stderr
    body = {"model": "echo", "messages": [{"role": "user", "content": "still here"}]}
    headers = {"authorization": f"Bearer {token.stdout.strip()}"}
    answer = httpx.post(f"{up.url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "still here"


def test_keys_and_usage_name_the_running_stacks_redis_and_the_record_goes_when_it_stops(up: Up) -> None:
    record = up.state.read_record()
    assert record is not None
    made = _conduit("keys", "create", "--user", "bob", "--tier", "pro", env=up.env)
    assert made.returncode == 0, made.stderr
    assert (
        f"conduit keys: using Redis {record.redis_url} (the one the running `conduit up` (pid {up.proc.pid}) uses)"
        in made.stderr
    )
    body = {"model": "echo", "messages": [{"role": "user", "content": "keyed"}]}
    headers = {"authorization": f"Bearer {made.stdout.strip()}"}
    answer = httpx.post(f"{up.url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text  # the key is in the Redis the stack's API reads

    deadline = time.monotonic() + 5  # the worker writes usage twice a second
    while True:
        usage = _conduit("usage", "--user", "bob", env=up.env)
        assert usage.returncode == 0, usage.stderr
        assert f"conduit usage: using Redis {record.redis_url}" in usage.stderr
        if "echo/echo" in usage.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "echo/echo" in usage.stdout

    assert up.stop(signal.SIGINT) == 0, up.output()
    assert not up.state.stack_file.exists()
    assert not up.state.stack_held()


def test_up_runs_a_batch_with_its_own_batch_worker(up: Up) -> None:
    token = _conduit("token", "create", "--user", "bob", "--tier", "pro", env=up.env)
    headers = {"authorization": f"Bearer {token.stdout.strip()}"}
    line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions"}
    data = "\n".join(
        json.dumps(
            {
                **line,
                "custom_id": f"l{i}",
                "body": {"model": "echo", "messages": [{"role": "user", "content": f"n{i}"}]},
            }
        )
        for i in range(5)
    )
    made = httpx.post(
        f"{up.url}/v1/files", files={"file": ("in.jsonl", data)}, data={"purpose": "batch"}, headers=headers
    )
    assert made.status_code == 200, made.text
    body = {"input_file_id": made.json()["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    batch = httpx.post(f"{up.url}/v1/batches", json=body, headers=headers).json()
    deadline = time.monotonic() + 30
    while (now := httpx.get(f"{up.url}/v1/batches/{batch['id']}", headers=headers).json())["status"] != "completed":
        assert time.monotonic() < deadline, now
        time.sleep(0.2)
    output = httpx.get(f"{up.url}/v1/files/{now['output_file_id']}/content", headers=headers).text
    answers = {json.loads(row)["custom_id"]: json.loads(row)["response"]["body"] for row in output.splitlines()}
    assert {k: v["choices"][0]["message"]["content"] for k, v in answers.items()} == {
        f"l{i}": f"n{i}" for i in range(5)
    }
    assert (up.state.dir / "files" / made.json()["id"]).is_file()  # in the state directory, beside Redis's data
    cli = {**up.env, "CONDUIT_TOKEN": token.stdout.strip()}  # the running stack's API is found by itself
    watched = _conduit("batches", "watch", batch["id"], "--every", "0.2", env=cli)
    assert watched.returncode == 0, watched.stderr
    assert "completed" in watched.stdout and "5/5" in watched.stdout and now["output_file_id"] in watched.stdout
    listed = _conduit("batches", "list", env=cli)
    assert listed.returncode == 0 and batch["id"] in listed.stdout and "5/5" in listed.stdout
    shown = _conduit("batches", "show", batch["id"], env=cli)
    assert json.loads(shown.stdout)["status"] == "completed"
    ended = _conduit("batches", "cancel", batch["id"], env=cli)
    assert ended.returncode == 0 and "completed" in ended.stdout  # an ended batch stays as it ended
    stranger = _conduit("batches", "show", "batch_none", env=cli)
    assert stranger.returncode != 0 and "404" in stranger.stderr
