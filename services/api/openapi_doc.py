"""What a handler declares about itself for ``/openapi.json``: ``operation_class=documented(...)``.

Litestar builds each operation from the handler (summary, tags, path and query parameters). What it cannot
see, ``documented`` adds: the request body (generation handlers decode their bodies themselves, strictly),
every response the handler can give (status, JSON body, the ``text/event-stream`` alternative, headers,
examples), the request headers it reads, and whether it needs a token. The parts written here are plain
JSON: Litestar's serialiser drops ``None`` from dicts, and an example's ``"param": null`` must stay.

What many operations share (the errors table, the generation headers, the resume link) is in
``services.api.openapi_parts``.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

from litestar.openapi.spec import Operation

__all__ = [
    "JsonSchema",
    "JOB_ID",
    "RATE_LIMIT_HEADERS",
    "REQUEST_ID",
    "RETRY_AFTER",
    "SHARED_HEADERS",
    "DocumentedOperation",
    "EventStream",
    "Header",
    "Refinement",
    "Reply",
    "documented",
    "header_components",
    "ref",
]

JsonSchema = dict[str, Any]
#: a response body: a Struct, any of several Structs, or a plain JSON Schema
Body = type | tuple[type, ...] | JsonSchema

_JSON = "application/json"
_STRING: JsonSchema = {"type": "string"}
_DIGITS: JsonSchema = {"type": "string", "pattern": "^[0-9]+$"}


class Header(NamedTuple):
    """A request parameter a handler reads (a header, or ``where="query"``), or a response header it sends."""

    name: str
    description: str
    required: bool = False
    schema: JsonSchema = _STRING
    example: str | None = None
    where: Literal["header", "query"] = "header"


class EventStream(NamedTuple):
    """A ``text/event-stream`` answer: what its frames carry, examples of its bytes by name, and the Structs its
    ``data:`` lines hold as JSON (all but the final ``[DONE]``)."""

    description: str
    examples: Mapping[str, str]
    frames: tuple[type, ...]
    #: the frames carry ``id:`` lines and a final ``[DONE]`` (not a native upstream stream passed through)
    numbered: bool = True


class Refinement(NamedTuple):
    """What a request Struct's generated schema cannot say: a rule its handler checks in code."""

    #: the Struct's component name
    component: str
    #: property name -> the schema replacing the generated one
    properties: Mapping[str, JsonSchema] = {}
    #: keywords added to the component (``allOf`` with ``if``/``then``, say)
    extra: Mapping[str, Any] = {}

    def apply(self, components: dict[str, JsonSchema]) -> None:
        schema = components[self.component]
        for name, replacement in self.properties.items():
            if name not in schema["properties"]:
                raise KeyError(f"{self.component} has no property {name!r} to refine")
            schema["properties"][name] = replacement
        schema.update(self.extra)


class Reply(NamedTuple):
    """One documented response of an operation."""

    description: str
    body: Body | None = None
    #: example bodies by name (for a JSON body)
    examples: Mapping[str, Any] = {}
    #: the same status may answer as an SSE stream (a request with ``stream: true``)
    stream: EventStream | None = None
    headers: Sequence[Header] = ()
    #: OpenAPI links: operations the response's values feed (``RESUME``)
    links: Mapping[str, JsonSchema] = {}
    #: the body's media type, when it is not JSON (``body`` is then a plain schema, ``examples`` unused)
    media_type: str = _JSON


def ref(struct: type) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{struct.__name__}"}


REQUEST_ID = Header(
    "x-request-id",
    "The request's id: the client's own `x-request-id` if it sent a sane one (1-128 of `A-Za-z0-9._:-`), "
    "else a new one. The worker's logs and the upstream request carry it too.",
    required=True,
    example="req_6ddc6c5f2de34d89a5ce33ca7be8879c",
)
JOB_ID = Header(
    "x-conduit-job-id",
    "The job's id: resume its stream, or fetch its answer, with `GET /v1/streams/{job_id}`.",
    required=True,
    example="254f30f6bc4d4659acfe37e61f3fd3dc",
)
RETRY_AFTER = Header(
    "retry-after",
    "Seconds to wait before trying again (when one of your own limits refused the request).",
    schema=_DIGITS,
    example="12",
)
RATE_LIMIT_HEADERS: tuple[Header, ...] = tuple(
    Header(
        f"x-ratelimit-{kind}-{unit}",
        f"{what} (only where your tier or key limits {unit} per minute).",
        schema=s,
        example=e,
    )
    for unit in ("requests", "tokens")
    for kind, what, s, e in (
        ("limit", f"Your {unit} per minute", _DIGITS, "60"),
        ("remaining", f"{unit.capitalize()} left now", _DIGITS, "59"),
        ("reset", f"When the {unit} budget is whole again (`20ms`, `1s`, `6m0s`)", _STRING, "1s"),
    )
)
#: response headers many operations send, kept once under ``components/headers``
SHARED_HEADERS = (REQUEST_ID, JOB_ID, RETRY_AFTER, *RATE_LIMIT_HEADERS)


def header_components() -> dict[str, JsonSchema]:
    return {header.name: _header(header) for header in SHARED_HEADERS}


def _response_header(header: Header) -> JsonSchema:
    return {"$ref": f"#/components/headers/{header.name}"} if header in SHARED_HEADERS else _header(header)


