"""The benchmark's fake upstream never repeats a chunk, so gateways with a repetition guard can be compared.

LiteLLM's proxy aborts a stream whose last 100 chunks carry the same text ("the model is repeating the same
chunk"); with one token text repeated, every full-speed row against it was an error. The fake runs here in
its own process, as ``make bench`` runs it, and is read with httpx.
"""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.bench.upstream import TOKEN
from tests.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKENS = 150  # more than LiteLLM's window of 100 identical chunks


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.upstream", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{base}/v1/models", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _contents(base: str, delay: float) -> list[str]:
    httpx.put(f"{base}/_bench/config", json={"tokens": TOKENS, "delay": delay}, timeout=5).raise_for_status()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    contents = []
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=10) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                chunk = msgspec.json.decode(line[len("data: ") :])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    contents.append(chunk["choices"][0]["delta"]["content"])
    return contents


@pytest.mark.parametrize("delay", [0.0, 0.001], ids=["full-speed", "paced"])
def test_stream_chunks_all_differ_and_each_carries_the_counted_marker_once(upstream: str, delay: float) -> None:
    contents = _contents(upstream, delay)
    assert len(contents) == TOKENS
    assert len(set(contents)) == TOKENS, "a chunk text repeats"
    assert all(text.count(TOKEN) == 1 for text in contents)
    assert "".join(contents).count(TOKEN) == TOKENS  # what the load generator counts, merged or not


def test_non_stream_answer_is_the_same_distinct_tokens(upstream: str) -> None:
    streamed = "".join(_contents(upstream, 0.0))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    answer = httpx.post(f"{upstream}/v1/chat/completions", json=body, timeout=10).json()
    assert answer["choices"][0]["message"]["content"] == streamed
    assert answer["usage"]["completion_tokens"] == TOKENS
