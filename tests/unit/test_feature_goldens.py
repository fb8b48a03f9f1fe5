"""Every request feature of ``/v1/chat/completions`` on every provider, pinned by golden files.

For each feature x provider, the request goes the whole way in one process: the API's translation of the body,
the worker's job (its adapter, ``n``'s parallel calls, its publisher), the fake upstream speaking the provider's
wire format, and the OpenAI encoders. ``tests/golden/features/<feature>/<provider>/`` then holds

- ``upstream.http``: each upstream call, the request line and body the adapter built, then the status, content type
  and body the provider answered (its SSE frames), byte for byte;
- ``downstream.sse``: the chunks a streaming client gets; ``downstream.json``: the body a client gets without
  ``stream`` (each parsed by the official ``openai`` SDK's models);
- or ``refused.json``: the 400 a feature the provider cannot honour gets, before any upstream call.

The README's table of features x providers is rendered from ``FEATURES`` and checked here too, so it stays true.
``UPDATE_GOLDENS=1 pytest tests/unit/test_feature_goldens.py`` rewrites the files; review their diff.
"""

import json
import os
import re
from pathlib import Path
from typing import Any, Literal, NamedTuple

import httpx
import msgspec
import pytest
from openai._streaming import SSEDecoder
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from services.api.answer import answer_of
from services.api.dialects.openai.requests import chat_request
from services.api.dialects.openai.sse import ChatChunkEncoder
from services.api.dialects.openai.translate import chat_body
from services.api.settings import ApiSettings
from services.api.sse import frames
from services.worker.generate import PipelineContext, run_job
from services.worker.providers.registry import build_streamers
from services.worker.settings import Credentials, WorkerSettings
from services.worker.sink import Flush
from shared.catalog import load_catalog
from shared.codec import decode_events
from shared.errors import InvalidRequestError
from shared.events import Event, Failed, Heartbeat, ReasoningDelta, TextDelta
from shared.jobs import GenerationJob, Principal
from tests.fakes.upstream import DEFAULT_KEYS, FakeUpstream, Reply

pytestmark = pytest.mark.anyio

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "features"
README = Path(__file__).resolve().parents[2] / "README.md"
UPDATE = os.environ.get("UPDATE_GOLDENS") == "1"
CREATED = 1_700_000_000
CHAT_ID = "chatcmpl-golden"
UPSTREAM = "http://upstream.test"
#: Gemini gives its function calls no ids: Conduit makes them, unique by a random part
GEMINI_CALL_ID = re.compile(rb"call_[0-9a-f]{16}")

