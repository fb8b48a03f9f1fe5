"""The chat API (/api/v1/chat/*) over real HTTP through the session stack: a real worker, Redis and the fake
providers. Each test has users of its own, so tests share the stack's Redis without seeing each other's chats.
Faults (409s, disconnects, dead replicas, Redis restarts, resume) are in test_chat_faults.py."""

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.fakes.upstream import Provider, Recorded, Reply
from tests.harness import auth, sse_frames
from tests.stack import Stack

CHAT = "/api/v1/chat"
GENERATE = f"{CHAT}/generate"
STREAM = f"{CHAT}/generate/stream"
MODELS: dict[Provider, str] = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}


def new_user() -> str:
    return f"u{uuid.uuid4().hex[:12]}"


def history(*texts: str) -> list[dict[str, str]]:
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": text} for i, text in enumerate(texts)]


def call(stack: Stack, method: str, path: str, user: str, *, tier: str = "pro", **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{stack.url}{path}", headers=auth(tier, user), timeout=30, **kwargs)


def generate(stack: Stack, user: str, body: dict[str, Any], **query: str) -> dict[str, Any]:
    response = call(stack, "POST", GENERATE, user, json=body, params=query)
    assert response.status_code == 201, response.text
    return dict(response.json())


def fetch(stack: Stack, user: str, chat_id: str, *, tier: str = "pro") -> dict[str, Any]:
    response = call(stack, "GET", f"{CHAT}/fetch/{chat_id}", user, tier=tier)
    assert response.status_code == 200, response.text
    return dict(response.json())


def contents(chat: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in chat["messages"]]


def turns(*texts: str) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in history(*texts)]


def counted(usage: dict[str, int]) -> bool:
    prompt, completion, total = usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]
    return completion > 0 and total == prompt + completion


def api_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The /api/v1 error object of ``response``, checked for its status and its four keys."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"status", "code", "message", "param"}
    assert error["status"] == status and error["message"]
    return error


def chat_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(id, event) of every frame of a chat stream before its [DONE], which must end it (once)."""
    frames = sse_frames(text)
    assert [data for _, data in frames].count("[DONE]") == 1 and frames[-1][1] == "[DONE]", frames
    return [(ident, json.loads(data)) for ident, data in frames[:-1]]


def maya_system(stack: Stack) -> str:
    """The default persona's system prompt, from GET /api/v1/personas (open to every tier)."""
    response = call(stack, "GET", "/api/v1/personas", new_user(), tier="free")
    assert response.status_code == 200, response.text
    personas = response.json()
    assert personas["default"] == "maya" and [p["name"] for p in personas["personas"] if p["default"]] == ["maya"]
    assert {"maya", "coder", "tutor"} <= {p["name"] for p in personas["personas"] if p["system"] and p["description"]}
    system: str = next(p["system"] for p in personas["personas"] if p["name"] == "maya")
    return system


def sent_to_model(request: Recorded) -> tuple[str, list[tuple[str, str]]]:
    """(system prompt, [(role, text)]) of an upstream request, whatever the provider's wire format."""
    body = request.body
    if request.provider == "openai":
        assert body["stream"] is True
        system = [m["content"] for m in body["messages"] if m["role"] == "system"]
        said = [(m["role"], m["content"]) for m in body["messages"] if m["role"] != "system"]
        return "\n\n".join(system), said
    if request.provider == "anthropic":
        return body["system"], [(m["role"], m["content"]) for m in body["messages"]]
    assert request.path.endswith(":streamGenerateContent")
    roles = {"user": "user", "model": "assistant"}
    said = [(roles[c["role"]], "".join(p["text"] for p in c["parts"])) for c in body["contents"]]
    return body["systemInstruction"]["parts"][0]["text"], said


