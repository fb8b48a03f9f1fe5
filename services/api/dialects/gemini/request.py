"""Gemini's native ``GenerateContentRequest``, checked the way Google's front end reads it.

The proxy forwards the client's bytes unchanged; this package only decides whether Google would refuse them,
and answers a refusal with Google's own error body (``errors.error_body``). Google reads a body in passes,
and so does ``parse_request``; the first pass that fails is the answer:

1. JSON text: ``Invalid JSON payload received. Unexpected token.``, then a snippet and a caret line
   (``reader.decode_body``).
2. JSON into the proto message (protobuf's proto writer): unknown names, values of the wrong kind, enum
   names and base64 it cannot read, each named by its snake_case proto path, all in one 400 whose
   ``details`` hold one ``google.rpc.BadRequest`` field violation per refusal (``reader.Reader``).
3. The request's own rules: one ``* GenerateContentRequest.<path>: <rule>\\n`` line per broken rule.
4. Single-sentence checks: a safety category given twice, a role Gemini does not know.

Passes 3 and 4 are here. Rules that depend on the model (thinking budgets, which roles, temperature above a
model's ``maxTemperature``) and the insides of ``Schema`` and the built-in tools are left to Google.
"""

import re
from collections.abc import Iterator

import msgspec

from services.api.dialects.gemini.errors import GeminiRequestError
from services.api.dialects.gemini.reader import Reader, decode_body
from services.api.dialects.gemini.schemas import Content, GenerateContentRequest, GenerationConfig

__all__ = ["max_output_tokens", "parse_model_task", "parse_request", "prompt_text"]

# --- passes 3 and 4: the request's own rules ----------------------------------------------------------------

_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
_BAD_FUNCTION_NAME = (
    "Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), "
    "underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64."
)
_GEMINI_CATEGORIES = tuple(
    f"HARM_CATEGORY_{c}"
    for c in ("HATE_SPEECH", "SEXUALLY_EXPLICIT", "DANGEROUS_CONTENT", "HARASSMENT", "CIVIC_INTEGRITY")
)
_CATEGORY_RULE = (
    f"element predicate failed: $.category in ({', '.join(f'HarmCategory.{c}' for c in _GEMINI_CATEGORIES)})"
)
_MIME_TYPES = ("text/plain", "application/json", "application/xml", "application/yaml", "text/x.enum")
_MIME_RULE = (
    "allowed mimetypes are `text/plain`, `application/json`, `application/xml`, `application/yaml` and `text/x.enum`."
)
_MAX_STOP_SEQUENCES = 5
_ROLES = frozenset({"", "user", "model", "function"})  # "function": older clients' role for function responses


def _content_rules(content: Content, path: str) -> Iterator[tuple[str, str]]:
    if not content.parts:
        yield f"{path}.parts", "contents.parts must not be empty."
    for index, part in enumerate(content.parts):
        at = f"{path}.parts[{index}]"
        if not part.has_data():
            yield f"{at}.data", "required oneof field 'data' must have one initialized field"
        if part.function_call is not None and not part.function_call.name:
            yield f"{at}.function_call.name", "Name cannot be empty."
        if part.function_response is not None and not part.function_response.name:
            yield f"{at}.function_response.name", "Name cannot be empty."


def _config_rules(config: GenerationConfig) -> Iterator[tuple[str, str]]:
    if config.temperature is not None and not 0.0 <= config.temperature <= 2.0:  # noqa: PLR2004
        yield "generation_config.temperature", "temperature must be in the range [0.0, 2.0]."
    if len(config.stop_sequences) > _MAX_STOP_SEQUENCES:
        yield "generation_config.stop_sequences", "stop_sequences must have at most 5 elements."
    if config.response_mime_type and config.response_mime_type not in _MIME_TYPES:
        yield "generation_config.response_mime_type", _MIME_RULE