Provider = Literal["openai", "anthropic", "gemini"]
Support = Literal["native", "mapped", "refused"]
PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic", "gemini")
MODELS: dict[Provider, str] = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
QUESTION = "Weather in Orléans?"
IMAGE = "https://images.example.org/orleans.png"
LOCATION = {"type": "approximate", "approximate": {"city": "Orléans", "country": "FR", "timezone": "Europe/Paris"}}
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
    "required": ["city", "celsius"],
    "additionalProperties": False,
}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TWO_CALLS = Reply(tool_calls=[("get_weather", {"city": "Orléans"}), ("get_weather", {"city": "Tours"})])
ANSWER_JSON = '{"city": "Orléans", "celsius": 21}'
#: the structured answer: Anthropic's comes as the input of the gateway's forced tool
STRUCTURED = {
    "openai": Reply(text=ANSWER_JSON),
    "gemini": Reply(text=ANSWER_JSON),
    "anthropic": Reply(tool_calls=[("conduit_structured_answer", {"city": "Orléans", "celsius": 21})]),
}
CALLED = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "map", "arguments": '{"city":"Orléans"}'}}
    ],
}
SEEN = {
    "role": "tool",
    "tool_call_id": "call_1",
    "content": [
        {"type": "text", "text": "The map of Orléans:"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ],
}


class Feature(NamedTuple):
    title: str  # the README table's first column
    request: dict[str, Any]  # the fields added to the plain question
    support: dict[Provider, Support]
    replies: dict[str, Reply] | None = None  # what the fake upstream answers, by provider (default: its greeting)


def _all(support: Support) -> dict[Provider, Support]:
    return dict.fromkeys(PROVIDERS, support)


FEATURES: dict[str, Feature] = {
    "internet": Feature("web search: `internet: true`", {"internet": True}, _all("native")),
    "web_search_options": Feature("web search: `web_search_options`", {"web_search_options": {}}, _all("native")),
    "search_location": Feature(
        "web search: `web_search_options.user_location`",
        {"web_search_options": {"user_location": LOCATION}},
        {"openai": "native", "anthropic": "native", "gemini": "refused"},
    ),
    "citations_off": Feature("citations: `citations: false`", {"internet": True, "citations": False}, _all("native")),
    "raw": Feature(
        "search results: `raw: true`",
        {"internet": True, "raw": True},
        {"openai": "mapped", "anthropic": "native", "gemini": "native"},
    ),
    "tone": Feature("`tone`", {"tone": "creative"}, _all("mapped")),
    "image": Feature("`image`", {"image": IMAGE}, _all("mapped")),
    "n": Feature("`n: 2`", {"n": 2}, {"openai": "native", "anthropic": "mapped", "gemini": "native"}),
    "json_schema": Feature(
        "`response_format` `json_schema`",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "weather", "schema": WEATHER, "strict": True},
            }
        },
        {"openai": "native", "anthropic": "mapped", "gemini": "native"},
        STRUCTURED,
    ),
    "json_object": Feature(
        "`response_format` `json_object`",
        {"response_format": {"type": "json_object"}},
        {"openai": "native", "anthropic": "mapped", "gemini": "native"},
        STRUCTURED,
    ),
    "reasoning": Feature("`reasoning_effort: low`", {"reasoning_effort": "low"}, _all("native")),
    "logprobs": Feature(
        "`logprobs`, `top_logprobs`",
        {"logprobs": True, "top_logprobs": 2},
        {"openai": "native", "anthropic": "refused", "gemini": "native"},
    ),
    "tools": Feature(
        "`tools`, `tool_choice: required`",
        {"tools": [TOOL], "tool_choice": "required"},
        _all("native"),
        dict.fromkeys(PROVIDERS, TWO_CALLS),
    ),
    "tool_result_image": Feature(
        "a tool result with an image",
        {"messages": [{"role": "user", "content": QUESTION}, CALLED, SEEN], "tools": [TOOL]},
        {"openai": "native", "anthropic": "native", "gemini": "mapped"},
    ),
    "parallel_tool_calls": Feature(
        "`parallel_tool_calls: false`",
        {"tools": [TOOL], "parallel_tool_calls": False},
        {"openai": "native", "anthropic": "native", "gemini": "mapped"},
        dict.fromkeys(PROVIDERS, TWO_CALLS),
    ),
}
CASES = [(feature, provider) for feature in FEATURES for provider in PROVIDERS]
ANSWERED = [(feature, provider) for feature, provider in CASES if FEATURES[feature].support[provider] != "refused"]


class _Sink:
    """Every event the job publishes."""

    receivers = 1

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def send(self, flush: Flush) -> int:
        self.events.extend(decode_events(flush.payload))
        return 1


class _Recording(httpx.AsyncBaseTransport):
    """The fake upstream in process, each exchange kept as a transcript."""

    def __init__(self, fake: FakeUpstream) -> None:
        self._inner = httpx.ASGITransport(app=fake)
        self.exchanges: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        body = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
        url = request.url
        line = f"{request.method} {url.raw_path.decode()}\n".encode() + request.content + b"\n\n"
        answer = f"{response.status_code} {response.headers.get('content-type', '')}\n".encode() + body
        self.exchanges.append(line + answer)
        return httpx.Response(response.status_code, headers=response.headers, content=body)


