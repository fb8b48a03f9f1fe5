"""The fake upstream speaks each provider's wire format for every request feature: the providers' own SDKs
(``anthropic``, ``google-genai``, ``openai``) read its answers, streamed and not, straight from its loopback port.

This is what makes the feature goldens (``tests/unit/test_feature_goldens.py``) and the end-to-end tests worth
something: a frame the fake got wrong would fail here, in the parser of the SDK a provider ships.
"""

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from tests.fakes.upstream import DEFAULT_KEYS, FakeUpstream, Reply
from tests.fakes.upstream_formats import SIGNATURE, SOURCES, THOUGHT

QUESTION = "Weather in Orléans?"
TOKENS = ["Orléans ", "est ", "ensoleillée."]
ANSWER = "".join(TOKENS)
TOOL_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TWO_CALLS = Reply(tool_calls=[("get_weather", {"city": "Orléans"}), ("get_weather", {"city": "Tours"})])


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def claude(fake: FakeUpstream) -> Iterator[anthropic.Anthropic]:
    fake.reset()
    with anthropic.Anthropic(api_key=DEFAULT_KEYS["anthropic"], base_url=fake.url, max_retries=0) as client:
        yield client


@pytest.fixture
def gemini(fake: FakeUpstream) -> genai.Client:
    fake.reset()
    options = types.HttpOptions(base_url=fake.url, api_version="v1beta")
    return genai.Client(api_key=DEFAULT_KEYS["gemini"], http_options=options)


@pytest.fixture
def gpt(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    fake.reset()
    with openai.OpenAI(api_key=DEFAULT_KEYS["openai"], base_url=fake.openai_base_url, max_retries=0) as client:
        yield client


# --- anthropic ---------------------------------------------------------------------------------------

MESSAGES: Any = [{"role": "user", "content": QUESTION}]
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}
SEARCH: Any = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]
TOOLS: Any = [{"name": "get_weather", "description": "Current weather", "input_schema": TOOL_SCHEMA}]


def _claude(client: anthropic.Anthropic, stream: bool, **call: Any) -> anthropic.types.Message:
    call = {"model": "claude-haiku-4-5", "max_tokens": 2048, "messages": MESSAGES, **call}
    if not stream:
        message: anthropic.types.Message = client.messages.create(**call)
        return message
    with client.messages.stream(**call) as events:
        for _ in events:  # every event through the SDK's own accumulator
            pass
        return events.get_final_message()


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sdk_reads_a_thinking_block_with_its_signature(claude: anthropic.Anthropic, stream: bool) -> None:
    message = _claude(claude, stream, thinking=THINKING)
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking == THOUGHT and thinking.signature == SIGNATURE
    assert text.type == "text" and text.text == "Hello from the fake anthropic!"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > len(text.text.split())  # thinking counts in the output tokens


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sdk_reads_tool_calls_and_disable_parallel_tool_use(
    claude: anthropic.Anthropic, fake: FakeUpstream, stream: bool
) -> None:
    fake.push(TWO_CALLS)
    both = _claude(claude, stream, tools=TOOLS)
    assert [(b.type, getattr(b, "input", None)) for b in both.content] == [
        ("tool_use", {"city": "Orléans"}),
        ("tool_use", {"city": "Tours"}),
    ]
    assert both.stop_reason == "tool_use"
    fake.push(TWO_CALLS)
    one = _claude(claude, stream, tools=TOOLS, tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    assert [getattr(b, "input", None) for b in one.content] == [{"city": "Orléans"}]


def test_anthropic_sdk_reads_a_web_search_with_its_results_and_citations(
    claude: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    """Streamed only: the fake answers a search the way Anthropic streams one (its bodies carry no search)."""
    fake.push(Reply(tokens=TOKENS))
    message = _claude(claude, True, tools=SEARCH)
    kinds = [block.type for block in message.content]
    assert kinds == ["server_tool_use", "web_search_tool_result", "text", "text"]
    results = message.content[1]
    assert isinstance(results, anthropic.types.WebSearchToolResultBlock) and isinstance(results.content, list)
    assert [(r.url, r.title) for r in results.content] == SOURCES
    texts = [block for block in message.content if isinstance(block, anthropic.types.TextBlock)]
    assert "".join(block.text for block in texts) == ANSWER
    cited = [
        (c.url, c.title)
        for block in texts
        for c in block.citations or []
        if isinstance(c, anthropic.types.CitationsWebSearchResultLocation)
    ]
    assert cited == SOURCES
    assert message.usage.server_tool_use is not None and message.usage.server_tool_use.web_search_requests == 1


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sdk_reads_the_forced_answer_tool(
    claude: anthropic.Anthropic, fake: FakeUpstream, stream: bool
) -> None:
    fake.push(Reply(tool_calls=[("conduit_structured_answer", {"city": "Orléans", "celsius": 21})]))
    forced: Any = {"type": "tool", "name": "conduit_structured_answer"}
    answer_tool: Any = [{"name": "conduit_structured_answer", "input_schema": {"type": "object"}}]
    message = _claude(claude, stream, tools=answer_tool, tool_choice=forced)
    (block,) = message.content
    assert block.type == "tool_use" and block.input == {"city": "Orléans", "celsius": 21}


# --- google-genai ------------------------------------------------------------------------------------


def _gemini(
    client: genai.Client, stream: bool, config: types.GenerateContentConfig
) -> list[types.GenerateContentResponse]:
    if stream:
        return list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=QUESTION, config=config))
    return [client.models.generate_content(model="gemini-2.5-flash", contents=QUESTION, config=config)]


