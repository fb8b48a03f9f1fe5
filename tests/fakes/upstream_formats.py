"""Byte-exact provider wire formats for the fake upstream: request reading, bodies, SSE frames, error envelopes.

Every builder takes a `Plan` (what the fake decided to answer) and returns bytes exactly as the provider would
send them (see `/work/shared/reference/wire-formats.md` sections 1.4-1.6, 3, 4.3-4.5, 5.3-5.5). Streams come back
as `Stream(head, steps, tail)`: `steps` holds one entry per token or tool-argument fragment, so a behaviour can
stop after N steps and still produce well-formed frames.
"""

import re
from collections.abc import Callable
from typing import Any, Literal

import msgspec

Provider = Literal["openai", "anthropic", "gemini"]
ToolCall = tuple[str, dict[str, Any]]

FINGERPRINT = "fp_c0ndu1t0fake"
_encode = msgspec.json.encode
_TOKEN_RE = re.compile(r"\s*[\w']+|\s*[^\w\s]+|\s+")
_SENTINEL = "\ue000token\ue000"
_PROMPT_DETAILS = {"cached_tokens": 0, "audio_tokens": 0}
_COMPLETION_DETAILS = {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0}
_COMPLETION_DETAILS["rejected_prediction_tokens"] = 0
_FRAGMENT = 8  # characters of tool-call arguments per streamed fragment

_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_GEMINI_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
_REGION = "unsupported_country_region_territory"
# status: (OpenAI error.type, OpenAI error.code, Anthropic error.type, Gemini error.status, default message)
_ERRORS: dict[int, tuple[str, str | None, str, str, str]] = {
    400: ("invalid_request_error", None, "invalid_request_error", "INVALID_ARGUMENT", "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "authentication_error", "UNAUTHENTICATED", "Invalid API key."),
    402: ("insufficient_quota", "insufficient_quota", "billing_error", "RESOURCE_EXHAUSTED", "Billing error."),
    403: ("request_forbidden", _REGION, "permission_error", "PERMISSION_DENIED", "Permission denied."),
    404: ("invalid_request_error", "model_not_found", "not_found_error", "NOT_FOUND", "The model does not exist."),
    409: ("invalid_request_error", None, "invalid_request_error", "ABORTED", "Conflict."),
    413: ("invalid_request_error", None, "request_too_large", "INVALID_ARGUMENT", "Request too large."),
    429: ("requests", "rate_limit_exceeded", "rate_limit_error", "RESOURCE_EXHAUSTED", "Rate limit reached."),
    499: ("invalid_request_error", None, "invalid_request_error", "CANCELLED", "The operation was cancelled."),
    500: ("server_error", None, "api_error", "INTERNAL", "The server had an error while processing your request."),
    503: ("server_error", None, "api_error", "UNAVAILABLE", "The engine is currently overloaded."),
    504: ("server_error", None, "timeout_error", "DEADLINE_EXCEEDED", "The request timed out."),
    529: ("server_error", None, "overloaded_error", "UNAVAILABLE", "Overloaded"),
}
_NO_OPENAI_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth "
    "(i.e. Authorization: Bearer YOUR_KEY)."
)
_BAD_OPENAI_KEY = (
    "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys."
)
_BAD_KEY = "API_KEY_INVALID"
_RPC = "type.googleapis.com/google.rpc"
_Denial = tuple[int, str, str | None]
_NO_GEMINI_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)