def _coalesced(events: list[Event]) -> list[Event]:
    """Runs of text (without logprobs) and of reasoning of one answer joined, heartbeats left out, renumbered: how
    the publisher batches deltas depends on timing, what they add up to does not."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, Heartbeat):
            continue
        last = out[-1] if out else None
        if (
            isinstance(event, TextDelta)
            and isinstance(last, TextDelta)
            and event.logprobs is None is last.logprobs
            and event.choice == last.choice
        ) or (isinstance(event, ReasoningDelta) and isinstance(last, ReasoningDelta) and event.choice == last.choice):
            out[-1] = msgspec.structs.replace(last, text=last.text + event.text)
            continue
        out.append(event)
    return [msgspec.structs.replace(event, seq=seq) for seq, event in enumerate(out, start=1)]


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2).encode() + b"\n"


async def _run(feature: str, provider: Provider) -> dict[str, bytes]:
    """The case's files, by name."""
    case = FEATURES[feature]
    request = {"model": MODELS[provider], "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 2048}
    raw = msgspec.json.encode(request | case.request)
    try:
        _, spec = chat_request(raw, ApiSettings(), load_catalog())
    except InvalidRequestError as refused:
        return {"refused.json": _json({"code": refused.code, "param": refused.param, "message": refused.message})}
    job = GenerationJob(
        id="job_golden",
        request_id="req_golden",
        principal=Principal(user_id="u_golden", tier="pro"),
        provider=spec.provider,
        model=spec.model,
        messages=spec.messages,
        params=spec.params,
    )
    fake = FakeUpstream(created=CREATED)
    if reply := (case.replies or {}).get(provider):
        for _ in range(spec.params.n or 1):
            fake.push(reply)
    base = {"openai": f"{UPSTREAM}/v1", "anthropic": UPSTREAM, "gemini": UPSTREAM}
    credentials: dict[str, Credentials] = {
        name: Credentials(api_key=DEFAULT_KEYS[name], base_url=base[name]) for name in PROVIDERS
    }
    settings = WorkerSettings(name="golden:1", credentials=credentials, total_timeout=10.0, upstream_retries=0)
    transport, sink = _Recording(fake), _Sink()
    async with httpx.AsyncClient(transport=transport) as client:
        ctx = PipelineContext(settings, load_catalog(), client, sink, build_streamers(0.0))
        await run_job(job, ctx)
    events = _coalesced(sink.events)
    if isinstance(failed := events[-1], Failed):
        assert not transport.exchanges, "a refused feature reached the upstream"
        return {"refused.json": _json({"code": failed.code, "param": failed.param, "message": failed.message})}
    encoder = ChatChunkEncoder(CHAT_ID, MODELS[provider], True, CREATED)
    stream = b"".join(frames(event.seq, encoder.encode(event)) for event in events)
    body = re.sub(
        rb'"created":\d+',
        b'"created":%d' % CREATED,
        chat_body(CHAT_ID, MODELS[provider], answer_of(events, MODELS[provider])),
    )
    downstream = {"downstream.sse": stream, "downstream.json": body}
    return {"upstream.http": b"\n\n".join(transport.exchanges)} | {
        name: GEMINI_CALL_ID.sub(b"call_gemini", data) for name, data in downstream.items()
    }


@pytest.mark.parametrize(("feature", "provider"), CASES, ids=[f"{f}-{p}" for f, p in CASES])
async def test_feature_matches_its_golden_files(feature: str, provider: Provider) -> None:
    files = await _run(feature, provider)
    folder = GOLDEN / feature / provider
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in {p.name for p in folder.iterdir()} - set(files):
            (folder / stale).unlink()
        for name, data in files.items():
            (folder / name).write_bytes(data)
    assert sorted(p.name for p in folder.iterdir()) == sorted(files), f"{folder}: other files than expected"
    for name, data in files.items():
        assert data == (folder / name).read_bytes(), f"{folder / name} differs (UPDATE_GOLDENS=1 to rewrite)"
    refused = FEATURES[feature].support[provider] == "refused"
    assert ("refused.json" in files) is refused, f"{feature} on {provider}: the table says {FEATURES[feature].support}"


@pytest.mark.parametrize(("feature", "provider"), ANSWERED, ids=[f"{f}-{p}" for f, p in ANSWERED])
def test_the_openai_sdk_parses_each_golden_answer(feature: str, provider: Provider) -> None:
    folder = GOLDEN / feature / provider
    ChatCompletion.model_validate_json((folder / "downstream.json").read_bytes())
    payloads = [event.data for event in SSEDecoder().iter_bytes(iter([(folder / "downstream.sse").read_bytes()]))]
    assert payloads[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(data) for data in payloads[:-1]]
    assert chunks and all(chunk.id == CHAT_ID for chunk in chunks)


def _table() -> str:
    head = "| feature | " + " | ".join(PROVIDERS) + " |\n|---|" + "---|" * len(PROVIDERS) + "\n"
    rows = [f"| {f.title} | " + " | ".join(f.support[p] for p in PROVIDERS) + " |" for f in FEATURES.values()]
    return head + "\n".join(rows) + "\n"


def test_the_readme_table_of_features_is_the_one_the_goldens_check() -> None:
    text = README.read_text()
    found = re.search(r"<!-- features:start -->\n(.*?)<!-- features:end -->", text, re.S)
    assert found, "README.md lacks the features table markers"
    assert found[1] == _table(), "README's features table is out of date:\n" + _table()
