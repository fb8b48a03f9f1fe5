"""The requests of the chat benchmark (``chat.py``), each with the check of its answer: a turn (the same
conversation plus one new question to the upstream directly, to Conduit's ``/v1/chat/completions`` and to its
``/api/v1/chat/generate``), and the reads of a user's chats (two history pages and one fetch)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from services.api.auth.tokens import issue_token
from tests.bench.chat_seed import Line
from tests.bench.client import Connection, Reply
from tests.bench.stack import BenchStack
from tests.bench.upstream import TOKEN

__all__ = ["PAGE", "READER", "TURN_USER", "Probe", "question", "read_probes", "turn_probes", "wire"]

#: the user whose chats get turns, and the one whose chats are read
TURN_USER, READER = "bench", "bench-reader"
PAGE = 20


@dataclass(frozen=True)
class Probe:
    """One kind of request: its row, connection, the bytes of sample ``i`` and the check of its reply."""

    name: str
    conn: Connection
    request: Callable[[int], bytes]
    check: Callable[[int, Reply], str | None]


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message


class _Completion(msgspec.Struct):
    choices: list[_Choice]


class _Result(msgspec.Struct):
    message: str


class _Generated(msgspec.Struct):
    result: _Result
    chatId: str  # noqa: N815 - the wire name


class _Summary(msgspec.Struct):
    id: str


class _Page(msgspec.Struct):
    chats: list[_Summary]
    hasMore: bool  # noqa: N815


class _Chat(msgspec.Struct):
    id: str
    messages: list[dict[str, Any]]


def _decoded(reply: Reply, status: int, kind: type[Any]) -> tuple[Any, str | None]:
    if reply.status != status:
        return None, f"HTTP {reply.status}: {reply.body[:160]!r}"
    try:
        return msgspec.json.decode(reply.body, type=kind), None
    except msgspec.ValidationError as exc:
        return None, f"bad body: {exc}"
    except msgspec.DecodeError as exc:
        return None, f"bad body: {exc}"


def _tokens(text: str | None, expected: int) -> str | None:
    found = (text or "").count(TOKEN)
    return None if found == expected else f"{found} tokens, expected {expected}"


def wire(lines: list[Line]) -> list[dict[str, str]]:
    return [{"role": role, "content": text} for role, text in lines]


def question(index: int) -> Line:
    return ("user", f"Thanks. Going back to your answer number {index}: what would you change first, and why?")


def turn_probes(stack: BenchStack, tokens: int, history: list[Line], chat_ids: list[str]) -> list[Probe]:
    direct = Connection("127.0.0.1", stack.upstream_port, {"authorization": "Bearer sk-bench"})
    gateway = {"authorization": f"Bearer {stack.token()}"}
    completions = Connection("127.0.0.1", stack.api_port, gateway)
    generate = Connection("127.0.0.1", stack.api_port, gateway)

    def messages(index: int) -> list[dict[str, str]]:
        return wire([*history, question(index)])

    def openai(conn: Connection, path: str) -> Callable[[int], bytes]:
        def request(index: int) -> bytes:
            body = {"model": "gpt-4o-mini", "messages": messages(index), "max_tokens": 256}
            return conn.encode("POST", path, msgspec.json.encode(body))

        return request

    def chat(index: int) -> bytes:
        body = msgspec.json.encode({"chat_history": messages(index)})
        return generate.encode("POST", f"/api/v1/chat/generate?chatId={chat_ids[index]}", body)

    def answered(index: int, reply: Reply) -> str | None:
        answer, error = _decoded(reply, 200, _Completion)
        return error or _tokens(answer.choices[0].message.content if answer.choices else "", tokens)

    def generated(index: int, reply: Reply) -> str | None:
        answer, error = _decoded(reply, 201, _Generated)
        if error is None and answer.chatId != chat_ids[index]:
            return f"answered for chat {answer.chatId}, not {chat_ids[index]}"
        return error or _tokens(answer.result.message, tokens)

    return [
        Probe("direct", direct, openai(direct, "/v1/chat/completions"), answered),
        Probe("completions", completions, openai(completions, "/v1/chat/completions"), answered),
        Probe("generate", generate, chat, generated),
    ]


class _Personas(msgspec.Struct):
    personas: list[dict[str, Any]]
    default: str


def _listed(index: int, reply: Reply) -> str | None:
    """``GET /api/v1/personas``: the floor of an authenticated chat API read (no chat store call)."""
    body, error = _decoded(reply, 200, _Personas)
    return error or (None if body.personas else "no personas")


def read_probes(stack: BenchStack, messages: int, order: list[str], fetched: str) -> list[Probe]:
    token = issue_token(stack.secret, READER, "pro")
    conn = Connection("127.0.0.1", stack.api_port, {"authorization": f"Bearer {token}"})
    middle = len(order) // 2

    def page(first: str) -> Callable[[int, Reply], str | None]:
        def check(index: int, reply: Reply) -> str | None:
            body, error = _decoded(reply, 200, _Page)
            if error is not None:
                return error
            got = [chat.id for chat in body.chats]
            return None if got and got[0] == first and len(got) == PAGE and body.hasMore else f"page {got[:2]}…"

        return check

    def whole(index: int, reply: Reply) -> str | None:
        body, error = _decoded(reply, 200, _Chat)
        if error is None and (body.id != fetched or len(body.messages) != messages):
            return f"chat {body.id} with {len(body.messages)} messages"
        return error

    first = conn.encode("GET", f"/api/v1/chat/history?limit={PAGE}")
    after = conn.encode("GET", f"/api/v1/chat/history?limit={PAGE}&after={order[middle]}")
    fetch = conn.encode("GET", f"/api/v1/chat/fetch/{fetched}")
    personas = conn.encode("GET", "/api/v1/personas")
    return [
        Probe("personas", conn, lambda _: personas, _listed),
        Probe("history", conn, lambda _: first, page(order[0])),
        Probe("history-after", conn, lambda _: after, page(order[middle + 1])),
        Probe("fetch", conn, lambda _: fetch, whole),
    ]
