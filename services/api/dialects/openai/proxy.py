"""``POST /api/v1/proxy/{proxyUrl}/{OpenAIAPIKey}/chat/completions``: OpenAI chat completions sent to an
OpenAI-compatible upstream the client names (its base URL, percent-encoded into one path segment) with the key
it gives (sent upstream as ``Authorization: Bearer``). The body and the answer are exactly
``/v1/chat/completions``'s, validation included; the job runs through the workers like any other (auth, tiers,
limits, usage under the upstream's host, cancel, resume), with no fallbacks. The upstream is checked against
the egress policy (``services.api.proxy``, and again by the worker at connect time); the key travels sealed."""

from typing import Any

from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Stream

from services.api.auth.deps import provide_paid_principal
from services.api.caller import Caller, provide_caller
from services.api.deps import generation_of
from services.api.dialects.openai.requests import chat_request
from services.api.dialects.openai.routes import CHAT_DOC, chat_reply
from services.api.proxy import proxy_of, upstream_segment

__all__ = ["ROUTES"]

_PAID = {"principal": Provide(provide_paid_principal), "caller": Provide(provide_caller)}


@post(
    "/api/v1/proxy/{proxyUrl:str}/{OpenAIAPIKey:str}/chat/completions",
    status_code=200,
    dependencies=_PAID,
    operation_class=CHAT_DOC,
    summary="Chat completions through an OpenAI-compatible upstream you name",
    description="`proxyUrl` is the upstream's base URL percent-encoded into one path segment "
    "(`https%3A%2F%2Fapi.example.com%2Fv1`); `OpenAIAPIKey` is the key sent to it as `Authorization: Bearer` "
    "(it is sealed in transit and never logged). The body and the answer are `/v1/chat/completions`'s. Only "
    "https upstreams on public addresses are called unless the gateway's CONDUIT_PROXY_ALLOW says otherwise; a "
    "refused upstream is a 400 `upstream_not_allowed` naming the rule. The model is the upstream's own name.",
    tags=["proxy"],
)
async def proxy_chat_completions(
    request: Request[Any, Any, State],
    caller: NamedDependency[Caller],
    state: State,
    proxyUrl: FromPath[str],  # noqa: N803 - the path's own names, as documented
    OpenAIAPIKey: FromPath[str],  # noqa: N803
) -> Response[bytes] | Stream:
    generation = generation_of(state)
    body, spec = chat_request(await request.body(), generation.settings, None)
    upstream = proxy_of(state).upstream(
        proxyUrl,
        caller.principal.user_id,
        upstream_segment(OpenAIAPIKey),
        kind="openai",
        max_tokens_field="max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens",
    )
    return await chat_reply(generation, caller, body, spec._replace(provider=upstream.origin, upstream=upstream))


ROUTES = [proxy_chat_completions]