class Plan(msgspec.Struct, kw_only=True):
    """The answer the fake decided to give, in provider-neutral terms (OpenAI finish vocabulary)."""

    model: str
    ident: str
    created: int
    tokens: list[str]
    tool_calls: list[ToolCall]
    finish: str
    stop_sequence: str | None
    prompt_tokens: int
    include_usage: bool = False
    #: OpenAI chat: `top_logprobs` alternatives per token when `logprobs: true` (None: not asked); legacy
    #: completions: the `logprobs` integer
    logprobs: int | None = None
    echo_offset: int = 0  # legacy completions: where the completion starts in `text_offset` (the prompt's length)
    echo: str = ""  # legacy completions with `echo: true`: the prompt, sent before the completion (no logprobs)
    #: how many answers (OpenAI chat `n`, Gemini `candidateCount`): each the same tokens, after a `[k] ` for k > 0
    choices: int = 1
    #: the request asked for the provider's web search: the answer cites `SOURCES` (OpenAI annotations, Gemini
    #: grounding metadata), the first for the first token, the second for the rest
    search: bool = False
    #: the model thought first (OpenAI ``reasoning_effort``, Anthropic ``thinking``, Gemini ``thinkingBudget``):
    #: these reasoning tokens, counted in the usage; their text is sent as an Anthropic thinking block (with its
    #: signature) and as Gemini thought parts when ``show_thinking`` (``includeThoughts``), never by OpenAI
    thinking: list[str] = []
    show_thinking: bool = False

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def fragments(self) -> list[list[str]]:
        """Each tool call's JSON arguments split into streamed fragments."""
        raws = [_encode(args).decode() for _, args in self.tool_calls]
        return [[raw[i : i + _FRAGMENT] for i in range(0, len(raw), _FRAGMENT)] for raw in raws]

    @property
    def completion_tokens(self) -> int:
        return (len(self.tokens) + sum(len(f) for f in self.fragments)) * self.choices

    def answer(self, choice: int) -> list[str]:
        """The tokens of answer ``choice`` (``n > 1``): the first one's, marked ``[k] `` for the others."""
        if not choice or not self.tokens:
            return self.tokens
        return [f"[{choice}] {self.tokens[0]}", *self.tokens[1:]]


#: what the fake thinks, when asked to (``Plan.thinking``), and the signature of its Anthropic thinking block
THOUGHT = "Orléans is on the Loire; the forecast there says sun."
SIGNATURE = "EqQBCkgIARABGAIiQHc0bmR1aXRGYWtlU2lnbmF0dXJlT2ZUaGlua2luZw=="

#: what the fake's web search finds: (url, title)
SOURCES = [("https://weather.example.org/orleans", "Orléans weather"), ("https://news.example.com/loire", "Loire news")]


def _spans(p: Plan) -> list[tuple[int, int, int]]:
    """(start, end, source index) of the cited spans, in characters: the first token, then the rest."""
    first = len(p.tokens[0]) if p.tokens else 0
    return [(0, first, 0), (first, len(p.text), 1)] if p.tokens else []


def openai_annotations(p: Plan) -> list[dict[str, Any]]:
    return [
        {
            "type": "url_citation",
            "url_citation": {"end_index": end, "start_index": start, "title": SOURCES[i][1], "url": SOURCES[i][0]},
        }
        for start, end, i in _spans(p)
    ]


def gemini_grounding(p: Plan) -> dict[str, Any]:
    """Gemini's groundingMetadata: its segments' offsets are bytes of the UTF-8 text."""
    text = p.text
    return {
        "webSearchQueries": ["weather Orléans"],
        "groundingChunks": [{"web": {"uri": url, "title": title}} for url, title in SOURCES],
        "groundingSupports": [
            {
                "segment": {
                    "startIndex": len(text[:start].encode()),
                    "endIndex": len(text[:end].encode()),
                    "text": text[start:end],
                },
                "groundingChunkIndices": [i],
            }
            for start, end, i in _spans(p)
        ],
    }


class Stream(msgspec.Struct):
    head: bytes
    steps: list[bytes]
    tail: bytes


# -- reading requests -------------------------------------------------------------------------------------------


def split_tokens(text: str) -> list[str]:
    """'Hello from the fake openai!' -> ['Hello', ' from', ' the', ' fake', ' openai', '!']."""
    return _TOKEN_RE.findall(text)


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    if isinstance(value, dict):
        return sum(_words(v) for k, v in value.items() if k in {"content", "text", "parts"})
    return 0


def prompt_words(provider: Provider, body: dict[str, Any], legacy: bool) -> int:
    if provider == "openai":
        return _words(body.get("prompt") if legacy else body.get("messages"))
    if provider == "anthropic":
        return _words(body.get("system")) + _words(body.get("messages"))
    return _words(body.get("systemInstruction")) + _words(body.get("contents"))