def _parts(responses: list[types.GenerateContentResponse], index: int = 0) -> list[types.Part]:
    return [
        part
        for response in responses
        for candidate in response.candidates or []
        if (candidate.index or 0) == index and candidate.content is not None
        for part in candidate.content.parts or []
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_google_genai_reads_thoughts_and_their_token_count(gemini: genai.Client, stream: bool) -> None:
    thinking = types.ThinkingConfig(thinking_budget=1024, include_thoughts=True)
    responses = _gemini(gemini, stream, types.GenerateContentConfig(thinking_config=thinking))
    parts = _parts(responses)
    assert "".join(p.text or "" for p in parts if p.thought) == THOUGHT
    assert "".join(p.text or "" for p in parts if not p.thought) == "Hello from the fake gemini!"
    usage = responses[-1].usage_metadata
    assert usage is not None and usage.thoughts_token_count == len(THOUGHT.split()) + 2  # words, ";" and "."
    hidden = _gemini(
        gemini, stream, types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=1024))
    )
    assert not [p for p in _parts(hidden) if p.thought]  # thought, but did not say (no includeThoughts)
    assert hidden[-1].usage_metadata is not None and hidden[-1].usage_metadata.thoughts_token_count


@pytest.mark.parametrize("stream", [False, True])
def test_google_genai_reads_logprobs(gemini: genai.Client, stream: bool) -> None:
    responses = _gemini(gemini, stream, types.GenerateContentConfig(response_logprobs=True, logprobs=2))
    results = [c.logprobs_result for r in responses for c in r.candidates or [] if c.logprobs_result is not None]
    chosen = [token for result in results for token in result.chosen_candidates or []]
    assert "".join(token.token or "" for token in chosen) == "Hello from the fake gemini!"
    assert all(token.log_probability is not None and token.log_probability < 0 for token in chosen)
    tops = [top for result in results for top in result.top_candidates or []]
    assert len(tops) == len(chosen) and all(len(top.candidates or []) == 2 for top in tops)


@pytest.mark.parametrize("stream", [False, True])
def test_google_genai_reads_candidates_and_grounding(gemini: genai.Client, fake: FakeUpstream, stream: bool) -> None:
    fake.push(Reply(tokens=TOKENS))
    search: Any = [types.Tool(google_search=types.GoogleSearch())]
    responses = _gemini(gemini, stream, types.GenerateContentConfig(candidate_count=2, tools=search))
    assert "".join(p.text or "" for p in _parts(responses, 0)) == ANSWER
    assert "".join(p.text or "" for p in _parts(responses, 1)) == "[1] " + ANSWER
    grounding = [c.grounding_metadata for r in responses for c in r.candidates or [] if c.grounding_metadata]
    assert grounding
    chunks = grounding[0].grounding_chunks or []
    assert [(c.web.uri, c.web.title) for c in chunks if c.web] == SOURCES
    supports = grounding[0].grounding_supports or []
    segments = [s.segment for s in supports if s.segment]
    encoded = ANSWER.encode()
    assert [encoded[s.start_index or 0 : s.end_index].decode() for s in segments] == [
        TOKENS[0],
        ANSWER[len(TOKENS[0]) :],
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_google_genai_reads_parallel_function_calls(gemini: genai.Client, fake: FakeUpstream, stream: bool) -> None:
    fake.push(TWO_CALLS)
    declaration = types.FunctionDeclaration(name="get_weather", parameters_json_schema=TOOL_SCHEMA)
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[declaration])])
    calls = [p.function_call for p in _parts(_gemini(gemini, stream, config)) if p.function_call]
    assert [(c.name, c.args) for c in calls] == [
        ("get_weather", {"city": "Orléans"}),
        ("get_weather", {"city": "Tours"}),
    ]


# --- openai ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk_reads_reasoning_tokens_n_logprobs_and_annotations(gpt: openai.OpenAI, stream: bool) -> None:
    call: Any = {"model": "gpt-4o-mini", "messages": MESSAGES, "reasoning_effort": "low", "n": 2}
    call |= {"logprobs": True, "top_logprobs": 2, "web_search_options": {}}
    if stream:
        chunks = list(gpt.chat.completions.create(**call, stream=True, stream_options={"include_usage": True}))
        texts = {c.index: "" for chunk in chunks for c in chunk.choices}
        for chunk in chunks:
            for choice in chunk.choices:
                texts[choice.index] += choice.delta.content or ""
        usage = chunks[-1].usage
        assert sorted(texts) == [0, 1]
    else:
        answer = gpt.chat.completions.create(**call)
        texts = {c.index: c.message.content or "" for c in answer.choices}
        usage = answer.usage
        first = answer.choices[0]
        assert (
            first.logprobs is not None and first.logprobs.content and len(first.logprobs.content[0].top_logprobs) == 2
        )
        assert [(a.url_citation.url, a.url_citation.title) for a in first.message.annotations or []] == SOURCES
    assert texts[1] == "[1] " + texts[0]
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == len(THOUGHT.split()) + 2


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk_reads_parallel_tool_calls_false(gpt: openai.OpenAI, fake: FakeUpstream, stream: bool) -> None:
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": TOOL_SCHEMA}}]
    call: Any = {"model": "gpt-4o-mini", "messages": MESSAGES, "tools": tools, "parallel_tool_calls": False}
    fake.push(TWO_CALLS)
    if stream:
        chunks = list(gpt.chat.completions.create(**call, stream=True))
        names = [
            t.function.name
            for c in chunks
            for ch in c.choices
            for t in ch.delta.tool_calls or []
            if t.function and t.function.name
        ]
    else:
        message = gpt.chat.completions.create(**call).choices[0].message
        names = [t.function.name for t in message.tool_calls or [] if t.type == "function"]
    assert names == ["get_weather"]