def _rules(request: GenerateContentRequest) -> Iterator[tuple[str, str]]:
    if not request.contents:
        yield "contents", "contents is not specified"
    for index, content in enumerate(request.contents):
        yield from _content_rules(content, f"contents[{index}]")
    if request.system_instruction is not None and request.system_instruction.parts:
        yield from _content_rules(request.system_instruction, "system_instruction")
    for i, tool in enumerate(request.tools):
        for j, declaration in enumerate(tool.function_declarations):
            if not _FUNCTION_NAME.fullmatch(declaration.name):
                yield f"tools[{i}].function_declarations[{j}].name", _BAD_FUNCTION_NAME
    for index, setting in enumerate(request.safety_settings):
        if setting.category not in _GEMINI_CATEGORIES:
            yield f"safety_settings[{index}]", _CATEGORY_RULE
    if request.generation_config is not None:
        yield from _config_rules(request.generation_config)


def _check(request: GenerateContentRequest) -> None:
    broken = list(_rules(request))
    if broken:
        message = "".join(f"* GenerateContentRequest.{path}: {rule}\n" for path, rule in broken)
        raise GeminiRequestError(message, field_path=broken[0][0])
    categories = [setting.category for setting in request.safety_settings]
    if len(set(categories)) < len(categories):
        raise GeminiRequestError("Multiple safety settings with the same category.", field_path="safety_settings")
    if any((content.role or "") not in _ROLES for content in request.contents):
        raise GeminiRequestError("Please use a valid role: user, model.", field_path="contents")


# --- the public entry points --------------------------------------------------------------------------------


def parse_request(raw: bytes, *, max_depth: int = 64, max_items: int = 10_000) -> GenerateContentRequest:
    """The request ``raw`` holds, or ``GeminiRequestError`` with Google's answer to it.

    ``raw`` itself is what the proxy forwards; the Struct is for the gateway's own use (rate limits, logs).
    ``max_depth`` bounds nesting anywhere in the body; ``max_items`` the elements of any repeated field.
    """
    tree = decode_body(raw, max_depth)
    if not isinstance(tree, dict):
        message = 'Invalid JSON payload received. Unknown name "": Root element must be a message.'
        raise GeminiRequestError(message, violations=[(None, message)])
    reader = Reader(max_items)
    read = reader.message(tree, GenerateContentRequest, "")
    if reader.violations:
        raise GeminiRequestError("\n".join(m for _, m in reader.violations), violations=reader.violations)
    try:
        request = msgspec.convert(read, GenerateContentRequest)
    except msgspec.ValidationError as exc:  # the reader let through what the Structs refuse: say no more than Google
        raise GeminiRequestError("Request contains an invalid argument.") from exc
    _check(request)
    return request


_TASKS = frozenset({"generateContent", "streamGenerateContent"})
_MODEL = re.compile(r"(?:models/)?([a-z0-9][a-z0-9._-]{0,127})|(tunedModels/[a-z0-9][a-z0-9-]{0,127})")


def parse_model_task(model_and_task: str, *, api_version: str = "v1beta") -> tuple[str, str]:
    """``gemini-2.5-flash:streamGenerateContent`` -> ``("gemini-2.5-flash", "streamGenerateContent")``.

    A ``models/`` prefix is dropped; a tuned model keeps its ``tunedModels/`` one (its URL differs).
    An unknown method or a name no model can have is Google's 404.
    """
    name, colon, task = model_and_task.rpartition(":")
    if not colon or task not in _TASKS:
        raise GeminiRequestError("Method not found.", status="NOT_FOUND", code=404)
    match = _MODEL.fullmatch(name)
    if match is None:
        resource = name if name.startswith(("models/", "tunedModels/")) else f"models/{name}"
        message = (
            f"{resource} is not found for API version {api_version}, or is not supported for {task}. "
            "Call ListModels to see the list of available models and their supported methods."
        )
        raise GeminiRequestError(message, status="NOT_FOUND", code=404)
    return match.group(1) or match.group(2), task


def prompt_text(request: GenerateContentRequest) -> str:
    """The text of the system instruction and of every turn, joined by newlines (a size for rate limits)."""
    turns = [request.system_instruction, *request.contents] if request.system_instruction else request.contents
    return "\n".join(part.text for turn in turns for part in turn.parts if part.text)


def max_output_tokens(request: GenerateContentRequest) -> int | None:
    config = request.generation_config
    return config.max_output_tokens if config is not None else None
