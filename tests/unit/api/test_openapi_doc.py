"""The OpenAPI document, built without sockets: valid OpenAPI 3.1, every example true to its own schema,
every status the errors table can give documented, and the docs page's assets vendored."""

import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from jsonschema import Draft202012Validator, ValidationError
from litestar.exceptions import LitestarDeprecationWarning

from services.api import openapi, swagger
from services.api.app import create_app
from services.api.errors import STATUS
from services.api.settings import ApiSettings
from shared.config import load_settings
from shared.errors import ErrorCode
from tests.openai_schema import assert_valid
from tests.openapi_doc import check_event, operations, sse_events, validate

OPEN = {("/healthz", "get"), ("/readyz", "get"), ("/openapi.json", "get")}
GENERATION = ["/v1/chat/completions", "/v1/completions", "/api/ai/chat", "/api/ai/completions"]
SSE = "text/event-stream"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    with warnings.catch_warnings():  # the handlers' inferred dependencies (Litestar 3 will want them marked)
        warnings.simplefilter("ignore", LitestarDeprecationWarning)
        app = create_app(load_settings(ApiSettings, {"CONDUIT_JWT_SECRET": "x" * 40}), {})
    document: dict[str, Any] = json.loads(openapi.document(app))
    return document


def test_document_is_valid_openapi_31(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(doc).validate()
    for name, schema in doc["components"]["schemas"].items():
        assert schema.get("title", name) == name
        Draft202012Validator.check_schema(schema)


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    refs = set(re.findall(r'"\$ref": "#/components/(\w+)/([\w.-]+)"', text))
    assert refs
    for kind, name in refs:
        assert name in doc["components"][kind], f"#/components/{kind}/{name}"


def _examples(media: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(name, example["value"]) for name, example in media.get("examples", {}).items()]


def test_every_example_matches_its_schema(doc: dict[str, Any]) -> None:
    checked = 0
    for path, method, op in operations(doc):
        for media in op.get("requestBody", {}).get("content", {}).values():
            for _, value in _examples(media):
                validate(doc, media["schema"], value)
                checked += 1
        for parameter in op.get("parameters", []):
            if "example" in parameter:
                validate(doc, parameter["schema"], parameter["example"])
        for status, response in op["responses"].items():
            for media_type, media in response.get("content", {}).items():
                assert _examples(media), f"{method} {path} {status} {media_type} has no example"
                for name, value in _examples(media):
                    events = sse_events(value) if media_type == SSE else [value]
                    assert events, f"{method} {path} {status}: {name}"
                    for event in events:
                        (check_event if media_type == SSE else validate)(doc, media["schema"], event)
                        checked += 1
    for header in doc["components"]["headers"].values():
        validate(doc, header["schema"], header["example"])
    assert checked > 100


def test_streams_document_their_frames(doc: dict[str, Any]) -> None:
    for path in [*GENERATION, "/v1/streams/{job_id}"]:
        (op,) = [op for p, _, op in operations(doc) if p == path]
        content = op["responses"]["200"]["content"]
        assert set(content) == {"application/json", SSE}, path
        assert content[SSE]["schema"]["required"] == ["id", "data"]
    # a frame that is not JSON, or JSON of another shape, is refused
    chat = doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"][SSE]["schema"]
    with pytest.raises(json.JSONDecodeError):
        check_event(doc, chat, {"id": "3", "event": "message", "data": "Hello"})
    with pytest.raises(ValidationError, match="is not valid under any of the given schemas"):
        check_event(doc, chat, {"id": "3", "event": "message", "data": '{"token": "Hello"}'})
    with pytest.raises(ValidationError, match="does not match"):
        check_event(doc, chat, {"id": "three", "event": "message", "data": "[DONE]"})


def test_generation_endpoints_document_every_status_the_gateway_gives(doc: dict[str, Any]) -> None:
    # every status an ErrorCode maps to (but 499: the client has gone), and those of auth, names and sizes
    expected = {200, 401, 403, 409, 413} | {s for code, s in STATUS.items() if code != ErrorCode.CANCELLED}
    for path in GENERATION:
        responses = doc["paths"][path]["post"]["responses"]
        assert {int(status) for status in responses} == expected, path


#: the error body of each path prefix (others: OpenAI's)
SHAPES = (
    ("/api/ai/", "AiError"),
    ("/api/v1/proxy/{geminiUrl}/", "GeminiError"),
    ("/api/v1/proxy/", "ErrorResponse"),
    ("/api/v1/", "ChatError"),
)


def test_errors_have_their_dialects_shape(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        for status, response in op["responses"].items():
            if int(status) < 400 or path == "/readyz":
                continue
            shape = next((name for prefix, name in SHAPES if path.startswith(prefix)), "ErrorResponse")
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{shape}"}, f"{method} {path} {status}"
            assert "x-request-id" in response["headers"]
    rate_limited = doc["paths"]["/v1/chat/completions"]["post"]["responses"]["429"]["headers"]
    assert {"retry-after", "x-ratelimit-remaining-requests"} <= set(rate_limited)


def test_only_health_and_the_document_need_no_token(doc: dict[str, Any]) -> None:
    assert doc["security"] == [{"BearerToken": []}, {"ApiKeyHeader": []}]
    assert {"BearerToken", "ApiKeyHeader"} <= set(doc["components"]["securitySchemes"])
    for path, method, op in operations(doc):
        if (path, method) in OPEN:
            assert op["security"] == [], path
            assert "401" not in op["responses"]
        else:
            assert "security" not in op, path  # the document's own: a token
            assert "401" in op["responses"], path


def test_models_are_lists_of_models(doc: dict[str, Any]) -> None:
    listed = doc["paths"]["/v1/models"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed == {"$ref": "#/components/schemas/ListModelsResponse"}
    retrieved = doc["paths"]["/v1/models/{model_id}"]["get"]["responses"]["200"]["content"]["application/json"]
    assert retrieved["schema"] == {"$ref": "#/components/schemas/Model"}
    validate(doc, listed, {"object": "list", "data": [{"id": "a/b", "object": "model", "created": 0, "owned_by": "a"}]})
    with pytest.raises(ValidationError, match="is not of type 'object'"):
        validate(doc, listed, "openai/gpt-4o")


def test_request_rules_the_handlers_check_are_documented(doc: dict[str, Any]) -> None:
    chat = {"$ref": "#/components/schemas/ChatCompletionRequest"}
    validate(doc, chat, {"model": "gpt-4o", "messages": [{"role": "assistant", "content": None}]})
    for wrong in (
        {"model": "gpt-4o", "messages": [{"role": "user", "content": None}]},
        {"model": "gpt-4o", "messages": [{"role": "tool", "content": "42"}]},
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "n": 9},
        {"model": " ", "messages": [{"role": "user", "content": "hi"}]},
    ):
        with pytest.raises(ValidationError):
            validate(doc, chat, wrong)


def test_docs_page_assets_are_vendored_and_local() -> None:
    package = json.loads((swagger.DIRECTORIES[0] / "package.json").read_text())
    assert package["name"] == "swagger-ui-dist"
    assert package["version"] == swagger.SWAGGER_UI_VERSION
    assert "Apache License" in (swagger.DIRECTORIES[0] / "LICENSE").read_text()

    class _Request:
        scope: dict[str, Any] = {"root_path": "/gateway"}  # noqa: RUF012

    page = swagger.SwaggerPage().render(_Request(), {"info": {"title": "Conduit", "version": "1"}})  # type: ignore[arg-type]
    urls = re.findall(rb'(?:src|href|data-openapi-url)="([^"]+)"', page)
    assert len(urls) == 6
    for url in urls:
        path = url.decode().partition("?")[0]
        assert path.startswith("/gateway/"), path
        if path != "/gateway/openapi.json":
            name = path.removeprefix(f"/gateway{swagger.ASSETS_PATH}/")
            assert any(Path(directory, name).is_file() for directory in swagger.DIRECTORIES), name
    assert b"http" not in page.replace(b'http-equiv="Content-Security-Policy"', b"")


#: the schema of OpenAI's published document each of ours stands for (a stream's data: a chunk or an error)
OPENAI_NAMES = {
    "CreateChatCompletionResponse": "CreateChatCompletionResponse",
    "CreateCompletionResponse": "CreateCompletionResponse",
    "ListModelsResponse": "ListModelsResponse",
    "Model": "Model",
    "ErrorResponse": "ErrorResponse",
    "OpenAIFile": "OpenAIFile",
    "ListFilesResponse": "ListFilesResponse",
    "DeleteFileResponse": "DeleteFileResponse",
    "Batch": "Batch",
    "ListBatchesResponse": "ListBatchesResponse",
}
OPENAI_CHUNKS = {
    "/v1/chat/completions": "CreateChatCompletionStreamResponse",
    "/v1/completions": "CreateCompletionResponse",
}


def test_openai_examples_are_valid_by_openais_own_schemas(doc: dict[str, Any]) -> None:
    """The examples are the dialect's own encoders' output: OpenAI's published schemas accept them."""
    checked = 0
    for path, _, op in operations(doc):
        if not path.startswith("/v1/") or path.startswith("/v1/streams") or path == "/v1/usage":
            continue
        for response in op["responses"].values():
            for media_type, media in response["content"].items():
                for _, value in _examples(media):
                    if media_type == SSE:
                        for event in sse_events(value):
                            if event["data"] != "[DONE]":
                                data = json.loads(event["data"])
                                if path == "/v1/completions" and "choices" in data:
                                    # OpenAI streams completions as the answer's object with `finish_reason: null`
                                    # until the last, which its schema does not allow (and its SDKs do)
                                    data["choices"] = [c | {"finish_reason": "stop"} for c in data["choices"]]
                                assert_valid(data, "ErrorResponse" if "error" in data else OPENAI_CHUNKS[path])
                                checked += 1
                    elif media_type == "application/json":  # not a file's bytes
                        assert_valid(value, OPENAI_NAMES[media["schema"]["$ref"].rsplit("/", 1)[-1]])
                        checked += 1
    assert checked > 40
