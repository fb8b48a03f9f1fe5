"""The chat API's handlers in-process: Litestar's test client over the real routes and services, with memory
ports (``tests/fakes/memory.py``) instead of Redis, workers and providers."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from services.api.app import create_app
from services.api.auth.tokens import issue_token
from services.api.settings import ApiSettings
from shared.config import load_settings
from tests.fakes.memory import memory_collaborators

pytestmark = pytest.mark.anyio

SECRET = "y" * 40
GENERATE = "/api/v1/chat/generate"


def auth(user: str = "ana", tier: str = "pro") -> dict[str, str]:
    return {"authorization": f"Bearer {issue_token(SECRET, user, tier)}"}


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = create_app(load_settings(ApiSettings, {"CONDUIT_JWT_SECRET": SECRET}), {}, memory_collaborators())
    async with AsyncTestClient(app) as test_client:
        yield test_client


def history(*texts: str) -> list[dict[str, str]]:
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": text} for i, text in enumerate(texts)]


async def generate(client: AsyncTestClient[Litestar], body: dict[str, Any], user: str = "ana", **query: str) -> Any:
    response = await client.post(GENERATE, json=body, headers=auth(user), params=query)
    assert response.status_code == 201, response.text
    return response.json()


async def test_generate_creates_a_chat_and_answers_201(client: AsyncTestClient[Litestar]) -> None:
    body = await generate(client, {"chat_history": history("hello there")})
    assert body == {
        "result": {"message": "hello there", "persona": "maya"},
        "chatId": body["chatId"],
        "title": "hello there",
        "researchMode": False,
        "stream": False,
    }
    chat = (await client.get(f"/api/v1/chat/fetch/{body['chatId']}", headers=auth())).json()
    assert [(m["role"], m["content"]) for m in chat["messages"]] == [
        ("user", "hello there"),
        ("assistant", "hello there"),
    ]
    assert chat["messages"][1]["usage"]["completion_tokens"] == 2
    assert chat["messages"][1]["model"] == "echo"


async def test_resending_the_whole_chat_stores_no_duplicates(client: AsyncTestClient[Litestar]) -> None:
    first = await generate(client, {"chat_history": history("one")})
    chat_id = first["chatId"]
    await generate(client, {"chat_history": history("one", "one", "two")}, chatId=chat_id)
    await generate(client, {"chat_history": history("three")}, chatId=chat_id)
    chat = (await client.get(f"/api/v1/chat/fetch/{chat_id}", headers=auth())).json()
    assert [m["content"] for m in chat["messages"]] == ["one", "one", "two", "two", "three", "three"]
    assert chat["messageCount"] == 6


async def test_another_users_chat_is_404_everywhere(client: AsyncTestClient[Litestar]) -> None:
    chat_id = (await generate(client, {"chat_history": history("mine")}))["chatId"]
    message_id = (await client.get(f"/api/v1/chat/fetch/{chat_id}", headers=auth())).json()["messages"][0]["id"]
    bob = auth("bob")
    answers = [
        await client.get(f"/api/v1/chat/fetch/{chat_id}", headers=bob),
        await client.post("/api/v1/chat/fork", json={"chatId": chat_id, "messageId": message_id}, headers=bob),
        await client.put(f"/api/v1/chat/{chat_id}/pin", json={"pinned": True}, headers=bob),
        await client.patch(f"/api/v1/chat/{chat_id}", json={"title": "x"}, headers=bob),
        await client.delete(f"/api/v1/chat/{chat_id}", headers=bob),
        await client.post(GENERATE, json={"chat_history": history("hi")}, params={"chatId": chat_id}, headers=bob),
    ]
    for answer in answers:
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "not_found"
    assert (await client.get("/api/v1/chat/history", headers=bob)).json()["chats"] == []


async def test_stream_sends_thinking_final_and_metadata_then_done(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        "/api/v1/chat/generate/stream", json={"chat_history": history("a b c")}, headers=auth()
    )
    assert response.status_code == 200
    datas = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    events = [json.loads(data) for data in datas[:-1]]
    kinds = [event["type"] for event in events]
    assert kinds[0] == "thinking_update" and kinds[-1] == "metadata" and kinds.count("metadata") == 1
    assert "".join(e["content"] for e in events if e["type"] == "final_response") == "a b c"
    meta = events[-1]["content"]
    assert meta["title"] == "a b c" and meta["model"] == "echo" and meta["usage"]["completion_tokens"] == 3
    assert isinstance(meta["timeTaken"], int)
    fetched = await client.get(f"/api/v1/chat/fetch/{meta['chatId']}", headers=auth())
    assert fetched.json()["messages"][-1]["content"] == "a b c"


async def test_history_pins_first_and_paginates(client: AsyncTestClient[Litestar]) -> None:
    ids = []
    for i in range(5):  # a millisecond apart: chats made in the same one are ranked by their ids
        ids.append((await client.post("/api/v1/chat/new", json={"title": f"c{i}"}, headers=auth())).json()["id"])
        await asyncio.sleep(0.002)
    assert (await client.put(f"/api/v1/chat/{ids[1]}/pin", headers=auth())).json()["pinned"] is True
    first = (await client.get("/api/v1/chat/history", params={"limit": 3}, headers=auth())).json()
    assert [c["id"] for c in first["chats"]] == [ids[1], ids[4], ids[3]] and first["hasMore"] is True
    rest = (await client.get("/api/v1/chat/history", params={"after": first["nextCursor"]}, headers=auth())).json()
    assert [c["id"] for c in rest["chats"]] == [ids[2], ids[0]] and rest["hasMore"] is False


async def test_fork_delete_and_patch(client: AsyncTestClient[Litestar]) -> None:
    chat_id = (await generate(client, {"chat_history": history("x y")}))["chatId"]
    await generate(client, {"chat_history": history("z")}, chatId=chat_id)
    messages = (await client.get(f"/api/v1/chat/fetch/{chat_id}", headers=auth())).json()["messages"]
    forked = await client.post(
        "/api/v1/chat/fork", json={"chatId": chat_id, "messageId": messages[1]["id"]}, headers=auth()
    )
    assert forked.status_code == 201
    assert [m["content"] for m in forked.json()["messages"]] == ["x y", "x y"]
    assert forked.json()["forkedFrom"] == {"chatId": chat_id, "messageId": messages[1]["id"]}
    patched = await client.patch(f"/api/v1/chat/{chat_id}", json={"title": "Renamed"}, headers=auth())
    assert patched.json()["title"] == "Renamed"
    assert (await client.delete(f"/api/v1/chat/{chat_id}", headers=auth())).status_code == 204
    assert (await client.get(f"/api/v1/chat/fetch/{chat_id}", headers=auth())).status_code == 404


async def test_bad_input_is_a_4xx_in_the_chat_shape(client: AsyncTestClient[Litestar]) -> None:
    cases = [
        (GENERATE, {"chat_history": []}, 400),
        (GENERATE, {"chat_history": history("hi"), "persona": "nobody"}, 400),
        (GENERATE, {"chat_history": history("hi"), "tools": {"unknown": 1}}, 400),
        (GENERATE, {"chat_history": [{"role": "robot", "content": "x"}]}, 400),
        ("/api/v1/chat/fork", {"chatId": "chat_x"}, 400),
    ]
    for path, body, status in cases:
        response = await client.post(path, json=body, headers=auth())
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert set(error) == {"status", "code", "message", "param"} and error["status"] == status
    unknown = await client.post(GENERATE, json={"chat_history": history("hi"), "persona": "nobody"}, headers=auth())
    assert "maya" in unknown.json()["error"]["message"]


async def test_free_tier_reads_but_may_not_generate(client: AsyncTestClient[Litestar]) -> None:
    free = auth("fay", "free")
    assert (await client.post(GENERATE, json={"chat_history": history("hi")}, headers=free)).status_code == 403
    assert (await client.post("/api/v1/chat/new", json={"title": "notes"}, headers=free)).status_code == 201
    assert len((await client.get("/api/v1/chat/history", headers=free)).json()["chats"]) == 1
    assert (await client.get("/api/v1/personas", headers=free)).status_code == 200


async def test_one_off_chat_is_not_saved(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post("/api/v1/chat", json={"chat_history": history("just this")}, headers=auth())
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == {"message": "just this", "persona": "maya"}
    assert set(body["metadata"]) == {"timeTaken"}
    assert (await client.get("/api/v1/chat/history", headers=auth())).json()["chats"] == []