@pytest.mark.parametrize("provider", list(MODELS))
def test_a_chat_is_created_continued_and_resent_whole_on_each_provider_without_duplicates(
    stack: Stack, provider: Provider
) -> None:
    user, model, system = new_user(), MODELS[provider], maya_system(stack)
    stack.fake.push(Reply(text="First answer."), provider=provider)
    stack.fake.push(Reply(text="Second answer."), provider=provider)
    first = generate(stack, user, {"chat_history": history("What is one?"), "model": model}, source="web")
    chat_id, result = first["chatId"], {"message": "First answer.", "persona": "maya"}
    assert first == {
        "result": result,
        "chatId": chat_id,
        "title": "What is one?",
        "researchMode": False,
        "stream": False,
    }
    resent = history("What is one?", "First answer.", "And two?")  # the whole conversation again
    second = generate(stack, user, {"chat_history": resent, "model": model}, chatId=chat_id)
    assert second["chatId"] == chat_id and second["result"]["message"] == "Second answer."
    calls = [r for r in stack.fake.requests if r.provider == provider]
    assert len(calls) == 2
    assert sent_to_model(calls[0]) == (system, [("user", "What is one?")])
    assert sent_to_model(calls[1]) == (system, turns("What is one?", "First answer.", "And two?"))
    chat = fetch(stack, user, chat_id)
    assert contents(chat) == turns("What is one?", "First answer.", "And two?", "Second answer.")
    assert chat["messageCount"] == 4 and chat["source"] == "web" and chat["persona"] == "maya"
    assert len({m["id"] for m in chat["messages"]}) == 4
    for reply in chat["messages"][1::2]:
        assert reply["status"] == "complete" and reply["persona"] == "maya" and "error" not in reply
        assert reply["model"].startswith(model)
        assert counted(reply["usage"])


def test_echo_answers_with_the_last_user_message_and_a_one_off_chat_is_not_saved(stack: Stack) -> None:
    user = new_user()
    body = {"chat_history": history("hi", "hello", "say these words"), "model": "echo"}
    saved = generate(stack, user, body, title="Echoes")
    assert saved["result"] == {"message": "say these words", "persona": "maya"} and saved["title"] == "Echoes"
    one_off = call(stack, "POST", CHAT, user, json={**body, "persona": "coder"})
    assert one_off.status_code == 200, one_off.text
    assert one_off.json()["result"] == {"message": "say these words", "persona": "coder"}
    assert set(one_off.json()["metadata"]) == {"timeTaken"} and one_off.json()["metadata"]["timeTaken"] >= 0
    listed = call(stack, "GET", f"{CHAT}/history", user).json()
    assert [c["id"] for c in listed["chats"]] == [saved["chatId"]]
    assert contents(fetch(stack, user, saved["chatId"]))[-1] == ("assistant", "say these words")
    assert not stack.fake.requests  # echo runs in the worker: no provider was called


