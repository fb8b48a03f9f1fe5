import httpx
import pytest

from services.worker.providers.base import FinishPiece, ModelPiece, Piece, Target, TextPiece, UsagePiece
from services.worker.providers.echo import count_tokens, echo_tokens, stream_echo
from shared.catalog import ProviderSpec
from shared.jobs import ChatMessage, GenerationJob, Principal, SamplingParams, TextPart

TARGET = Target(
    provider="echo", spec=ProviderSpec(kind="echo", default_model="echo"), base_url="", api_key="", model="echo"
)


def _job(messages: list[ChatMessage], params: SamplingParams | None = None) -> GenerationJob:
    return GenerationJob(
        id="job_echo",
        request_id="req_echo",
        principal=Principal(user_id="u", tier="pro"),
        provider="echo",
        model="echo",
        messages=messages,
        params=params or SamplingParams(),
    )


async def _pieces(job: GenerationJob) -> list[Piece]:
    async with httpx.AsyncClient() as client:
        return [piece async for piece in stream_echo(client, job, TARGET)]


# --- echo_tokens / count_tokens --------------------------------------------------------------------


def test_echo_tokens_splits_words_keeping_leading_space():
    assert echo_tokens("Hello big  world") == ["Hello", " big", "  world"]


@pytest.mark.parametrize(
    "text",
    [
        "Hello big  world",
        "  leading spaces",
        "trailing spaces  ",
        "tabs\tand\nnew lines\r\n",
        "Un café, s'il vous plaît ☕",
        "one",
        "",
    ],
)
def test_echo_tokens_join_back_to_input(text):
    assert "".join(echo_tokens(text)) == text


def test_echo_tokens_join_back_to_input_when_whitespace_only():
    # the docstring promises tokens "that join back to text"; whitespace-only text has no word to carry it
    assert "".join(echo_tokens("   ")) == "   "
    assert "".join(echo_tokens("\n")) == "\n"


def test_echo_tokens_attach_trailing_whitespace_to_last_token():
    assert echo_tokens("a b \n") == ["a", " b \n"]


def test_echo_tokens_of_empty_text_is_empty():
    assert echo_tokens("") == []


@pytest.mark.parametrize(
    ("text", "count"),
    [("", 0), ("   ", 0), ("one", 1), ("Hello big  world ", 3), ("a\nb\tc", 3), ("Un café ☕", 3)],
)
def test_count_tokens_counts_words(text, count):
    assert count_tokens(text) == count


# --- stream_echo -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_stream_echo_answers_last_user_message_then_usage_and_finish():
    job = _job(
        [
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="user", content="first question"),
            ChatMessage(role="assistant", content="first answer"),
            ChatMessage(role="user", content="say it back"),
        ]
    )

    assert await _pieces(job) == [
        ModelPiece("echo"),
        TextPiece("say"),
        TextPiece(" it"),
        TextPiece(" back"),
        UsagePiece(prompt_tokens=9, completion_tokens=3),
        FinishPiece("stop", "echo"),
    ]


@pytest.mark.anyio
async def test_stream_echo_joins_text_parts_of_last_user_message():
    job = _job([ChatMessage(role="user", content=[TextPart(text="look "), TextPart(text="here")])])

    pieces = await _pieces(job)

    assert "".join(p.text for p in pieces if isinstance(p, TextPiece)) == "look here"


@pytest.mark.anyio
async def test_stream_echo_without_user_message_says_empty():
    pieces = await _pieces(_job([ChatMessage(role="system", content="only system")]))

    assert [p.text for p in pieces if isinstance(p, TextPiece)] == ["(empty", " message)"]
    assert pieces[-1] == FinishPiece("stop", "echo")


@pytest.mark.anyio
async def test_stream_echo_cuts_at_stop_sequence():
    job = _job([ChatMessage(role="user", content="one two STOP three")], SamplingParams(stop=["STOP"]))

    pieces = await _pieces(job)

    assert [p.text for p in pieces if isinstance(p, TextPiece)] == ["one", " two "]
    assert pieces[-2:] == [UsagePiece(prompt_tokens=4, completion_tokens=2), FinishPiece("stop", "echo")]


@pytest.mark.anyio
async def test_stream_echo_applies_earliest_of_several_stop_sequences():
    job = _job([ChatMessage(role="user", content="alpha beta gamma delta")], SamplingParams(stop=["delta", "beta"]))

    pieces = await _pieces(job)

    assert "".join(p.text for p in pieces if isinstance(p, TextPiece)) == "alpha "


@pytest.mark.anyio
async def test_stream_echo_ignores_absent_and_empty_stop_sequences():
    job = _job([ChatMessage(role="user", content="keep it all")], SamplingParams(stop=["", "zzz"]))

    pieces = await _pieces(job)

    assert "".join(p.text for p in pieces if isinstance(p, TextPiece)) == "keep it all"


@pytest.mark.anyio
async def test_stream_echo_truncates_at_max_tokens_with_length():
    job = _job([ChatMessage(role="user", content="one two three four")], SamplingParams(max_tokens=2))

    assert await _pieces(job) == [
        ModelPiece("echo"),
        TextPiece("one"),
        TextPiece(" two"),
        UsagePiece(prompt_tokens=4, completion_tokens=2),
        FinishPiece("length", "echo"),
    ]


@pytest.mark.anyio
async def test_stream_echo_exact_max_tokens_is_stop():
    job = _job([ChatMessage(role="user", content="one two")], SamplingParams(max_tokens=2))

    pieces = await _pieces(job)

    assert pieces[-1] == FinishPiece("stop", "echo")
