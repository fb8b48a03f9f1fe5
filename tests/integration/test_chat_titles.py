"""With ``CONDUIT_CHAT_TITLE_MODEL`` set, a model writes a new chat's title after its first reply, in the
background (the reply is not held for it), and never over a title the user set."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.upstream import FakeUpstream, Reply, Stall
from tests.harness import auth
from tests.stack import Stack, own_stack

GENERATE = "/api/v1/chat/generate"


@pytest.fixture(scope="module")
def titled(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Stack]:
    logs: Path = tmp_path_factory.mktemp("titles")
    with own_stack(logs, fake, worker_env={"CONDUIT_CHAT_TITLE_MODEL": "openai/gpt-4o-mini"}) as private:
        yield private


def _title(stack: Stack, chat_id: str) -> str:
    response = httpx.get(f"{stack.url}/api/v1/chat/fetch/{chat_id}", headers=auth(), timeout=10)
    title: str = response.json()["title"]
    return title


def _wait_for_title(stack: Stack, chat_id: str, wanted: str) -> str:
    deadline = time.monotonic() + 10
    title = _title(stack, chat_id)
    while title != wanted and time.monotonic() < deadline:
        time.sleep(0.05)
        title = _title(stack, chat_id)
    return title


def test_a_model_retitles_a_new_chat_in_the_background(titled: Stack) -> None:
    titled.fake.push(Reply(text='"Packing for a Paris trip."'), provider="openai")
    body = {"chat_history": [{"role": "user", "content": "what should I pack for paris in may"}], "model": "echo"}
    created = httpx.post(f"{titled.url}{GENERATE}", json=body, headers=auth(), timeout=30)
    assert created.status_code == 201, created.text
    assert created.json()["title"] == "what should I pack for paris in may"  # at once, from the first message
    chat_id = created.json()["chatId"]
    assert _wait_for_title(titled, chat_id, "Packing for a Paris trip") == "Packing for a Paris trip"
    sent = titled.fake.requests[-1]
    assert sent.provider == "openai"
    assert "what should I pack for paris in may" in str(sent.body["messages"])


def test_a_slow_title_model_holds_nothing_and_a_users_title_wins(titled: Stack) -> None:
    titled.fake.push(Stall(seconds=2.0), provider="openai")
    body = {"chat_history": [{"role": "user", "content": "plan my week"}], "model": "echo"}
    started = time.monotonic()
    created = httpx.post(f"{titled.url}{GENERATE}", json=body, headers=auth(), timeout=30)
    assert created.status_code == 201 and time.monotonic() - started < 1.5  # the reply did not wait for the title
    chat_id = created.json()["chatId"]
    renamed = httpx.patch(f"{titled.url}/api/v1/chat/{chat_id}", json={"title": "Mine"}, headers=auth(), timeout=10)
    assert renamed.status_code == 200
    time.sleep(2.5)  # the stalled title call has ended (failed or answered): the user's title stays
    assert _title(titled, chat_id) == "Mine"
