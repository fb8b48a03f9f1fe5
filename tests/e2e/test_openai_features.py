"""``n`` answers (``n > 1``), and structured output, through the real stack, read by the official ``openai`` SDK,
streamed and not. ``n``: native on OpenAI (``n``) and Gemini (``candidateCount``), as ``n`` calls at once on Anthropic
and echo; each answer is its own choice, with its index, its text and its finish reason; the usage covers them
all. Structured output: the answer parses as JSON that validates against the schema."""

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import pytest

from tests.fakes.upstream import Reply
from tests.fakes.upstream_formats import SOURCES, THOUGHT
from tests.harness import token
from tests.stack import Stack

N = 3


def _marked(text: str) -> list[str]:
    """The fake's ``n`` answers: the first as is, the others marked ``[k] ``."""
    return [text, *(f"[{k}] {text}" for k in range(1, N))]


MODELS = {
    "openai": ("gpt-4o-mini", _marked("Hello from the fake openai!")),
    "gemini": ("gemini-2.5-flash", _marked("Hello from the fake gemini!")),
    "anthropic": ("claude-haiku-4-5", ["Hello from the fake anthropic!"] * N),  # n calls, each the same answer
}
MESSAGES: Any = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key=token("pro"), max_retries=0, timeout=30) as sdk:
        yield sdk


@pytest.mark.parametrize("provider", list(MODELS))
def test_n_answers_in_one_body(client: openai.OpenAI, stack: Stack, provider: str) -> None:
    model, texts = MODELS[provider]
    single = client.chat.completions.create(model=model, messages=MESSAGES)
    answer = client.chat.completions.create(model=model, messages=MESSAGES, n=N)
    assert [choice.index for choice in answer.choices] == list(range(N))
    assert [choice.message.content for choice in answer.choices] == texts
    assert {choice.finish_reason for choice in answer.choices} == {"stop"}
    assert answer.usage is not None and single.usage is not None
    assert answer.usage.completion_tokens >= N * single.usage.completion_tokens


@pytest.mark.parametrize("provider", list(MODELS))
def test_n_answers_streamed_with_their_indices(client: openai.OpenAI, provider: str) -> None:
    model, texts = MODELS[provider]
    stream = client.chat.completions.create(
        model=model, messages=MESSAGES, n=N, stream=True, stream_options={"include_usage": True}
    )
    content: dict[int, str] = {}
    finishes: dict[int, str] = {}
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            content[choice.index] = content.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert [content[index] for index in range(N)] == texts
    assert finishes == dict.fromkeys(range(N), "stop")
    assert usage is not None and usage.completion_tokens > 0


def test_echo_gives_n_answers_too(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="echo", messages=MESSAGES, n=2)
    assert [choice.message.content for choice in answer.choices] == ["Say hello", "Say hello"]


def test_more_than_eight_is_a_400_naming_n(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, n=9)
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "n"


