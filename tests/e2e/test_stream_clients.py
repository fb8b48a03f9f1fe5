"""The clients people use read Conduit's streams whole: through long silences, and with U+2028/U+2029/U+0085.

The fake upstream is silent for 20 s before the first token and 20 s between the two tokens, so Conduit sends
keep-alives (``: ping`` every 2 s here) during both pauses. A keep-alive followed by a blank line was once an
event with empty data to decoders that keep the last event id, which openai-python and LangChain then failed to
parse. The tokens carry U+2028, U+2029 and U+0085, which ``str.splitlines`` (``requests``' ``iter_lines`` with
``decode_unicode``) treats as line breaks: raw in a frame, they cut it in two.

Every client runs at once against one stack, each on its own request (one pause costs every client once),
and is checked afterwards: the Python ones in threads, the node ones (``tests/e2e/node``) as subprocesses.
"""

import itertools
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
import requests
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import SecretStr

from tests.e2e import node_clients
from tests.fakes.upstream import FakeUpstream, Reply
from tests.harness import token
from tests.stack import Stack, own_stack

TOKENS = ["Héllo\u2028", "wor\u2029ld\u0085!"]
TEXT = "".join(TOKENS)
MODEL = "gpt-4o-mini"
PROMPT = "Say hello"
PAUSE = 8.0  # upstream silence before each token: longer than every client's read timeout
HEARTBEAT = 1.0  # the API's keep-alive interval: about 8 in each pause
#: every Python client gives up on a read silent this long: only the keep-alives carry it through a pause
READ_TIMEOUT = 5.0
#: keep-alives every second (the default is 15 s), so each pause holds several and no client's read timeout fires;
#: the harness's worker already heartbeats every 1 s, which keeps the API's 5 s idle deadline from firing, and
#: the worker's upstream read timeout (120 s by default) outlasts the pauses
API_ENV = {"CONDUIT_HEARTBEAT_INTERVAL": f"{HEARTBEAT:g}"}
NODE_SCRIPTS = {
    "openai-node": "openai_stream.mjs",
    "ai-sdk": "ai_sdk_stream.mjs",
    "node-fetch-reader": "fetch_stream.mjs",
}
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]
_LINE_BREAKS = ("\u2028".encode(), "\u2029".encode(), "\u0085".encode())


@pytest.fixture(scope="module")
def paused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with FakeUpstream() as fake, own_stack(tmp_path_factory.mktemp("stream-clients"), fake, api_env=API_ENV) as stack:
        yield stack


def _openai_python(url: str, key: str) -> dict[str, Any]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=READ_TIMEOUT) as client:
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        text, finish = "", None
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
    return {"text": text, "finish": finish}


def _langchain(url: str, key: str) -> dict[str, Any]:
    model = ChatOpenAI(
        base_url=f"{url}/v1",
        api_key=SecretStr(key),
        model=MODEL,
        streaming=True,
        max_retries=0,
        timeout=READ_TIMEOUT,
    )
    text, finish = "", None
    for chunk in model.stream(PROMPT):
        text += chunk.text
        finish = chunk.response_metadata.get("finish_reason") or finish
    return {"text": text, "finish": finish}


def _requests_lines(url: str, key: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "stream": True}
    headers = {"authorization": f"Bearer {key}"}
    text, finish = "", None
    with requests.post(
        f"{url}/v1/chat/completions", json=body, headers=headers, stream=True, timeout=(5, READ_TIMEOUT)
    ) as response:
        response.raise_for_status()
        for line in response.iter_lines(decode_unicode=True):
            assert isinstance(line, str)  # decoded: split with str.splitlines, which breaks at U+2028
            if not line.startswith("data: "):
                continue
            data = line.removeprefix("data: ")
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if chunk["choices"]:
                text += chunk["choices"][0]["delta"].get("content") or ""
                finish = chunk["choices"][0]["finish_reason"] or finish
    return {"text": text, "finish": finish}


def _raw_wire(url: str, key: str) -> dict[str, Any]:
    """The bytes as they arrive, with the time each read came (from the response's headers on)."""
    body = {"model": MODEL, "messages": MESSAGES, "stream": True}
    headers = {"authorization": f"Bearer {key}"}
    sent = time.monotonic()
    reads: list[tuple[float, bytes]] = []
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=READ_TIMEOUT
    ) as response:
        response.raise_for_status()
        reads.append((time.monotonic(), b""))
        reads.extend((time.monotonic(), data) for data in response.iter_raw())
    return {"sent": sent, "reads": reads}


PYTHON_CLIENTS: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "openai-python": _openai_python,
    "langchain": _langchain,
    "requests-iter-lines": _requests_lines,
    "raw-wire": _raw_wire,
}