def _schema(body: Body) -> JsonSchema:
    if isinstance(body, dict):
        return body
    if isinstance(body, tuple):
        return {"anyOf": [ref(struct) for struct in body]}
    return ref(body)


def _event_schema(stream: EventStream) -> JsonSchema:
    """One event of the stream, as OpenAPI 3.1 tools read an SSE schema (``{id, event, data}``); ``data`` is
    JSON (``contentSchema``) but for the final ``[DONE]``."""
    data = {
        "type": "string",
        "not": {"const": "[DONE]"},
        "contentMediaType": _JSON,
        "contentSchema": _schema(stream.frames),
    }
    if not stream.numbered:
        return {
            "type": "object",
            "description": stream.description,
            "required": ["data"],
            "properties": {
                "event": {"const": "message", "description": "No `event:` line is sent: every event is a `message`."},
                "data": {"type": "string", "contentMediaType": _JSON, "contentSchema": _schema(stream.frames)},
            },
        }
    return {
        "type": "object",
        "description": stream.description,
        "required": ["id", "data"],
        "properties": {
            "id": {
                "type": "string",
                "pattern": "^[0-9]{1,18}(\\.[0-9]{1,6})?$",
                "description": "The frame's id (`7`, or `7.1` for the second frame of event 7): `Last-Event-ID` "
                "for a resume.",
            },
            "event": {"const": "message", "description": "No `event:` line is sent: every event is a `message`."},
            "data": {"anyOf": [{"const": "[DONE]", "description": "The last frame."}, data]},
        },
    }


def _header(header: Header) -> JsonSchema:
    out: JsonSchema = {"description": header.description, "required": header.required, "schema": header.schema}
    if header.example is not None:
        out["example"] = header.example
    return out


def _examples(examples: Mapping[str, Any]) -> JsonSchema:
    return {name: {"summary": name, "value": value} for name, value in examples.items()}


def _reply(reply: Reply) -> JsonSchema:
    headers = {header.name: header for header in (REQUEST_ID, *reply.headers)}
    out: JsonSchema = {
        "description": reply.description,
        "headers": {name: _response_header(header) for name, header in headers.items()},
    }
    content: JsonSchema = {}
    if reply.body is not None:
        content[reply.media_type] = {"schema": _schema(reply.body)}
        if reply.examples:
            content[reply.media_type]["examples"] = _examples(reply.examples)
    if reply.stream is not None:
        content["text/event-stream"] = {
            "schema": _event_schema(reply.stream),
            "examples": _examples(reply.stream.examples),
        }
    if content:
        out["content"] = content
    if reply.links:
        out["links"] = dict(reply.links)
    return out


@dataclass
class DocumentedOperation(Operation):
    """An operation whose request body, headers, responses and security come from its handler's declaration."""

    body: ClassVar[type | None] = None
    #: a ``multipart/form-data`` body's schema, for a handler that takes a form (an upload) instead of JSON
    form: ClassVar[JsonSchema | None] = None
    body_required: ClassVar[bool] = True
    body_examples: ClassVar[Mapping[str, Any]] = {}
    replies: ClassVar[Mapping[int, Reply]] = {}
    headers: ClassVar[Sequence[Header]] = ()
    public: ClassVar[bool] = False
    refinements: ClassVar[Sequence[Refinement]] = ()

    @classmethod
    def structs(cls) -> Iterator[type]:
        """The Structs this operation refers to (for ``components/schemas``)."""
        if cls.body is not None:
            yield cls.body
        for reply in cls.replies.values():
            if isinstance(reply.body, tuple):
                yield from reply.body
            elif isinstance(reply.body, type):
                yield reply.body
            if reply.stream is not None:
                yield from reply.stream.frames

    def to_schema(self) -> dict[str, Any]:
        schema = super().to_schema()
        if self.body is not None:
            media: JsonSchema = {"schema": ref(self.body)}
            if self.body_examples:
                media["examples"] = _examples(self.body_examples)
            schema["requestBody"] = {"required": self.body_required, "content": {_JSON: media}}
        if self.form is not None:
            schema["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": self.form}}}
        if self.headers:
            schema["parameters"] = [
                *schema.get("parameters", []),
                *({"name": h.name, "in": h.where, **_header(h)} for h in self.headers),
            ]
        schema["responses"] = {str(status): _reply(reply) for status, reply in sorted(self.replies.items())}
        if self.public:
            schema["security"] = []
        return schema


def documented(
    *,
    replies: Mapping[int, Reply],
    body: type | None = None,
    form: JsonSchema | None = None,
    body_examples: Mapping[str, Any] | None = None,
    body_required: bool = True,
    headers: Sequence[Header] = (),
    public: bool = False,
    refinements: Sequence[Refinement] = (),
) -> type[Operation]:
    """An ``operation_class`` documenting a handler: every status it answers with (``replies``), its JSON
    ``body`` Struct with examples (``body_required=False``: the body may be left out) or its ``form`` (a
    ``multipart/form-data`` schema), the request ``headers``
    it reads, ``refinements`` of its body's schema; ``public``: no token needed."""
    namespace = {
        "body": body,
        "form": form,
        "body_required": body_required,
        "body_examples": dict(body_examples or {}),
        "replies": dict(replies),
        "headers": tuple(headers),
        "public": public,
        "refinements": tuple(refinements),
    }
    return dataclass(type("Documented", (DocumentedOperation,), namespace))