def max_tokens(provider: Provider, body: dict[str, Any], legacy: bool) -> int | None:
    if provider == "openai":
        value = body.get("max_completion_tokens") or body.get("max_tokens")
        return 16 if legacy and value is None else value
    if provider == "anthropic":
        return body.get("max_tokens")
    return (body.get("generationConfig") or {}).get("maxOutputTokens")


def stop_sequences(provider: Provider, body: dict[str, Any]) -> list[str]:
    config = body.get("generationConfig") or {}
    stop = {"openai": body.get("stop"), "anthropic": body.get("stop_sequences"), "gemini": config.get("stopSequences")}
    found = stop[provider]
    return [found] if isinstance(found, str) else [s for s in found or [] if isinstance(s, str) and s]


def include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def missing_field(provider: Provider, body: dict[str, Any], legacy: bool) -> str | None:
    """The first required field the request lacks (the real APIs answer 400), or None."""
    required = {
        "openai": ("model", "prompt" if legacy else "messages"),
        "anthropic": ("model", "messages", "max_tokens"),
        "gemini": ("contents",),
    }[provider]
    return next((name for name in required if body.get(name) is None), None)


def cut_at_stop(tokens: list[str], stops: list[str]) -> tuple[list[str], str | None]:
    """Tokens up to (not including) the earliest stop sequence, and the sequence that matched."""
    text = "".join(tokens)
    hits = [(text.find(s), s) for s in stops if s in text]
    if not hits:
        return tokens, None
    at, stop = min(hits, key=lambda hit: hit[0])
    out, pos = [], 0
    for token in tokens:
        if pos + len(token) > at:
            if at > pos:
                out.append(token[: at - pos])
            break
        out.append(token)
        pos += len(token)
    return out, stop


def _template(build: Callable[[str], bytes]) -> Callable[[str], bytes]:
    """Build a frame once around a sentinel; per-token frames are then two concatenations."""
    prefix, suffix = build(_SENTINEL).split(_encode(_SENTINEL))
    return lambda token: prefix + _encode(token) + suffix


# -- OpenAI -----------------------------------------------------------------------------------------------------

#: what OpenAI answers in `model` for an alias: the dated snapshot that served it
SNAPSHOTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06"}


def _logprob(i: int) -> float:
    return -round(0.0125 * (i % 7 + 1) ** 2, 6)


def _chat_logprob(p: Plan, i: int, token: str) -> dict[str, Any]:
    """One entry of a chat choice's `logprobs.content`, with `p.logprobs` alternatives (the token first)."""
    alternatives = [(token, _logprob(i))] + [(f"{token.strip() or '_'}#{k}", _logprob(i) - k) for k in range(1, 21)]
    top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alternatives[: p.logprobs or 0]]
    return {"token": token, "logprob": _logprob(i), "bytes": list(token.encode()), "top_logprobs": top}


def _chat_logprobs(p: Plan, tokens: list[tuple[int, str]]) -> dict[str, Any] | None:
    if p.logprobs is None:
        return None
    return {"content": [_chat_logprob(p, i, t) for i, t in tokens], "refusal": None}


def _text_logprobs(p: Plan, tokens: list[tuple[int, str]]) -> dict[str, Any] | None:
    """A legacy completion choice's `logprobs` (tokens, token_logprobs, top_logprobs, text_offset)."""
    if p.logprobs is None:
        return None
    offsets = [p.echo_offset + sum(len(t) for t in p.tokens[:i]) for i, _ in tokens]
    top = [
        {t: _logprob(i)} | {f"{t.strip() or '_'}#{k}": _logprob(i) - k for k in range(1, p.logprobs)} for i, t in tokens
    ]
    return {
        "tokens": [t for _, t in tokens],
        "token_logprobs": [_logprob(i) for i, _ in tokens],
        "top_logprobs": top if p.logprobs else None,
        "text_offset": offsets,
    }


def _openai_base(p: Plan, kind: str) -> dict[str, Any]:
    prefix = "cmpl" if kind == "text_completion" else "chatcmpl"
    return {"id": f"{prefix}-{p.ident}", "object": kind, "created": p.created, "model": p.model}


