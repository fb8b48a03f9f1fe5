"""The README's examples run as written, in bash and in zsh, against a stack with `make up`'s settings.

Every ```bash block that calls the API (it has a `curl`) and every ```python block runs with the stack's URL in
place of http://127.0.0.1:8000, and the fake providers in place of the real ones the proxy examples name (the
stack allows them as upstreams, with the fakes' keys as OPENAI_API_KEY and GEMINI_API_KEY); each must exit 0
without an error body in its output."""

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.stack import METRICS_PORT
from tests.fakes.upstream import FakeUpstream
from tests.harness import JWT_SECRET, ROOT, WorkerProcess, free_port
from tests.stack import Stack, own_stack

README = ROOT / "README.md"
WORKER_METRICS = free_port()
_BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELLS = ["bash", "zsh"]


def _blocks(language: str) -> list[str]:
    found = [body for lang, body in _BLOCK.findall(README.read_text()) if lang == language]
    return [body for body in found if language == "python" or "curl " in body]


@pytest.fixture(scope="module")
def readme_stack(logs: Path, fake: FakeUpstream) -> Iterator[Stack]:
    # make up's defaults: the echo provider paced as it is there, the tiers' real limits
    allow = {"CONDUIT_PROXY_ALLOW": f"127.0.0.1:{fake.port}"}
    metrics = {"CONDUIT_METRICS_PORT": str(WORKER_METRICS)}  # make up's 9464, on a free port
    worker_env = {"CONDUIT_ECHO_DELAY": "0.02", **allow, **metrics}
    with own_stack(logs, fake, worker_env=worker_env, api_env=allow) as stack:
        batches = WorkerProcess(logs, stack.redis.url, {"CONDUIT_ECHO_DELAY": "0.02"}, queues="batch")
        try:
            batches.wait_ready()
            yield stack
        finally:
            batches.stop()


def _as_run(example: str, stack: Stack) -> str:
    """The example pointed at the stack, and its proxy examples' upstreams at the fake providers."""
    return (
        example.replace("http://127.0.0.1:8000", stack.url)
        .replace("https://api.openai.com/v1", stack.fake.openai_base_url)
        .replace("https://generativelanguage.googleapis.com", stack.fake.gemini_base_url)
        .replace(f"http://127.0.0.1:{METRICS_PORT}", f"http://127.0.0.1:{WORKER_METRICS}")
    )


def _env(stack: Stack, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_") and k != "TOKEN"}
    return env | {
        "OPENAI_API_KEY": stack.fake.keys["openai"],
        "GEMINI_API_KEY": stack.fake.keys["gemini"],
        "CONDUIT_JWT_SECRET": JWT_SECRET,
        "REDIS_URL": stack.redis.url,
        "HOME": str(tmp_path),  # zsh reads no user start-up files from here
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    }


def _run(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert not re.search(r'"error":\s*\{', done.stdout), output  # an error body (not a batch line's null)
    return done.stdout


def test_the_readme_has_the_examples_this_test_runs() -> None:
    assert len(_blocks("bash")) >= 4
    assert len(_blocks("python")) >= 1


@pytest.mark.timeout(240)
@pytest.mark.parametrize("shell", SHELLS)
def test_every_curl_example_runs_as_written(readme_stack: Stack, shell: str, tmp_path: Path) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed here")
    env = _env(readme_stack, tmp_path)
    before = set(os.listdir(ROOT))
    token = _run(["bash", "-c", ".venv/bin/conduit token create --user me --tier pro"], env).strip()
    for block in _blocks("bash"):
        script = _as_run(block, readme_stack)
        script = "set -e -o pipefail\nexport TOKEN=" + token + "\n" + script
        output = _run([shell, "-c", script], env)
        if "x-conduit-job-name: my-report" in block:
            assert '"content":' in output, output  # the named job fetched after its client gave up
        if "Last-Event-ID" in block:  # the stream, then its resume: only the frames after 3.1, to the end
            assert output.count("data: [DONE]") == 2 and output.count("id: 3.1\n") == 1, output
    assert set(os.listdir(ROOT)) == before, "an example wrote into the checkout"


def test_the_python_example_runs(readme_stack: Stack, tmp_path: Path) -> None:
    env = _env(readme_stack, tmp_path)
    env["TOKEN"] = _run(["bash", "-c", ".venv/bin/conduit token create --user me --tier pro"], env).strip()
    for block in _blocks("python"):
        output = _run([sys.executable, "-c", _as_run(block, readme_stack)], env)
        assert output.strip(), block