def _check_frames(raw: bytes) -> list[str]:
    """What is wrong with the stream's bytes: keep-alives that end an event block, unescaped line breaks, too few
    keep-alives in a pause."""
    problems = []
    if b": ping\n\n" in raw:
        problems.append("a keep-alive is followed by a blank line (a comment-only event block)")
    blocks = raw.split(b"\n\n")
    if empty := [block for block in blocks[:-1] if not any(line.startswith(b"data:") for line in block.split(b"\n"))]:
        problems.append(f"event blocks without data: {empty[:3]!r}")
    if blocks[-1]:
        problems.append(f"the stream does not end with a blank line: {blocks[-1][-200:]!r}")
    if raw_breaks := [char for char in _LINE_BREAKS if char in raw]:
        problems.append(f"unescaped line breaks on the wire: {raw_breaks!r}")
    pings, texts, pings_before = 0, [], []  # the keep-alives sent before each text frame
    for line in raw.split(b"\n"):
        if line == b": ping":
            pings += 1
        elif line.startswith(b"data: {"):
            choices = json.loads(line.removeprefix(b"data: "))["choices"]
            if choices and choices[0]["delta"].get("content"):
                texts.append(choices[0]["delta"]["content"])
                pings_before.append(pings)
    if texts != TOKENS:
        return [*problems, f"the text frames carried {texts!r}, not {TOKENS!r}"]
    first, second = pings_before
    if first < 3 or second - first < 3:
        problems.append(f"too few keep-alives: {first} before the first token, {second - first} between the tokens")
    return problems


def _check_timing(sent: float, reads: list[tuple[float, bytes]]) -> list[str]:
    """The upstream really paused before the first token, and no read waited long for the next."""
    problems = []
    seen = b""
    for when, data in reads:
        seen += data
        if b'"content":"H' in seen:  # the first token's frame has arrived
            if when - sent < PAUSE - 1:
                problems.append(f"the first token came {when - sent:.1f} s after the request: no pause")
            break
    longest = max(later[0] - earlier[0] for earlier, later in itertools.pairwise(reads))
    if longest > 2 * HEARTBEAT + 1:
        problems.append(f"the stream was silent for {longest:.1f} s (keep-alives every {HEARTBEAT:g} s)")
    return problems


Outcomes = dict[str, dict[str, Any] | BaseException]


def _run_clients(url: str, node: str | None) -> Outcomes:
    """Every client at once, each on its own request as its own user; what each read, or what it raised."""
    scripts = NODE_SCRIPTS if node is not None else {}
    procs = {
        name: node_clients.start(node, script, f"{url}/v1", token("pro", name), MODEL)
        for name, script in scripts.items()
        if node is not None
    }
    outcomes: Outcomes = {}
    try:
        with ThreadPoolExecutor(len(PYTHON_CLIENTS)) as pool:
            futures: dict[str, Future[dict[str, Any]]] = {
                name: pool.submit(client, url, token("pro", name)) for name, client in PYTHON_CLIENTS.items()
            }
        for name, future in futures.items():
            outcomes[name] = future.exception() or future.result()
        for name, proc in procs.items():
            try:
                outcomes[name] = node_clients.result(proc, timeout=30)
            except AssertionError as exc:
                outcomes[name] = exc
    finally:
        for proc in procs.values():
            node_clients.stop(proc)
    return outcomes


def _failures(outcomes: Outcomes) -> list[str]:
    failures: list[str] = []
    for name, outcome in outcomes.items():
        if isinstance(outcome, BaseException):
            failures.append(f"{name} raised {type(outcome).__name__}: {outcome}")
        elif name == "raw-wire":
            raw = b"".join(data for _, data in outcome["reads"])
            problems = _check_frames(raw) + _check_timing(outcome["sent"], outcome["reads"])
            failures += [f"raw-wire: {problem}" for problem in problems]
        elif (outcome["text"], outcome["finish"]) != (TEXT, "stop"):
            failures.append(f"{name} read {outcome['text']!r} (finish {outcome['finish']!r}), not {TEXT!r} (stop)")
        elif name == "node-fetch-reader" and (outcome["blocksWithoutData"] or not outcome["comments"]):
            failures.append(
                f"node-fetch-reader: {outcome['blocksWithoutData']} blocks without data, {outcome['comments']} comments"
            )
    return failures


@pytest.mark.timeout(180)  # two 8 s pauses, plus an `npm ci` when node_modules is missing or stale
def test_every_client_reads_a_stream_that_pauses_and_carries_line_separators(paused: Stack) -> None:
    try:
        node: str | None = node_clients.install()
        skipped = ""
    except node_clients.NodeUnavailableError as exc:
        node, skipped = None, str(exc)
    for _ in range(len(PYTHON_CLIENTS) + (len(NODE_SCRIPTS) if node is not None else 0)):
        paused.fake.push(Reply(tokens=TOKENS, delay=PAUSE), provider="openai")
    failures = _failures(_run_clients(paused.url, node))
    assert not failures, "\n".join(failures)
    assert paused.fake.pending == 0
    if skipped:
        pytest.skip(f"the Python clients passed; the node clients did not run: {skipped}")


def test_bodies_carry_line_separators_escaped(paused: Stack) -> None:
    key = token("pro", "bodies")
    paused.fake.push(Reply(tokens=TOKENS), provider="openai")
    with openai.OpenAI(base_url=f"{paused.url}/v1", api_key=key, max_retries=0, timeout=READ_TIMEOUT) as client:
        completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content == TEXT
    paused.fake.push(Reply(tokens=TOKENS), provider="openai")
    body: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}
    response = requests.post(
        f"{paused.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=READ_TIMEOUT,
    )
    assert response.json()["choices"][0]["message"]["content"] == TEXT
    assert not [char for char in _LINE_BREAKS if char in response.content]
    assert b"\\u2028" in response.content and b"\\u2029" in response.content and b"\\u0085" in response.content
    assert len(response.text.splitlines()) == 1  # a line reader gets the body as the one line it is
