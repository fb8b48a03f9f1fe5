"""``/openapi.json`` held to what the running gateway answers, and ``/docs`` working with no network but it.

schemathesis reads the document, sends the requests it describes (its examples, boundary and malformed
cases, fuzzed ones, and the link from a generation to its resume) and checks every answer against it:
status documented, content type, body and SSE frames by their schemas, required headers, bad input
refused, no token refused. The streams a fuzzer rarely reaches (tool calls, errors mid-stream, resumes)
are made here on purpose and checked frame by frame.
"""

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import msgspec
import pytest

from tests.fakes.upstream import MidStreamError, Reply
from tests.harness import auth, token
from tests.openapi_doc import check_event, operations, sse_events, validate
from tests.stack import Stack

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
    "response_schema_conformance,negative_data_rejection,missing_required_header,unsupported_method,"
    "allow_header_conformance,ignored_auth"
)
USER = "openapi-fuzz"  # its own user: fuzzed job names cannot collide with another test's
JSON = "application/json"
SSE = "text/event-stream"


def document(stack: Stack) -> dict[str, Any]:
    response = httpx.get(f"{stack.url}/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    doc: dict[str, Any] = response.json()
    return doc


def schemathesis(location: str, cwd: Path, *options: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "schemathesis.cli", "run", location, *options]
    # one worker thread: hypothesis describes lambdas with ast.parse, which CPython 3.11 cannot run in two threads
    # at once (gh-106905: a spurious "AST constructor recursion depth mismatch" SystemError, now and then)
    argv += ["--workers", "1", "--generation-deterministic", "--suppress-health-check", "all"]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=170, check=False)