@pytest.mark.parametrize("provider", list(MODELS))
def test_a_stream_sends_thinking_then_the_answer_then_one_metadata_and_the_reply_is_saved_before_done(
    stack: Stack, provider: Provider
) -> None:
    user, tokens = new_user(), ["Streams ", "arrive ", "in ", "pieces."]
    stack.fake.push(Reply(tokens=tokens, delay=0.01), provider=provider)
    stack.fake.push(Reply(text="Again."), provider=provider)
    body = {"chat_history": history("Tell me about streams"), "model": MODELS[provider]}
    response = call(stack, "POST", STREAM, user, json=body, params={"username": "Ana"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-conduit-job-id"]
    events = chat_events(response.text)
    assert all(ident for ident, _ in events)
    kinds = [event["type"] for _, event in events]
    assert kinds[0] == "thinking_update" and kinds.count("metadata") == 1 and kinds[-1] == "metadata"
    assert set(kinds) == {"thinking_update", "final_response", "metadata"}
    assert "".join(e["content"] for _, e in events if e["type"] == "final_response") == "".join(tokens)
    meta = events[-1][1]["content"]
    assert meta["title"] == "Tell me about streams" and meta["persona"] == "maya" and meta["finishReason"] == "stop"
    assert meta["model"].startswith(MODELS[provider]) and counted(meta["usage"])
    assert isinstance(meta["timeTaken"], int) and meta["timeTaken"] >= 0
    chat = fetch(stack, user, meta["chatId"])  # saved before the terminal event: no waiting
    assert contents(chat) == [("user", "Tell me about streams"), ("assistant", "".join(tokens))]
    assert chat["username"] == "Ana" and chat["messages"][1]["usage"] == meta["usage"]
    more = {"chat_history": history("More?"), "model": MODELS[provider], "stream": True}
    again = call(stack, "POST", GENERATE, user, json=more, params={"chatId": meta["chatId"]})
    assert again.status_code == 200 and again.headers["content-type"].startswith("text/event-stream")
    assert chat_events(again.text)[-1][1]["content"]["chatId"] == meta["chatId"]
    assert contents(fetch(stack, user, meta["chatId"]))[2:] == [("user", "More?"), ("assistant", "Again.")]


def _history_ids(stack: Stack, user: str, limit: int) -> list[str]:
    """Every chat id of ``user``, page by page; each page but the last is full and says hasMore."""
    ids: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    for _ in range(20):
        page = call(stack, "GET", f"{CHAT}/history", user, params=params).json()
        ids += [c["id"] for c in page["chats"]]
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            return ids
        assert len(page["chats"]) == limit and page["nextCursor"] == ids[-1]
        params["after"] = page["nextCursor"]
    raise AssertionError("history never ended")


def test_history_pages_pinned_chats_first_then_newest_activity_without_gaps_or_duplicates(stack: Stack) -> None:
    user, ids = new_user(), []

    def pin(chat_id: str, **body: bool) -> bool:
        time.sleep(0.002)  # a chat's rank is its last activity in whole ms: no ties
        response = call(stack, "PUT", f"{CHAT}/{chat_id}/pin", user, json=body or None)
        assert response.status_code == 200, response.text
        pinned: bool = response.json()["pinned"]
        return pinned

    for i in range(7):
        time.sleep(0.002)
        created = call(stack, "POST", f"{CHAT}/new", user, json={"title": f"chat {i}", "messages": history(f"m{i}")})
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    assert pin(ids[1], pinned=True) is True
    assert pin(ids[4]) is True  # no body: toggles on
    assert pin(ids[6]) is True
    assert pin(ids[6]) is False  # and off again
    time.sleep(0.002)
    generate(stack, user, {"chat_history": history("wake up"), "model": "echo"}, chatId=ids[0])  # newest activity
    expected = [ids[4], ids[1], ids[0], ids[6], ids[5], ids[3], ids[2]]
    for limit in (1, 3, 7, 100):
        assert _history_ids(stack, user, limit) == expected, limit
    summary = call(stack, "GET", f"{CHAT}/history", user, params={"limit": 3}).json()["chats"][2]
    assert summary["id"] == ids[0] and summary["messageCount"] == 3 and summary["preview"] == "wake up"
    assert summary["updatedAt"] >= summary["createdAt"] > 0 and summary["title"] == "chat 0"


def test_fetch_fork_patch_new_and_delete_a_chat(stack: Stack) -> None:
    user = new_user()
    made = call(stack, "POST", f"{CHAT}/new", user, json={"messages": history("Plan a trip", "Where to?")})
    assert made.status_code == 201, made.text
    chat_id = made.json()["id"]
    assert made.json()["title"] == "Plan a trip" and made.json()["persona"] == "maya"
    generate(stack, user, {"chat_history": history("To Rome"), "model": "echo"}, chatId=chat_id)
    chat = fetch(stack, user, chat_id)
    assert contents(chat) == turns("Plan a trip", "Where to?", "To Rome", "To Rome")
    middle = chat["messages"][1]
    forked = call(stack, "POST", f"{CHAT}/fork", user, json={"chatId": chat_id, "messageId": middle["id"]})
    assert forked.status_code == 201, forked.text
    fork = forked.json()
    assert fork["id"] != chat_id and fork["forkedFrom"] == {"chatId": chat_id, "messageId": middle["id"]}
    assert fork["messages"] == chat["messages"][:2] and fetch(stack, user, fork["id"])["messages"] == fork["messages"]
    generate(stack, user, {"chat_history": history("To Oslo"), "model": "echo"}, chatId=fork["id"])
    assert contents(fetch(stack, user, fork["id"]))[2:] == [("user", "To Oslo"), ("assistant", "To Oslo")]
    assert len(fetch(stack, user, chat_id)["messages"]) == 4  # the original is untouched
    patched = call(stack, "PATCH", f"{CHAT}/{chat_id}", user, json={"title": "Rome", "pinned": True})
    assert patched.status_code == 200 and (patched.json()["title"], patched.json()["pinned"]) == ("Rome", True)
    assert fetch(stack, user, chat_id)["title"] == "Rome"
    api_error(call(stack, "PATCH", f"{CHAT}/{chat_id}", user, json={}), 400)
    assert call(stack, "DELETE", f"{CHAT}/{chat_id}", user).status_code == 204
    ask = {"chat_history": history("x"), "model": "echo"}
    gone = [
        call(stack, "GET", f"{CHAT}/fetch/{chat_id}", user),
        call(stack, "POST", f"{CHAT}/fork", user, json={"chatId": chat_id, "messageId": middle["id"]}),
        call(stack, "POST", GENERATE, user, json=ask, params={"chatId": chat_id}),
        call(stack, "POST", STREAM, user, json={**ask, "chatId": chat_id}),
        call(stack, "PUT", f"{CHAT}/{chat_id}/pin", user),
        call(stack, "DELETE", f"{CHAT}/{chat_id}", user),
    ]
    for response in gone:
        assert api_error(response, 404)["code"] == "not_found"
    assert [c["id"] for c in call(stack, "GET", f"{CHAT}/history", user).json()["chats"]] == [fork["id"]]


def test_another_users_chat_is_a_404_on_every_endpoint_and_stays_unchanged(stack: Stack) -> None:
    ana, bob = new_user(), new_user()
    chat_id = generate(stack, ana, {"chat_history": history("my secret"), "model": "echo"})["chatId"]
    before = fetch(stack, ana, chat_id)
    message_id = before["messages"][0]["id"]
    ask = {"chat_history": history("give it to me"), "model": "echo"}
    attempts: dict[str, tuple[str, str, dict[str, Any]]] = {
        "fetch": ("GET", f"{CHAT}/fetch/{chat_id}", {}),
        "fork": ("POST", f"{CHAT}/fork", {"json": {"chatId": chat_id, "messageId": message_id}}),
        "pin": ("PUT", f"{CHAT}/{chat_id}/pin", {"json": {"pinned": True}}),
        "pin toggle": ("PUT", f"{CHAT}/{chat_id}/pin", {}),
        "patch": ("PATCH", f"{CHAT}/{chat_id}", {"json": {"title": "mine now"}}),
        "delete": ("DELETE", f"{CHAT}/{chat_id}", {}),
        "generate": ("POST", GENERATE, {"json": ask, "params": {"chatId": chat_id}}),
        "generate, chatId in the body": ("POST", GENERATE, {"json": {**ask, "chatId": chat_id}}),
        "generate streaming": ("POST", GENERATE, {"json": {**ask, "stream": True}, "params": {"chatId": chat_id}}),
        "stream": ("POST", STREAM, {"json": {**ask, "chatId": chat_id}}),
    }
    for name, (method, path, kwargs) in attempts.items():
        error = api_error(call(stack, method, path, bob, **kwargs), 404)
        assert error["code"] == "not_found", name
        assert "my secret" not in error["message"], name
    assert fetch(stack, ana, chat_id) == before
    assert call(stack, "GET", f"{CHAT}/history", bob).json() == {"chats": [], "hasMore": False, "nextCursor": None}


def test_the_free_tier_manages_its_chats_but_may_not_generate(stack: Stack) -> None:
    fay = new_user()
    made = call(stack, "POST", f"{CHAT}/new", fay, tier="free", json={"title": "notes", "messages": history("a")})
    assert made.status_code == 201, made.text
    chat_id, ask = made.json()["id"], {"chat_history": history("hi"), "model": "echo"}
    for path, body in ((GENERATE, ask), (STREAM, ask), (CHAT, ask), (GENERATE, {**ask, "chatId": chat_id})):
        assert api_error(call(stack, "POST", path, fay, tier="free", json=body), 403)["code"] == "permission_denied"
    assert call(stack, "PATCH", f"{CHAT}/{chat_id}", fay, tier="free", json={"pinned": True}).status_code == 200
    assert contents(fetch(stack, fay, chat_id, tier="free")) == [("user", "a")]  # nothing was added
    assert [c["id"] for c in call(stack, "GET", f"{CHAT}/history", fay, tier="free").json()["chats"]] == [chat_id]
