"""The Files API with the official ``openai`` SDK, unchanged: upload a batch input, list, read, delete; another
user's file is a 404; a bad line is a 400 naming it; free tier cannot upload."""

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from shared.batches import decode_line, lines_file_id
from tests.harness import auth, token
from tests.stack import Stack

MESSAGES = [{"role": "user", "content": "hi"}]


def batch_line(custom_id: str, **body: object) -> str:
    body = body or {"model": "gpt-4o-mini", "messages": MESSAGES}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body})


def sdk(stack: Stack, tier: str = "pro", user: str = "tester") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=token(tier, user), max_retries=0, timeout=30)


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with sdk(stack, user="files-user") as client:
        yield client


def stored(stack: Stack) -> Path:
    return Path(stack.api.env["CONDUIT_FILES_DIR"])


def test_a_batch_input_goes_up_reads_back_byte_for_byte_and_goes(client: openai.OpenAI, stack: Stack) -> None:
    data = ("\n".join(batch_line(f"r{i}") for i in range(50)) + "\n").encode()
    made = client.files.create(file=("evals.jsonl", data), purpose="batch")
    assert (made.object, made.bytes, made.filename, made.purpose, made.status) == (
        "file",
        len(data),
        "evals.jsonl",
        "batch",
        "processed",
    )
    assert made.id.startswith("file-") and made.expires_at == made.created_at + 30 * 86400  # OpenAI's default
    assert client.files.retrieve(made.id) == made
    assert client.files.content(made.id).read() == data
    translated = stored(stack) / lines_file_id(made.id)  # the lines as the jobs the batch workers will run
    lines = [decode_line(raw) for raw in translated.read_bytes().splitlines()]
    assert [(line.custom_id, line.provider, line.model_named) for line in lines][:2] == [
        ("r0", "openai", "gpt-4o-mini"),
        ("r1", "openai", "gpt-4o-mini"),
    ]
    assert len(lines) == 50
    assert client.files.delete(made.id).deleted
    assert not translated.exists() and not (stored(stack) / made.id).exists()
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(made.id)


def test_files_list_newest_first_in_pages_and_by_purpose(stack: Stack) -> None:
    with sdk(stack, user="lister") as client:
        made = [client.files.create(file=(f"{i}.jsonl", batch_line("a").encode()), purpose="batch") for i in range(5)]
        page = client.files.list(limit=2)
        assert [f.id for f in page.data] == [made[4].id, made[3].id] and page.has_more
        assert [f.id for f in page] == [f.id for f in reversed(made)]  # the SDK follows `after` by itself
        oldest = client.files.list(limit=3, order="asc", purpose="batch")
        assert [f.id for f in oldest.data] == [f.id for f in made[:3]]
        assert client.files.list(purpose="batch_output").data == []
        expiring = client.files.create(
            file=("x.jsonl", batch_line("a").encode()),
            purpose="batch",
            expires_after={"anchor": "created_at", "seconds": 3600},
        )
        assert expiring.expires_at == expiring.created_at + 3600


def test_another_users_file_is_a_404_everywhere(client: openai.OpenAI, stack: Stack) -> None:
    made = client.files.create(file=("mine.jsonl", batch_line("a").encode()), purpose="batch")
    with sdk(stack, user="someone-else") as other:
        for call in (other.files.retrieve, other.files.content, other.files.delete):
            with pytest.raises(openai.NotFoundError):
                call(made.id)
        assert made.id not in [f.id for f in other.files.list()]
    assert client.files.retrieve(made.id).id == made.id


def test_a_bad_line_refuses_the_upload_naming_the_line(client: openai.OpenAI, stack: Stack) -> None:
    cases = {
        batch_line("a") + "\n" + batch_line("a"): "line 2: custom_id 'a' is used by an earlier line",
        batch_line("a") + "\nnot json": "line 2: not JSON",
        batch_line("a", model="gpt-4o-mini", messages=MESSAGES, stream=True): "line 1: stream is not supported",
        batch_line("a", model="gpt-4o-mini", messages=[]): "line 1:",
    }
    before, kept = {f.id for f in client.files.list()}, set(stored(stack).iterdir())
    for data, says in cases.items():
        with pytest.raises(openai.BadRequestError) as caught:
            client.files.create(file=("bad.jsonl", data.encode()), purpose="batch")
        error = caught.value.body
        assert isinstance(error, dict) and error["message"].startswith(says), error
    with pytest.raises(openai.BadRequestError, match="purpose must be 'batch'"):
        client.files.create(file=("ok.jsonl", batch_line("a").encode()), purpose="user_data")
    assert {f.id for f in client.files.list()} == before  # nothing kept
    assert set(stored(stack).iterdir()) == kept


def test_free_tier_cannot_upload_but_may_list(stack: Stack) -> None:
    with sdk(stack, tier="free", user="free-user") as free:
        with pytest.raises(openai.PermissionDeniedError):
            free.files.create(file=("a.jsonl", batch_line("a").encode()), purpose="batch")
        assert free.files.list().data == []


def test_a_body_that_is_not_multipart_is_a_400_in_openais_shape(stack: Stack) -> None:
    for headers, content in (
        ({"content-type": "application/json"}, b"{}"),
        ({"content-type": "multipart/form-data; boundary=x"}, b'--x\r\nContent-Disposition: form-data; name="f'),
        ({"content-type": "multipart/form-data; boundary=x"}, b"--x--\r\n"),
    ):
        response = httpx.post(f"{stack.url}/v1/files", content=content, headers={**auth(), **headers})
        assert response.status_code == 400, response.text
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
