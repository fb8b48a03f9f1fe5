"""A batch input file checked as it streams in (``services.api.dialects.openai.batch_lines``)."""

import msgspec
import pytest

from services.api.dialects.openai.batch_lines import BatchInput, LineChecker
from services.api.settings import ApiSettings
from shared.batches import BatchLine, decode_line, encode_line
from shared.catalog import load_catalog
from shared.errors import GatewayError

CATALOG = load_catalog()
SETTINGS = ApiSettings()


def line(custom_id: str = "a", url: str = "/v1/chat/completions", **body: object) -> bytes:
    body = body or {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    return msgspec.json.encode({"custom_id": custom_id, "method": "POST", "url": url, "body": body}) + b"\n"


def checked(data: bytes, chunk: int = 7, max_lines: int = 100) -> tuple[BatchInput, list[BatchLine]]:
    checker = LineChecker(SETTINGS, CATALOG, max_lines=max_lines, max_line_bytes=10_000)
    lines = []
    for start in range(0, len(data), chunk):  # lines cut anywhere, as a network delivers them
        lines += checker.feed(data[start : start + chunk])
    found, last = checker.close()
    return found, lines + last


def refusal(data: bytes, **kw: int) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        checked(data, **kw)
    return caught.value


def test_a_good_file_reports_its_lines_endpoint_and_providers() -> None:
    data = line("a") + b"\n" + line("b", model="claude-sonnet-4-5", messages=[{"role": "user", "content": "x"}])
    found, lines = checked(data + line("c", model="echo", messages=[{"role": "user", "content": "y"}]).rstrip())
    assert (found.lines, found.endpoint) == (3, "/v1/chat/completions")
    assert found.providers == ("anthropic", "echo", "openai")
    assert [(x.custom_id, x.provider, x.dialect, x.id_prefix, x.model_named) for x in lines] == [
        ("a", "openai", "openai.chat", "chatcmpl-", "gpt-4o-mini"),
        ("b", "anthropic", "openai.chat", "chatcmpl-", "claude-sonnet-4-5"),
        ("c", "echo", "openai.chat", "chatcmpl-", "echo"),
    ]
    assert lines[1].messages[0].content == "x" and decode_line(encode_line(lines[1])) == lines[1]
    completions, (prompted,) = checked(line("p", url="/v1/completions", model="gpt-4o-mini", prompt="Say hi"))
    assert completions.endpoint == "/v1/completions"
    assert (prompted.prompt, prompted.dialect, prompted.id_prefix) == ("Say hi", "openai.completion", "cmpl-")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"not json\n", "line 1: not JSON"),
        (line("a") + b'{"custom_id": 1}\n', "line 2: not a batch request line"),
        (line("a") + line("a"), "line 2: custom_id 'a' is used by an earlier line"),
        (line(""), "line 1: custom_id is empty"),
        (line("a").replace(b'"POST"', b'"GET"'), "line 1: method must be POST"),
        (line("a", url="/v1/embeddings"), "line 1: url '/v1/embeddings' is not an endpoint a batch can call"),
        (line("a") + line("b", url="/v1/completions", model="m", prompt="x"), "line 2: url '/v1/completions' differs"),
        (line("a", model="gpt-4o-mini", messages=[]), "line 1:"),
        (line("a", model="gpt-4o-mini"), "line 1:"),
        (line("a", model="no-such-model-anywhere", messages=[{"role": "user", "content": "x"}]), "line 1:"),
        (
            line("a", model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True),
            "line 1: stream is not supported in a batch",
        ),
        (b"\n\n", "the file holds no request lines"),
        (line("a") + line("b") + line("c"), "line 3: a batch input may hold at most 2 requests"),
    ],
)
def test_each_refusal_names_its_line(data: bytes, says: str) -> None:
    error = refusal(data, max_lines=2)
    assert error.message.startswith(says), error.message
    assert error.param is not None


def test_a_body_refusal_names_the_field_under_body() -> None:
    error = refusal(line("a", model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], temperature="hot"))
    assert error.param == "body.temperature" and error.message.startswith("line 1:")


def test_a_line_longer_than_the_cap_is_refused_before_it_ends() -> None:
    checker = LineChecker(SETTINGS, CATALOG, max_lines=10, max_line_bytes=100)
    assert len(checker.feed(line("a"))) == 1
    with pytest.raises(GatewayError, match="line 2: longer than 100 bytes"):
        checker.feed(b"{" + b" " * 200)


def test_a_line_never_run_is_an_error_line_saying_why() -> None:
    from services.api.batches.results import Drawing, result_line
    from services.api.dialects.openai.errors import render_error
    from services.api.dialects.openai.translate import answer_body

    (_, (first,)) = checked(line("x"))
    draw = Drawing(answer_body, render_error)
    for ends_as, code in (("expired", "batch_expired"), ("cancelled", "batch_cancelled")):
        answered, raw = result_line(first, None, ends_as, draw)
        out = msgspec.json.decode(raw)
        assert not answered and raw.endswith(b"\n") and out["response"] is None
        assert (out["custom_id"], out["error"]["code"]) == ("x", code) and out["id"].startswith("batch_req_")