# --- structured output: the answer parses as JSON that validates against the schema ---------------

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
    "required": ["city", "celsius"],
    "additionalProperties": False,
}
FORMAT: Any = {"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER, "strict": True}}


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_answers_a_json_schema_as_the_message_content(
    client: openai.OpenAI, stack: Stack, stream: bool
) -> None:
    """Anthropic gets a forced tool whose input schema is the answer's; the tool's input comes back as the
    message's content (not a tool call), and validates."""
    stack.fake.push(Reply(tool_calls=[("conduit_structured_answer", {"city": "Orléans", "celsius": 21})]), "anthropic")
    call: Any = {"model": "claude-haiku-4-5", "messages": MESSAGES, "response_format": FORMAT}
    if stream:
        chunks = list(client.chat.completions.create(**call, stream=True))
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert not [c for c in chunks if c.choices and c.choices[0].delta.tool_calls]
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        answer = client.chat.completions.create(**call)
        content, finish = answer.choices[0].message.content or "", [answer.choices[0].finish_reason]
        assert answer.choices[0].message.tool_calls is None
    jsonschema.validate(json.loads(content), WEATHER)
    assert finish == ["stop"]
    sent = stack.fake.requests[-1].body
    assert sent["tool_choice"] == {"type": "tool", "name": "conduit_structured_answer"}
    assert sent["tools"][0]["input_schema"] == WEATHER


def test_gemini_answers_a_json_schema_in_json_mode(client: openai.OpenAI, stack: Stack) -> None:
    stack.fake.push(Reply(text='{"city": "Orléans", "celsius": 21}'), "gemini")
    answer = client.chat.completions.create(model="gemini-2.5-flash", messages=MESSAGES, response_format=FORMAT)
    jsonschema.validate(json.loads(answer.choices[0].message.content or ""), WEATHER)
    config = stack.fake.requests[-1].body["generationConfig"]
    assert config["responseMimeType"] == "application/json" and config["responseJsonSchema"] == WEATHER


# --- web search: the provider's own, its sources as url_citation annotations ------------------------

TOKENS = ["Orléans ", "est ", "ensoleillée."]
ANSWER = "".join(TOKENS)


def _expected_annotations() -> list[dict[str, Any]]:
    spans = [(0, len(TOKENS[0]), 0), (len(TOKENS[0]), len(ANSWER), 1)]
    return [
        {
            "type": "url_citation",
            "url_citation": {"end_index": e, "start_index": s, "title": SOURCES[i][1], "url": SOURCES[i][0]},
        }
        for s, e, i in spans
    ]


@pytest.mark.parametrize("provider", ["openai", "gemini", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_internet_searches_with_the_providers_own_search_and_cites_its_sources(
    client: openai.OpenAI, stack: Stack, provider: str, stream: bool
) -> None:
    model = MODELS[provider][0]
    stack.fake.push(Reply(tokens=TOKENS), provider)  # type: ignore[arg-type]
    call: Any = {"model": model, "messages": MESSAGES, "extra_body": {"internet": True}}
    if stream:
        annotations: list[Any] = []
        text = ""
        for chunk in client.chat.completions.create(**call, stream=True):
            for choice in chunk.choices:
                text += choice.delta.content or ""
                annotations += (choice.delta.model_extra or {}).get("annotations") or []
    else:
        message = client.chat.completions.create(**call).choices[0].message
        text, annotations = message.content or "", [a.model_dump() for a in message.annotations or []]
    assert text == ANSWER
    assert annotations == _expected_annotations()  # character offsets, though Gemini's are bytes
    sent = stack.fake.requests[-1].body
    if provider == "openai":
        assert sent["web_search_options"] == {}
    else:
        search: dict[str, Any] = (
            {"googleSearch": {}} if provider == "gemini" else {"type": "web_search_20250305", "name": "web_search"}
        )
        assert any(search.items() <= tool.items() for tool in sent["tools"]), sent["tools"]
    assert "internet" not in sent


@pytest.mark.parametrize("provider", ["gemini", "anthropic"])
def test_raw_lists_the_search_results_and_citations_false_leaves_out_the_annotations(
    client: openai.OpenAI, stack: Stack, provider: str
) -> None:
    stack.fake.push(Reply(tokens=TOKENS), provider)  # type: ignore[arg-type]
    extra = {"internet": True, "raw": True, "citations": False}
    answer = client.chat.completions.create(model=MODELS[provider][0], messages=MESSAGES, extra_body=extra)
    message = answer.choices[0].message
    assert message.annotations == [] and message.content == ANSWER
    assert (message.model_extra or {})["search_results"] == [
        {"title": title, "url": url, "snippet": ""} for url, title in SOURCES
    ]


# --- reasoning: the provider's thinking as reasoning_content, its tokens in the usage ------------------

THOUGHT_TOKENS = len(THOUGHT.split()) + 2  # the fake's thought: its words, its ";" and its "."


@pytest.mark.parametrize("provider", ["openai", "gemini", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_effort_streams_the_thinking_and_counts_its_tokens(
    client: openai.OpenAI, stack: Stack, provider: str, stream: bool
) -> None:
    """OpenAI thinks without showing it (only its reasoning tokens); Anthropic's thinking blocks and Gemini's
    thoughts come back as ``reasoning_content``."""
    call: Any = {"model": MODELS[provider][0], "messages": MESSAGES, "reasoning_effort": "low", "max_tokens": 2048}
    if stream:
        reasoning, usage = "", None
        for chunk in client.chat.completions.create(**call, stream=True, stream_options={"include_usage": True}):
            usage = chunk.usage or usage
            for choice in chunk.choices:
                reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
    else:
        answer = client.chat.completions.create(**call)
        reasoning, usage = (answer.choices[0].message.model_extra or {}).get("reasoning_content") or "", answer.usage
    assert reasoning == ("" if provider == "openai" else THOUGHT)
    assert usage is not None and usage.completion_tokens_details is not None
    counted = usage.completion_tokens_details.reasoning_tokens or 0
    if provider == "anthropic":  # estimated from the thinking's text: Anthropic reports no such figure
        assert counted == -(-len(THOUGHT) // 4)
    else:
        assert counted == THOUGHT_TOKENS


def test_gemini_keeps_the_first_function_call_when_parallel_tool_calls_is_false(
    client: openai.OpenAI, stack: Stack
) -> None:
    calls = [("get_weather", {"city": "Orléans"}), ("get_weather", {"city": "Tours"})]
    tool: Any = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    call: Any = {"model": "gemini-2.5-flash", "messages": MESSAGES, "tools": [tool]}
    stack.fake.push(Reply(tool_calls=calls), "gemini")
    both = client.chat.completions.create(**call).choices[0].message.tool_calls or []
    stack.fake.push(Reply(tool_calls=calls), "gemini")
    one = client.chat.completions.create(**call, parallel_tool_calls=False).choices[0]
    assert [c.function.arguments for c in both if c.type == "function"] == ['{"city":"Orléans"}', '{"city":"Tours"}']
    assert [c.function.arguments for c in one.message.tool_calls or [] if c.type == "function"] == [
        '{"city":"Orléans"}'
    ]
    assert one.finish_reason == "tool_calls"


def test_raw_on_openai_lists_the_cited_sources_once_each(client: openai.OpenAI, stack: Stack) -> None:
    stack.fake.push(Reply(tokens=TOKENS), "openai")
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_body={"internet": True, "raw": True}
    )
    assert (answer.choices[0].message.model_extra or {})["search_results"] == [
        {"title": title, "url": url, "snippet": ""} for url, title in SOURCES
    ]


# --- logprobs: Gemini's logprobsResult in OpenAI's shape; Anthropic has none -------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_logprobs_reach_the_sdk_in_openais_shape(client: openai.OpenAI, stream: bool) -> None:
    call: Any = {"model": "gemini-2.5-flash", "messages": MESSAGES, "logprobs": True, "top_logprobs": 2}
    if stream:
        entries = [
            entry
            for chunk in client.chat.completions.create(**call, stream=True)
            for choice in chunk.choices
            for entry in (choice.logprobs.content or [] if choice.logprobs else [])
        ]
    else:
        logprobs = client.chat.completions.create(**call).choices[0].logprobs
        entries = list(logprobs.content or []) if logprobs else []
    assert "".join(entry.token for entry in entries) == "Hello from the fake gemini!"
    assert all(entry.logprob < 0 and len(entry.top_logprobs) == 2 for entry in entries)
    assert all(entry.top_logprobs[0].token == entry.token for entry in entries)


def test_anthropic_refuses_logprobs_naming_the_field_and_the_provider(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="claude-haiku-4-5", messages=MESSAGES, logprobs=True)
    body = refused.value.body
    assert isinstance(body, dict) and body["param"] == "logprobs" and "anthropic" in body["message"]