@pytest.mark.timeout(180)
def test_every_answer_matches_the_document(stack: Stack, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    result = schemathesis(
        f"{stack.url}/openapi.json",
        tmp_path,
        *("--header", f"Authorization: Bearer {token(user=USER)}"),
        *("--checks", CHECKS, "--phases", "examples,coverage,fuzzing,stateful"),
        *("--max-examples", "15", "--seed", "11", "--request-timeout", "30"),
        *("--report", "junit", "--report-junit-path", str(report)),
    )
    assert result.returncode == 0, result.stdout[-30000:] + result.stderr[-3000:]
    tested = {case.get("name") for case in ET.parse(report).iter("testcase")}  # noqa: S314 - our own report
    documented = {f"{method.upper()} {path}" for path, method, _ in operations(document(stack))}
    # every operation but the document's own URL (schemathesis leaves it out), and the links' scenarios
    assert tested == documented - {"GET /openapi.json"} | {"Stateful tests"}


def test_the_check_catches_a_document_that_lies(stack: Stack, tmp_path: Path) -> None:
    """The document as the issue found it (`/v1/models` typed as a string) fails the same run."""
    doc = document(stack)
    doc["paths"]["/v1/models"]["get"]["responses"]["200"]["content"][JSON]["schema"] = {"type": "string"}
    (tmp_path / "lying.json").write_bytes(msgspec.json.encode(doc))
    result = schemathesis(
        "lying.json",
        tmp_path,
        *("--url", stack.url, "--include-path", "/v1/models", "--header", f"Authorization: Bearer {token(user=USER)}"),
        *("--checks", "response_schema_conformance", "--phases", "examples,fuzzing", "--max-examples", "1"),
    )
    assert result.returncode == 1, result.stdout[-5000:]
    assert "Response violates schema" in result.stdout
    assert 'is not of type "string"' in result.stdout


def _stream_schema(doc: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    schema: dict[str, Any] = doc["paths"][path][method]["responses"]["200"]["content"][SSE]["schema"]
    return schema


def _check_stream(doc: dict[str, Any], path: str, response: httpx.Response, method: str = "post") -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(SSE)
    events = sse_events(response.text)
    for event in events:
        check_event(doc, _stream_schema(doc, path, method), event)
    assert events[-1]["data"] == "[DONE]"
    return [event["data"] for event in events]


STREAMS: dict[str, tuple[str, dict[str, Any], Reply | MidStreamError | None, str]] = {
    "chat with usage": ("/v1/chat/completions", {"stream_options": {"include_usage": True}}, None, '"usage"'),
    "chat tool call": (
        "/v1/chat/completions",
        {},
        Reply(tool_calls=[("get_weather", {"city": "Paris"})]),
        '"tool_calls"',
    ),
    "chat error mid-stream": ("/v1/chat/completions", {}, MidStreamError(after=1), '"error"'),
    "completion with usage": ("/v1/completions", {"stream_options": {"include_usage": True}}, None, '"usage"'),
    "completion error mid-stream": ("/v1/completions", {}, MidStreamError(after=1), '"error"'),
    "ai chat": ("/api/ai/chat", {}, None, '"token"'),
    "ai completion error mid-stream": ("/api/ai/completions", {}, MidStreamError(after=1), '"error"'),
}
BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
    "/v1/completions": {"model": "gpt-3.5-turbo-instruct", "prompt": "Hi"},
    "/api/ai/chat": {"provider": "openai", "messages": [{"role": "user", "content": "Hi"}]},
    "/api/ai/completions": {"provider": "openai", "prompt": "Hi"},
}


@pytest.mark.parametrize("case", list(STREAMS))
def test_streams_carry_the_documented_frames(stack: Stack, case: str) -> None:
    path, extra, behaviour, expected = STREAMS[case]
    if behaviour is not None:
        stack.fake.push(behaviour)
    doc = document(stack)
    body = {**BODIES[path], **extra, "stream": True}
    response = httpx.post(f"{stack.url}{path}", json=body, headers=auth(user=USER), timeout=30)
    frames = _check_stream(doc, path, response)
    assert any(expected in frame for frame in frames), frames
    # the same job again from GET /v1/streams/{job_id}, after its first frame: the resume's own schema
    first = sse_events(response.text)[0]["id"]
    job = response.headers["x-conduit-job-id"]
    resumed = httpx.get(
        f"{stack.url}/v1/streams/{job}", headers={**auth(user=USER), "last-event-id": first}, timeout=30
    )
    assert _check_stream(doc, "/v1/streams/{job_id}", resumed, "get") == frames[1:]


@pytest.mark.parametrize("path", list(BODIES))
def test_whole_answers_match_the_document(stack: Stack, path: str) -> None:
    """Whole answers (of tool calls, for chats: a fuzzer's requests get text), and the same job fetched again."""
    if "chat" in path:
        stack.fake.push(Reply(text="Let me look.", tool_calls=[("get_weather", {"city": "Paris"})]))
    doc = document(stack)
    response = httpx.post(f"{stack.url}{path}", json=BODIES[path], headers=auth(user=USER), timeout=30)
    assert response.status_code == 200, response.text
    validate(doc, doc["paths"][path]["post"]["responses"]["200"]["content"][JSON]["schema"], response.json())
    job = response.headers["x-conduit-job-id"]
    again = httpx.get(f"{stack.url}/v1/streams/{job}", headers=auth(user=USER), timeout=30)
    assert again.status_code == 200, again.text
    resume = doc["paths"]["/v1/streams/{job_id}"]["get"]["responses"]["200"]["content"][JSON]["schema"]
    validate(doc, resume, again.json())
    if path == "/v1/chat/completions":
        assert response.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_open_operations_answer_without_a_token(stack: Stack) -> None:
    doc = document(stack)
    open_ops = [(path, method) for path, method, op in operations(doc) if op.get("security") == []]
    assert sorted(open_ops) == [("/healthz", "get"), ("/openapi.json", "get"), ("/readyz", "get")]
    for path, method in [*open_ops, ("/docs", "get")]:
        assert httpx.request(method, f"{stack.url}{path}").status_code == 200, path
    for path, method, op in operations(doc):
        if "security" not in op:  # the document's own requirement: a token
            url = stack.url + re.sub(r"\{\w+\}", "x", path)
            assert httpx.request(method, url).status_code == 401, path


class _Links(HTMLParser):
    """Every URL a page loads: ``src``/``href``/``data-*-url`` attributes, and URLs in inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (name in ("src", "href") or (name.startswith("data-") and name.endswith("-url"))):
                self.urls.append(value)
        self._in_script = tag == "script" and not dict(attrs).get("src")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)
            self.urls += re.findall(r"""["'`]((?:https?:)?//[^"'`]+|/[^"'`\s]+)["'`]""", data)


TYPES = {".css": "text/css", ".js": "text/javascript", ".png": "image/png", ".json": JSON}


def test_docs_page_loads_every_asset_from_the_gateway(stack: Stack) -> None:
    page = httpx.get(f"{stack.url}/docs", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    links = _Links()
    links.feed(page.text)
    assert links.inline == []  # nothing inline: the page's CSP allows scripts from the gateway only
    assert "script-src 'self'" in page.text
    kinds = set()
    for url in links.urls:
        absolute = urljoin(str(page.url), url)
        assert urlsplit(absolute)[:2] == urlsplit(stack.url)[:2], f"{url} is not from the gateway"
        asset = httpx.get(absolute, timeout=10)
        suffix = Path(urlsplit(absolute).path).suffix
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(TYPES[suffix]), url
        assert len(asset.content) > 100, url
        if suffix != ".json":
            assert "max-age=86400" in asset.headers["cache-control"], url
        kinds.add(suffix)
    assert kinds == set(TYPES)  # the stylesheet, the scripts, the icons and the document


CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here: the page's assets are checked, not its rendering")
def test_docs_page_renders_every_operation_offline(stack: Stack, tmp_path: Path) -> None:
    """Headless Chromium with every host but the gateway's unresolvable: the page still lists every operation."""
    assert CHROMIUM is not None
    argv = [
        CHROMIUM,
        *("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"),
        f"--user-data-dir={tmp_path / 'profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        *("--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000", "--dump-dom"),
        f"{stack.url}/docs",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    for path, _, _ in operations(document(stack)):
        assert f'data-path="{path}"' in result.stdout, f"{path} is not on the page"
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no script error, no blocked load (the CSP would report one)
