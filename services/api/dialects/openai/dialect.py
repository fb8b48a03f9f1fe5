"""The OpenAI dialect: chat completions, completions, models, files and batches (``/v1/...``)."""

from services.api.dialect import Dialect, ResumeDoc
from services.api.dialects.openai import batches, docs, files, proxy, responses
from services.api.dialects.openai.errors import render_error
from services.api.dialects.openai.requests import CHAT, COMPLETION
from services.api.dialects.openai.routes import ROUTES
from services.api.dialects.openai.sse import ChatChunkEncoder, CompletionChunkEncoder
from services.api.dialects.openai.translate import chat_body, completion_body
from services.api.sse import FrameId

__all__ = ["DIALECT"]

DIALECT = Dialect(
    name="openai",
    routes=[*ROUTES, *files.ROUTES, *batches.ROUTES, *proxy.ROUTES],
    #: the OpenAI-compatible proxy endpoint answers in OpenAI's shapes too (the Gemini one: the gemini dialect)
    paths=("/v1/", "/api/v1/proxy/"),
    render_error=render_error,
    error_schema=responses.ErrorResponse,
    encoders={CHAT: ChatChunkEncoder.for_view, COMPLETION: CompletionChunkEncoder.for_view},
    bodies={
        CHAT: lambda view, answer: chat_body(view.id, view.model, answer),
        COMPLETION: lambda view, answer: completion_body(view.id, view.model, answer),
    },
    tags={
        "openai": "The OpenAI API: its SDKs work with `base_url` set to `<gateway>/v1`.",
        "proxy": "Your own upstreams: an OpenAI-compatible server, or Gemini's API, named in the path.",
    },
    resume_doc=ResumeDoc(
        bodies=(responses.CreateChatCompletionResponse, responses.CreateCompletionResponse),
        frames=(
            responses.CreateChatCompletionStreamResponse,
            responses.CreateCompletionStreamResponse,
            responses.ErrorResponse,
        ),
        body_examples={"a chat completion": docs.CHAT_REPLIES[200].examples["text"]},
        stream_examples={"a chat completion stream, after frame 3.1": docs.resumed_chat_stream(FrameId(3, 1))},
    ),
)
