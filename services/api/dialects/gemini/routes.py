"""``POST /api/v1/proxy/{geminiUrl}/v1beta/models/{model}:{task}``: Gemini's own API through the gateway (and
``/v1/models/...``, the stable version, which Google's newer SDKs call by default).

``geminiUrl`` is the upstream's base URL (``https://generativelanguage.googleapis.com``, or another Gemini
API endpoint), percent-encoded into one path segment; ``task`` is ``generateContent`` or
``streamGenerateContent`` (with ``?alt=sse``, as Google's SDKs send it). The request is Gemini's
``GenerateContentRequest``, checked as Google checks it (a 400 in Google's error shape names what is wrong)
and then sent upstream byte for byte; the answer comes back as Gemini sent it. The key is the client's
``x-goog-api-key`` header (or ``key`` query parameter), sealed in transit; without one the gateway's own
Gemini key is used, and only when ``geminiUrl`` is the gateway's configured Gemini base URL. The job runs
through the workers like any other: auth, tiers, limits, usage under the upstream's host, cancel on
disconnect, resume; no fallbacks."""

from typing import Any

from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Stream

from services.api.auth.deps import provide_paid_principal
from services.api.caller import Caller, provide_caller
from services.api.deps import generation_of
from services.api.dialects.gemini import docs
from services.api.dialects.gemini.errors import GeminiRequestError
from services.api.dialects.gemini.request import max_output_tokens, parse_model_task, parse_request, prompt_text
from services.api.dialects.gemini.sse import NATIVE, NativeEncoder
from services.api.generation import JobRequest, Rendering, stream_body
from services.api.openapi_doc import documented
from services.api.openapi_parts import GENERATION_HEADERS
from services.api.proxy import proxy_of, upstream_segment
from services.api.sse import JOB_HEADER, sse_response
from shared.errors import ErrorCode, UpstreamError
from shared.jobs import ChatMessage, SamplingParams

__all__ = ["ROUTES"]

_PAID = {"principal": Provide(provide_paid_principal), "caller": Provide(provide_caller)}
STREAM = "streamGenerateContent"
VERSIONS = ("v1beta", "v1")


def _refused(exc: GeminiRequestError) -> Response[bytes]:
    return Response(exc.body(), status_code=exc.http_status, media_type="application/json")


@post(
    "/api/v1/proxy/{geminiUrl:str}/{apiVersion:str}/models/{modelTask:str}",
    status_code=200,
    dependencies=_PAID,
    operation_class=documented(
        body=docs.GenerateContentBody,
        body_examples=docs.GEMINI_EXAMPLES,
        replies=docs.GEMINI_REPLIES,
        headers=GENERATION_HEADERS,
    ),
    summary="Gemini's generateContent through a Gemini API endpoint you name",
    description="`geminiUrl` is the Gemini API's base URL percent-encoded into one path segment "
    "(`https%3A%2F%2Fgenerativelanguage.googleapis.com`); `apiVersion` is `v1beta` or `v1`; `modelTask` is "
    "`<model>:generateContent`, or "
    "`<model>:streamGenerateContent` with `?alt=sse`. Your Gemini key goes in `x-goog-api-key` (or `?key=`); "
    "without one, the gateway's own key is used if `geminiUrl` is its configured Gemini endpoint. The body "
    "and the answer are Gemini's own, passed through; errors are in Google's shape.",
    tags=["proxy"],
)
async def gemini_proxy(
    request: Request[Any, Any, State],
    caller: NamedDependency[Caller],
    state: State,
    geminiUrl: FromPath[str],  # noqa: N803 - the path's own names, as documented
    apiVersion: FromPath[str],  # noqa: N803
    modelTask: FromPath[str],  # noqa: N803
) -> Response[bytes] | Stream:
    generation = generation_of(state)
    raw = await request.body()
    try:
        model, task = parse_model_task(upstream_segment(modelTask), api_version=apiVersion)
        if apiVersion not in VERSIONS:
            raise GeminiRequestError("Method not found.", status="NOT_FOUND", code=404)
        body = parse_request(raw, max_depth=generation.settings.max_json_depth)
    except GeminiRequestError as exc:
        return _refused(exc)
    stream = task == STREAM
    if stream and request.query_params.get("alt") != "sse":
        return _refused(GeminiRequestError("streamGenerateContent is served as SSE: add ?alt=sse to the URL."))
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key") or ""
    gate = proxy_of(state)
    upstream = gate.upstream(geminiUrl, caller.principal.user_id, key, kind="gemini", body=raw, api_version=apiVersion)
    spec = JobRequest(
        provider=upstream.origin,
        model=model,
        messages=[ChatMessage(role="user", content=prompt_text(body))],
        params=SamplingParams(max_tokens=max_output_tokens(body)),
        stream=stream,
        rendering=Rendering(NATIVE, "", model),
        upstream=upstream,
    )
    job, view, limits = await generation.prepare(caller, spec)
    if stream:
        opened = await generation.open_stream(caller, job)
        return sse_response(stream_body(opened, NativeEncoder.for_view(view)), job.id, opened.close, limits)
    answer = await generation.collect(caller, job)
    if len(answer.native) != 1:
        raise UpstreamError(f"{upstream.origin} sent no answer", code=ErrorCode.UPSTREAM_INCOMPLETE)
    return Response(answer.native[0].encode(), media_type="application/json", headers={**limits, JOB_HEADER: job.id})


ROUTES = [gemini_proxy]
