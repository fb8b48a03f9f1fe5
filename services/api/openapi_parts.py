"""What many operations share in ``/openapi.json``: the errors table (what each status means, with an example
drawn by the dialect's own renderer, so it is the bytes the gateway sends), the request headers of the
generation endpoints, and the link from a generation to its resume."""

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import msgspec

from services.api.caller import NAME_HEADER, POLICY_HEADER
from services.api.errors import STATUS, ErrorRenderer, GatewayProblem
from services.api.openapi_doc import RATE_LIMIT_HEADERS, RETRY_AFTER, Header, JsonSchema, Reply
from shared.errors import ErrorCode

__all__ = [
    "ERRORS",
    "GENERATION_ERRORS",
    "GENERATION_HEADERS",
    "REDIS_DOWN",
    "RESUME",
    "RESUME_OPERATION",
    "ErrorCase",
    "error_replies",
]

GENERATION_HEADERS = (
    Header(
        NAME_HEADER,
        "Your own name for the job, to fetch or resume it with `GET /v1/streams/{name}` even if the connection "
        "broke before the response named the job (409 while a job of yours holds the name).",
        schema={"type": "string", "pattern": "^[A-Za-z0-9._:\\-]{1,128}$"},
        example="report-42",
    ),
    Header(
        POLICY_HEADER,
        "What happens to the job when the client disconnects: `cancel` (the default) stops it, `detach` lets it "
        "finish so its answer can be fetched with `GET /v1/streams/{job_id}`. Case-insensitive; empty means "
        "`cancel`.",
        schema={"type": "string", "pattern": "^\\s*([Cc][Aa][Nn][Cc][Ee][Ll]|[Dd][Ee][Tt][Aa][Cc][Hh])?\\s*$"},
        example="detach",
    ),
)


#: the operation id of ``GET /v1/streams/{job_id}``
RESUME_OPERATION = "resume_stream"
#: the link from a generation's answer to its resume
RESUME: dict[str, JsonSchema] = {
    "resume": {
        "operationId": RESUME_OPERATION,
        "parameters": {"job_id": "$response.header.x-conduit-job-id"},
        "description": "Resume the job's stream after `Last-Event-ID`, or fetch its answer again.",
    }
}


class ErrorCase(NamedTuple):
    """What a status means, and an example of it (drawn by the dialect's renderer)."""

    description: str
    code: ErrorCode
    message: str
    param: str | None = None


ERRORS: dict[int, ErrorCase] = {
    400: ErrorCase(
        "The request is invalid: a body that is not JSON or does not match the schema (`param` names the field), a "
        "value out of range or over your tier's cap, a provider that is not configured, a field the chosen provider "
        "cannot take, or the provider refused the request.",
        ErrorCode.INVALID_REQUEST,
        "Invalid 'messages': Expected `array` of length >= 1",
        "messages",
    ),
    401: ErrorCase(
        "The token is missing, malformed, unknown, expired or revoked.",
        ErrorCode.AUTHENTICATION,
        "missing bearer token: send `Authorization: Bearer <token>`",
    ),
    403: ErrorCase(
        "Your tier may not use the generation endpoints.",
        ErrorCode.PERMISSION_DENIED,
        "This endpoint requires a Pro or Enterprise tier; your tier is free.",
    ),
    404: ErrorCase(
        "No such model, or the provider does not know it.",
        ErrorCode.MODEL_NOT_FOUND,
        "The model `gpt-9` does not exist. Use `provider/model` (providers: anthropic, echo, gemini, openai) or a "
        "model listed by GET /v1/models.",
        "model",
    ),
    409: ErrorCase(
        "`x-conduit-job-name` names a job of yours that is still known; fetch it with `GET /v1/streams/{name}`.",
        ErrorCode.CONFLICT,
        "you already have a job named 'report-42'; fetch it with GET /v1/streams/report-42",
    ),
    413: ErrorCase(
        "The body is larger than the gateway takes (`CONDUIT_MAX_BODY_BYTES`, 4 MB by default).",
        ErrorCode.REQUEST_TOO_LARGE,
        "Request Entity Too Large",
    ),
    429: ErrorCase(
        "Over one of your limits (requests or tokens per minute, concurrent streams): wait `retry-after` seconds. "
        "Or over the provider's own rate limit.",
        ErrorCode.RATE_LIMITED,
        "Rate limit reached for requests per minute; try again in 12 s.",
    ),
    500: ErrorCase(
        "A bug in the gateway; the message carries a correlation id for its logs.",
        ErrorCode.INTERNAL,
        "internal error (correlation id 3f2a9c1b7d4e)",
    ),
    502: ErrorCase(
        "The provider failed: it refused the gateway's credentials, answered with an error or broke off before the "
        "first token; or the worker running the job was lost.",
        ErrorCode.UPSTREAM_ERROR,
        "openai answered 500: The server had an error while processing your request.",
    ),
    503: ErrorCase(
        "The gateway cannot serve now: Redis is unreachable, no worker is alive, or the provider is overloaded. "
        "Try again shortly.",
        ErrorCode.NO_WORKER,
        "no worker is available to run the request; try again shortly",
    ),
    504: ErrorCase("The provider did not answer in time.", ErrorCode.UPSTREAM_TIMEOUT, "openai did not answer in time"),
}
#: what a generation endpoint can answer besides its 200
GENERATION_ERRORS = (400, 401, 403, 404, 409, 413, 429, 500, 502, 503, 504)
REDIS_DOWN = ErrorCase(
    "Redis is unreachable (an API key cannot be checked without it); try again shortly.",
    ErrorCode.UNAVAILABLE,
    "the gateway cannot reach Redis to check your API key; try again shortly",
)


def error_replies(
    render: ErrorRenderer, body: type, statuses: Iterable[int], overrides: Mapping[int, ErrorCase] | None = None
) -> dict[int, Reply]:
    """The error ``Reply`` of each status, with a ``body`` example that ``render`` draws (the dialect's own)."""
    replies: dict[int, Reply] = {}
    for status in statuses:
        case = (overrides or {}).get(status) or ERRORS[status]
        if STATUS[case.code] != status:
            raise ValueError(f"{case.code} is a {STATUS[case.code]}, not a {status}")
        problem = GatewayProblem(status=status, code=case.code, message=case.message, param=case.param)
        example = msgspec.json.decode(render(problem))
        headers = (RETRY_AFTER, *RATE_LIMIT_HEADERS) if case.code == ErrorCode.RATE_LIMITED else ()
        replies[status] = Reply(case.description, body, {case.code.value: example}, headers=headers)
    return replies