def _openai_usage(p: Plan, details: bool = True) -> dict[str, Any]:
    """Reasoning tokens count as completion tokens, and are told apart in ``completion_tokens_details``."""
    completion = p.completion_tokens + len(p.thinking)
    total = p.prompt_tokens + completion
    usage = {"prompt_tokens": p.prompt_tokens, "completion_tokens": completion, "total_tokens": total}
    if not details:
        return usage
    completion_details = _COMPLETION_DETAILS | {"reasoning_tokens": len(p.thinking)}
    return usage | {"prompt_tokens_details": _PROMPT_DETAILS, "completion_tokens_details": completion_details}


def _openai_calls(p: Plan) -> list[dict[str, Any]]:
    functions = [{"name": name, "arguments": _encode(args).decode()} for name, args in p.tool_calls]
    return [{"id": f"call_{p.ident}_{i}", "type": "function", "function": f} for i, f in enumerate(functions)]


def openai_chat_body(p: Plan) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": p.text if p.tokens or not p.tool_calls else None}
    if p.tool_calls:
        message["tool_calls"] = _openai_calls(p)
    message |= {"refusal": None, "annotations": openai_annotations(p) if p.search else []}
    logprobs = _chat_logprobs(p, list(enumerate(p.tokens)))
    choices = [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": p.finish}]
    for k in range(1, p.choices):
        other = message | {"content": "".join(p.answer(k))}
        choices.append({"index": k, "message": other, "logprobs": logprobs, "finish_reason": p.finish})
    body = {
        "choices": choices,
        "usage": _openai_usage(p),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    return _encode(_openai_base(p, "chat.completion") | body)


def openai_chat_stream(p: Plan) -> Stream:
    base = _openai_base(p, "chat.completion.chunk") | {"service_tier": "default", "system_fingerprint": FINGERPRINT}

    def chunk(
        delta: dict[str, Any], finish: str | None = None, logprobs: dict[str, Any] | None = None, index: int = 0
    ) -> bytes:
        data = base | {"choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}
        if p.include_usage:
            data["usage"] = None
        return b"data: " + _encode(data) + b"\n\n"

    if p.choices > 1:  # n answers, their chunks interleaved as OpenAI sends them
        answers = [p.answer(k) for k in range(p.choices)]
        head = b"".join(chunk({"role": "assistant", "content": "", "refusal": None}, index=k) for k in range(p.choices))
        steps = [
            b"".join(chunk({"content": answer[i]}, index=k) for k, answer in enumerate(answers))
            for i in range(len(p.tokens))
        ]
        tail = b"".join(chunk({}, p.finish, index=k) for k in range(p.choices))
        if p.include_usage:
            tail += b"data: " + _encode(base | {"choices": [], "usage": _openai_usage(p)}) + b"\n\n"
        return Stream(head, steps, tail + b"data: [DONE]\n\n")

    if p.logprobs is None:
        content = _template(lambda t: chunk({"content": t}))
        steps = [content(t) for t in p.tokens]
    else:
        steps = [chunk({"content": t}, logprobs=_chat_logprobs(p, [(i, t)])) for i, t in enumerate(p.tokens)]
    intros = [{"index": i, **c, "function": c["function"] | {"arguments": ""}} for i, c in enumerate(_openai_calls(p))]
    if p.tokens or not p.tool_calls:
        head = chunk({"role": "assistant", "content": "", "refusal": None})
    else:
        head = chunk({"role": "assistant", "content": None, "tool_calls": intros[:1], "refusal": None})
    if p.search:
        steps.append(chunk({"annotations": openai_annotations(p)}))
    for i, fragments in enumerate(p.fragments):
        if i or p.tokens:
            steps.append(chunk({"tool_calls": [intros[i]]}))
        steps += [chunk({"tool_calls": [{"index": i, "function": {"arguments": f}}]}) for f in fragments]
    tail = chunk({}, p.finish)
    if p.include_usage:
        tail += b"data: " + _encode(base | {"choices": [], "usage": _openai_usage(p)}) + b"\n\n"
    return Stream(head, steps, tail + b"data: [DONE]\n\n")


def openai_text_body(p: Plan) -> bytes:
    logprobs = _text_logprobs(p, list(enumerate(p.tokens)))
    choice = {"text": p.echo + p.text, "index": 0, "logprobs": logprobs, "finish_reason": p.finish}
    return _encode(_openai_base(p, "text_completion") | {"choices": [choice], "usage": _openai_usage(p, False)})


def openai_text_stream(p: Plan) -> Stream:
    base = _openai_base(p, "text_completion")

    def chunk(text: str, finish: str | None = None, logprobs: dict[str, Any] | None = None) -> bytes:
        choice = {"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish}
        return b"data: " + _encode(base | {"choices": [choice]}) + b"\n\n"

    if p.logprobs is None:
        text = _template(chunk)
        steps = [text(t) for t in p.tokens]
    else:
        steps = [chunk(t, logprobs=_text_logprobs(p, [(i, t)])) for i, t in enumerate(p.tokens)]
    if p.echo:
        steps.insert(0, chunk(p.echo))
    tail = chunk("", p.finish)
    if p.include_usage:
        tail += b"data: " + _encode(base | {"choices": [], "usage": _openai_usage(p, details=False)}) + b"\n\n"
    return Stream(b"", steps, tail + b"data: [DONE]\n\n")


# -- Anthropic --------------------------------------------------------------------------------------------------


def _anthropic_usage(p: Plan, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": p.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _anthropic_stop(p: Plan) -> str:
    return "stop_sequence" if p.stop_sequence is not None else _ANTHROPIC_STOP.get(p.finish, p.finish)


def _anthropic_tools(p: Plan) -> list[dict[str, Any]]:
    return [
        {"type": "tool_use", "id": f"toolu_{p.ident}_{i}", "name": name, "input": args}
        for i, (name, args) in enumerate(p.tool_calls)
    ]


def _message(p: Plan, content: list[dict[str, Any]], stop: str | None, output_tokens: int) -> dict[str, Any]:
    return {
        "id": f"msg_{p.ident}",
        "type": "message",
        "role": "assistant",
        "model": p.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": p.stop_sequence if stop else None,
        "usage": _anthropic_usage(p, output_tokens),
    }


def _anthropic_thinking(p: Plan) -> list[dict[str, Any]]:
    return [{"type": "thinking", "thinking": "".join(p.thinking), "signature": SIGNATURE}] if p.thinking else []


def anthropic_body(p: Plan) -> bytes:
    """Thinking tokens count in ``output_tokens`` (Anthropic reports no separate figure)."""
    text = [{"type": "text", "text": p.text}] if p.tokens or not p.tool_calls else []
    content = _anthropic_thinking(p) + text + _anthropic_tools(p)
    return _encode(_message(p, content, _anthropic_stop(p), p.completion_tokens + len(p.thinking)))


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def _anthropic_search_stream(p: Plan) -> Stream:
    """A web search as Anthropic streams one: the server tool's call, its results, then text blocks each citing a
    result (``citations_delta`` ahead of its text), the first token citing the first source, the rest the second."""

    def event(name: str, index: int, **fields: Any) -> bytes:
        return _event(name, {"type": name, "index": index, **fields})

    query = {"type": "input_json_delta", "partial_json": _encode({"query": "weather Orléans"}).decode()}
    results = [
        {
            "type": "web_search_result",
            "url": url,
            "title": title,
            "encrypted_content": "EqgfCioIARgBIiQ3",
            "page_age": None,
        }
        for url, title in SOURCES
    ]
    head = _event("message_start", {"type": "message_start", "message": _message(p, [], None, 1)})
    head += event(
        "content_block_start",
        0,
        content_block={"type": "server_tool_use", "id": f"srvtoolu_{p.ident}", "name": "web_search", "input": {}},
    )
    head += event("content_block_delta", 0, delta=query) + event("content_block_stop", 0)
    result = {"type": "web_search_tool_result", "tool_use_id": f"srvtoolu_{p.ident}", "content": results}
    head += event("content_block_start", 1, content_block=result) + event("content_block_stop", 1)
    steps = []
    for block, (start, end, source) in enumerate(_spans(p), start=2):
        url, title = SOURCES[source]
        cited = {
            "type": "web_search_result_location",
            "cited_text": "…",
            "url": url,
            "title": title,
            "encrypted_index": "Eo8BCioIAhgB",
        }
        opening = event("content_block_start", block, content_block={"type": "text", "text": "", "citations": []})
        opening += event("content_block_delta", block, delta={"type": "citations_delta", "citation": cited})
        texts = [
            event("content_block_delta", block, delta={"type": "text_delta", "text": t})
            for t in split_tokens(p.text[start:end])
        ]
        steps += (
            [opening + texts[0], *texts[1:-1], texts[-1] + event("content_block_stop", block)]
            if len(texts) > 1
            else [opening + texts[0] + event("content_block_stop", block)]
        )
    usage = {"output_tokens": p.completion_tokens, "server_tool_use": {"web_search_requests": 1}}
    message_delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": usage,
    }
    return Stream(
        head, steps, _event("message_delta", message_delta) + _event("message_stop", {"type": "message_stop"})
    )


def anthropic_stream(p: Plan) -> Stream:
    """Content blocks in order: thinking (its deltas, then its signature), text, each tool call's input."""
    if p.search and p.tokens and not p.tool_calls:
        return _anthropic_search_stream(p)

    def start(index: int, block: dict[str, Any]) -> bytes:
        return _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})

    def stop(index: int) -> bytes:
        return _event("content_block_stop", {"type": "content_block_stop", "index": index})

    def delta(index: int, body: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": body})

    blocks: list[tuple[dict[str, Any], list[bytes]]] = []  # each block and its deltas
    if p.thinking:
        deltas = [delta(0, {"type": "thinking_delta", "thinking": t}) for t in p.thinking]
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
        blocks[0][1].append(delta(0, {"type": "signature_delta", "signature": SIGNATURE}))
    if p.tokens or not p.tool_calls:
        text_at = len(blocks)
        text = _template(lambda t: delta(text_at, {"type": "text_delta", "text": t}))
        blocks.append(({"type": "text", "text": ""}, [text(t) for t in p.tokens]))
    for tool, fragments in zip(_anthropic_tools(p), p.fragments, strict=True):
        at = len(blocks)
        blocks.append(
            (tool | {"input": {}}, [delta(at, {"type": "input_json_delta", "partial_json": f}) for f in fragments])
        )
    head = _event("message_start", {"type": "message_start", "message": _message(p, [], None, 1)})
    head += start(0, blocks[0][0]) + b'event: ping\ndata: {"type": "ping"}\n\n'
    steps, opening = [], b""
    for index, (block, deltas) in enumerate(blocks):
        if index:
            opening += stop(index - 1) + start(index, block)
        for step in deltas:
            steps.append(opening + step)
            opening = b""
    message_delta = {
        "type": "message_delta",
        "delta": {"stop_reason": _anthropic_stop(p), "stop_sequence": p.stop_sequence},
        "usage": {"output_tokens": p.completion_tokens + len(p.thinking)},
    }
    tail = opening + stop(len(blocks) - 1) + _event("message_delta", message_delta)
    return Stream(head, steps, tail + _event("message_stop", {"type": "message_stop"}))


# -- Gemini -----------------------------------------------------------------------------------------------------


def _gemini_usage(p: Plan, final: bool) -> dict[str, Any]:
    """Thoughts are counted apart from the candidates' tokens (``thoughtsTokenCount``), and in the total."""
    prompt, output, thoughts = p.prompt_tokens, p.completion_tokens, len(p.thinking)
    usage: dict[str, Any] = {"promptTokenCount": prompt, "totalTokenCount": prompt}
    if final:
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output}
        if thoughts:
            usage |= {"totalTokenCount": prompt + output + thoughts, "thoughtsTokenCount": thoughts}
    return usage | {"promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}


def _gemini_logprobs(p: Plan, tokens: list[tuple[int, str]]) -> dict[str, Any] | None:
    """``logprobsResult`` of ``tokens`` (``responseLogprobs``): each chosen token, and with ``logprobs: k`` the k
    most likely at each step (the chosen one first)."""
    if p.logprobs is None:
        return None

    def entry(i: int, token: str, k: int = 0) -> dict[str, Any]:
        name = f"{token.strip() or '_'}#{k}" if k else token
        return {"token": name, "tokenId": 1000 + 32 * i + k, "logProbability": _logprob(i) - k}

    result: dict[str, Any] = {}
    if p.logprobs:
        result["topCandidates"] = [{"candidates": [entry(i, t, k) for k in range(p.logprobs)]} for i, t in tokens]
    return result | {"chosenCandidates": [entry(i, t) for i, t in tokens]}


def _gemini_response(
    p: Plan,
    parts: list[dict[str, Any]],
    final: bool,
    more: list[list[dict[str, Any]]] | None = None,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``more``: the other candidates' parts (``candidateCount``); ``logprobs``: the first one's."""
    candidates = []
    for index, given in enumerate([parts, *(more or [])]):
        candidate: dict[str, Any] = {"content": {"parts": given, "role": "model"}}
        if final:
            candidate["finishReason"] = _GEMINI_FINISH.get(p.finish, p.finish.upper())
        candidate["index"] = index
        if final and p.search:
            candidate["groundingMetadata"] = gemini_grounding(p)
        if logprobs is not None and not index:
            candidate["logprobsResult"] = logprobs
        candidates.append(candidate)
    return {
        "candidates": candidates,
        "usageMetadata": _gemini_usage(p, final),
        "modelVersion": p.model,
        "responseId": p.ident,
    }


def _gemini_calls(p: Plan) -> list[dict[str, Any]]:
    return [{"functionCall": {"name": name, "args": args}} for name, args in p.tool_calls]


def _gemini_thoughts(p: Plan) -> list[dict[str, Any]]:
    return [{"text": "".join(p.thinking), "thought": True}] if p.thinking and p.show_thinking else []


def gemini_body(p: Plan) -> bytes:
    text = [{"text": p.text}] if p.tokens or not p.tool_calls else []
    more = [[{"text": "".join(p.answer(k))}] for k in range(1, p.choices)]
    logprobs = _gemini_logprobs(p, list(enumerate(p.tokens)))
    body = _gemini_response(p, _gemini_thoughts(p) + text + _gemini_calls(p), final=True, more=more, logprobs=logprobs)
    if logprobs is not None and p.tokens:
        body["candidates"][0]["avgLogprobs"] = sum(_logprob(i) for i in range(len(p.tokens))) / len(p.tokens)
    return _encode(body)


def _gemini_frame(data: dict[str, Any]) -> bytes:
    return b"data: " + _encode(data) + b"\r\n\r\n"


def gemini_stream(p: Plan) -> Stream:
    """One chunk per token, thoughts first (``includeThoughts``); the last chunk (last token, or the whole function
    calls) carries finishReason."""
    if p.choices > 1:  # candidateCount: every chunk holds each candidate's next token
        answers = [p.answer(k) for k in range(p.choices)]
        frames = [
            _gemini_frame(
                _gemini_response(
                    p, [{"text": answers[0][i]}], i == len(p.tokens) - 1, [[{"text": a[i]}] for a in answers[1:]]
                )
            )
            for i in range(len(p.tokens))
        ]
        return Stream(b"", frames[:-1], frames[-1])
    thoughts = [_gemini_frame(_gemini_response(p, [{"text": t, "thought": True}], False)) for t in p.thinking]
    steps = thoughts if p.show_thinking else []

    def frame(i: int, token: str) -> bytes:
        return _gemini_frame(_gemini_response(p, [{"text": token}], False, logprobs=_gemini_logprobs(p, [(i, token)])))

    if p.logprobs is None:
        text = _template(lambda t: _gemini_frame(_gemini_response(p, [{"text": t}], final=False)))
        steps += [text(t) for t in (p.tokens if p.tool_calls else p.tokens[:-1])]
    else:
        steps += [frame(i, t) for i, t in enumerate(p.tokens if p.tool_calls else p.tokens[:-1])]
    if p.tool_calls:
        return Stream(b"", steps, _gemini_frame(_gemini_response(p, _gemini_calls(p), True)))
    last = p.tokens[-1] if p.tokens else ""
    logprobs = _gemini_logprobs(p, [(len(p.tokens) - 1, last)]) if p.tokens else None
    return Stream(b"", steps, _gemini_frame(_gemini_response(p, [{"text": last}], final=True, logprobs=logprobs)))


# -- errors and headers -----------------------------------------------------------------------------------------


def _row(status: int) -> tuple[str, str | None, str, str, str]:
    return _ERRORS.get(status, _ERRORS[500 if status >= 500 else 400])


def default_message(status: int) -> str:
    return _row(status)[4]


def error_body(provider: Provider, status: int, message: str, code: str | None = None, **extra: Any) -> bytes:
    """The provider's error envelope; `code` overrides OpenAI's `code` ("" for null), Anthropic's `error.type`, or
    adds a Gemini ErrorInfo `reason`. `extra`: `param` (OpenAI), `request_id` (Anthropic), `retry_after` (Gemini)."""
    openai_type, openai_code, anthropic_type, gemini_status, _ = _row(status)
    if provider == "openai":
        kind = code if code == "insufficient_quota" else openai_type
        code = openai_code if code is None else code or None
        return _encode({"error": {"message": message, "type": kind, "param": extra.get("param"), "code": code}})
    if provider == "anthropic":
        error = {"type": code or anthropic_type, "message": message}
        return _encode({"type": "error", "error": error, "request_id": extra.get("request_id", "")})
    details: list[dict[str, Any]] = []
    if code:
        service = {"service": "generativelanguage.googleapis.com"}
        details.append({"@type": f"{_RPC}.ErrorInfo", "reason": code, "domain": "googleapis.com", "metadata": service})
    if extra.get("retry_after") is not None:
        details.append({"@type": f"{_RPC}.RetryInfo", "retryDelay": f"{extra['retry_after']:g}s"})
    body: dict[str, Any] = {"code": status, "message": message, "status": gemini_status}
    return _encode({"error": body | {"details": details} if details else body})


def auth_error(provider: Provider, key: str, headers: dict[str, str], query: dict[str, str]) -> _Denial | None:
    """(status, message, code) of the provider's real answer to a missing or wrong key, or None when it is right."""
    missing: _Denial
    wrong: _Denial
    if provider == "openai":
        auth = headers.get("authorization", "")
        given = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        shown = _BAD_OPENAI_KEY.format(f"{given[:3]}********{given[-4:]}")
        missing, wrong = (401, _NO_OPENAI_KEY, ""), (401, shown, "invalid_api_key")  # "": code null
    elif provider == "anthropic":
        # x-api-key, or the key as a bearer token (what Anthropic's SDKs since 2.x send)
        bearer = headers.get("authorization", "")
        given = headers.get("x-api-key") or (
            bearer.removeprefix("Bearer ").strip() if bearer.startswith("Bearer ") else ""
        )
        missing, wrong = (401, "x-api-key header is required", None), (401, "invalid x-api-key", None)
        if given == key and "anthropic-version" not in headers:
            return 400, "anthropic-version: header is required", None
    else:
        given = headers.get("x-goog-api-key") or query.get("key", "")
        missing, wrong = (403, _NO_GEMINI_KEY, None), (400, "API key not valid. Please pass a valid API key.", _BAD_KEY)
    return None if given == key else wrong if given else missing


def response_headers(provider: Provider, request_id: str, sse: bool) -> list[tuple[bytes, bytes]]:
    json_type = b"application/json; charset=UTF-8" if provider == "gemini" else b"application/json"
    sse_type = b"text/event-stream" if provider == "gemini" else b"text/event-stream; charset=utf-8"
    headers = [(b"content-type", sse_type), (b"cache-control", b"no-cache")] if sse else [(b"content-type", json_type)]
    if provider == "openai":
        headers += [(b"x-request-id", request_id.encode()), (b"openai-version", b"2020-10-01")]
    elif provider == "anthropic":
        headers.append((b"request-id", request_id.encode()))
    return headers


def stream_error_frame(provider: Provider, message: str) -> bytes:
    """The in-band error a provider sends after a 200 (OpenAI data error, Anthropic `event: error`, Gemini 503)."""
    if provider == "openai":
        error = {"message": message, "type": "server_error", "param": None, "code": None}
        return b"data: " + _encode({"error": error}) + b"\n\n"
    if provider == "anthropic":
        return _event("error", {"type": "error", "error": {"type": "overloaded_error", "message": message}})
    return _gemini_frame({"error": {"code": 503, "message": message, "status": "UNAVAILABLE"}})


def garbage_frame(provider: Provider) -> bytes:
    if provider == "anthropic":
        return b"event: content_block_delta\ndata: {not json\n\n"
    return b"data: {not json" + (b"\r\n\r\n" if provider == "gemini" else b"\n\n")
