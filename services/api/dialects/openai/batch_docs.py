"""How the OpenAI dialect's files and batches answer, for ``/openapi.json`` (the response Structs are in
``responses.py``; the examples are drawn by the dialect's own builders, ``translate.py``)."""

import msgspec

from services.api.dialects.openai.batch_responses import (
    Batch,
    DeleteFileResponse,
    ListBatchesResponse,
    ListFilesResponse,
    OpenAIFile,
)
from services.api.dialects.openai.errors import render_error
from services.api.dialects.openai.responses import ErrorResponse
from services.api.dialects.openai.translate import batch_object, file_object
from services.api.openapi_doc import JsonSchema, Reply
from services.api.openapi_parts import REDIS_DOWN, ErrorCase, error_replies
from services.stores.batches import BatchRecord
from services.stores.files import FileRecord
from shared.errors import ErrorCode

__all__ = [
    "BATCH_EXAMPLES",
    "BATCH_REPLIES",
    "CANCEL_BATCH_REPLIES",
    "CREATE_BATCH_REPLIES",
    "DELETE_FILE_REPLIES",
    "FILE_CONTENT_REPLIES",
    "FILE_FORM",
    "FILE_REPLIES",
    "LIST_BATCHES_REPLIES",
    "LIST_FILES_REPLIES",
    "RESULTS_REPLIES",
    "UPLOAD_REPLIES",
]

_CREATED = 1767225600

# --- files ---

_FILE = file_object(
    FileRecord(
        id="file-5f1c2a9e0b7d4c3a8e6f1b2d",
        owner="",
        bytes=120_000,
        created_at=_CREATED,
        filename="evals.jsonl",
        purpose="batch",
        expires_at=_CREATED + 2_592_000,
    )
)
FILE_FORM: JsonSchema = {
    "type": "object",
    "required": ["file", "purpose"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "JSONL: one batch request per line, `{custom_id, method: POST, url, body}`; every line "
            "calls the same endpoint (`/v1/chat/completions` or `/v1/completions`) with a body it takes.",
        },
        "purpose": {"type": "string", "enum": ["batch"]},
        "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
        "expires_after[seconds]": {
            "type": "integer",
            "minimum": 3600,
            "maximum": 2_592_000,
            "description": "Deleted this long after the upload (default 30 days, `CONDUIT_BATCH_FILE_EXPIRY`).",
        },
    },
}
_NO_FILE = ErrorCase("No file of yours by that id.", ErrorCode.NOT_FOUND, f"No such File object: {_FILE['id']}", "id")
_BAD_LINE = ErrorCase(
    "Not an upload of a batch input, or a line of it the endpoint it names would refuse (the message names it).",
    ErrorCode.INVALID_REQUEST,
    "line 2: custom_id 'request-1' is used by an earlier line",
    "custom_id",
)
_TOO_LARGE = ErrorCase(
    "The file is larger than the gateway takes (`CONDUIT_FILE_MAX_BYTES`, 200 MB by default).",
    ErrorCode.REQUEST_TOO_LARGE,
    "the file is larger than 200000000 bytes, the most this gateway takes",
    "file",
)
_FREE = ErrorCase(
    "Your tier may not upload batch inputs (batches are for the tiers that may generate).",
    ErrorCode.PERMISSION_DENIED,
    "This endpoint requires a Pro or Enterprise tier; your tier is free.",
)
_BAD_AFTER = ErrorCase(
    "A query value out of range, or `after` names no file of yours.",
    ErrorCode.INVALID_REQUEST,
    "no file 'file-0' of yours to list after (it may have been deleted)",
    "after",
)
_FILE_ERRORS = {400: _BAD_LINE, 403: _FREE, 404: _NO_FILE, 413: _TOO_LARGE, 503: REDIS_DOWN}


_BAD_ID = ErrorCase(
    "The file id is not one (too long).",
    ErrorCode.INVALID_REQUEST,
    "Invalid path parameter 'file_id': Expected `str` of length <= 64",
    "file_id",
)


def _file_errors(*statuses: int, upload: bool = False) -> dict[int, Reply]:
    cases = {**_FILE_ERRORS, 400: _BAD_LINE if upload else _BAD_ID}
    return error_replies(render_error, ErrorResponse, statuses, {s: cases[s] for s in statuses if s in cases})


UPLOAD_REPLIES = {
    200: Reply("The file, stored.", OpenAIFile, {"a batch input": _FILE}),
    **_file_errors(400, 401, 403, 413, 503, upload=True),
}
LIST_FILES_REPLIES = {
    200: Reply(
        "A page of your files.",
        ListFilesResponse,
        {
            "a page": {
                "object": "list",
                "data": [_FILE],
                "first_id": _FILE["id"],
                "last_id": _FILE["id"],
                "has_more": False,
            }
        },
    ),
    **error_replies(render_error, ErrorResponse, (400, 401, 503), {400: _BAD_AFTER, 503: REDIS_DOWN}),
}
FILE_REPLIES = {200: Reply("The file.", OpenAIFile, {"a batch input": _FILE}), **_file_errors(400, 401, 404, 503)}
_LINE = (
    '{"custom_id": "request-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": '
    '"gpt-4o-mini", "messages": [{"role": "user", "content": "What is 2+2?"}]}}\n'
)
FILE_CONTENT_REPLIES = {
    200: Reply(
        "The file's bytes, as uploaded (or a batch's results: JSONL).",
        {"type": "string", "format": "binary"},
        {"a batch input": _LINE},
        media_type="application/octet-stream",
    ),
    **_file_errors(400, 401, 404, 503),
}
DELETE_FILE_REPLIES = {
    200: Reply("Deleted.", DeleteFileResponse, {"deleted": {"id": _FILE["id"], "object": "file", "deleted": True}}),
    **_file_errors(400, 401, 404, 503),
}


# --- batches ---

_BATCH_RECORD = BatchRecord(
    id="batch_5f1c2a9e0b7d4c3a8e6f1b2d",
    owner="",
    endpoint="/v1/chat/completions",
    input_file_id=_FILE["id"],
    completion_window="24h",
    status="completed",
    created_at=_CREATED,
    in_progress_at=_CREATED + 1,
    finalizing_at=_CREATED + 95,
    completed_at=_CREATED + 96,
    expires_at=_CREATED + 86_400,
    lines_file_id="",
    total=100,
    completed=98,
    failed=2,
    output_file_id="file-0a1b2c3d4e5f60718293a4b5",
    error_file_id="file-b5a4938271f6e5d4c3b2a1f0",
    input_tokens=1500,
    output_tokens=500,
    metadata={"job": "nightly-eval"},
)
_BATCH = batch_object(_BATCH_RECORD)
_RUNNING = batch_object(
    msgspec.structs.replace(
        _BATCH_RECORD,
        status="in_progress",
        finalizing_at=None,
        completed_at=None,
        completed=41,
        failed=0,
        output_file_id=None,
        error_file_id=None,
    )
)
BATCH_EXAMPLES = {
    "a chat completions batch": {
        "input_file_id": _FILE["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "metadata": {"job": "nightly-eval"},
    }
}
_NO_BATCH = ErrorCase(
    "No batch of yours by that id.", ErrorCode.NOT_FOUND, f"No such Batch object: {_BATCH['id']}", "batch_id"
)
_BAD_BATCH = ErrorCase(
    "The body is invalid, its file is not a batch input of yours for that endpoint, or its lines use a provider no "
    "worker serves now.",
    ErrorCode.INVALID_REQUEST,
    "the lines of file-5f1c2a9e0b7d4c3a8e6f1b2d call /v1/chat/completions, not /v1/completions",
    "endpoint",
)
_BATCH_ERRORS = {400: _BAD_BATCH, 403: _FREE, 404: _NO_BATCH, 503: REDIS_DOWN}


def _batch_errors(*statuses: int) -> dict[int, Reply]:
    cases = {
        **_BATCH_ERRORS,
        403: ErrorCase(_FREE.description.replace("upload batch inputs", "create batches"), _FREE.code, _FREE.message),
    }
    return error_replies(render_error, ErrorResponse, statuses, {s: cases[s] for s in statuses if s in cases})


CREATE_BATCH_REPLIES = {
    200: Reply(
        "The batch, queued for the batch workers (`validating`).",
        Batch,
        {
            "a new batch": batch_object(
                msgspec.structs.replace(
                    _BATCH_RECORD,
                    status="validating",
                    in_progress_at=None,
                    finalizing_at=None,
                    completed_at=None,
                    completed=0,
                    failed=0,
                    output_file_id=None,
                    error_file_id=None,
                    input_tokens=0,
                    output_tokens=0,
                )
            )
        },
    ),
    **_batch_errors(400, 401, 403, 404, 503),
}
BATCH_REPLIES = {
    200: Reply("The batch; `request_counts` move while it runs.", Batch, {"running": _RUNNING, "completed": _BATCH}),
    **_batch_errors(400, 401, 404, 503),
}
CANCEL_BATCH_REPLIES = {
    200: Reply(
        "The batch, `cancelling` (it ends `cancelled` with what was done); one that ended is returned as it is.",
        Batch,
        {"cancelling": {**_RUNNING, "status": "cancelling", "cancelling_at": _CREATED + 30}},
    ),
    **_batch_errors(400, 401, 404, 503),
}
LIST_BATCHES_REPLIES = {
    200: Reply(
        "A page of your batches, newest first.",
        ListBatchesResponse,
        {
            "a page": {
                "object": "list",
                "data": [_BATCH],
                "first_id": _BATCH["id"],
                "last_id": _BATCH["id"],
                "has_more": False,
            }
        },
    ),
    **error_replies(render_error, ErrorResponse, (400, 401, 503), {400: _BAD_AFTER, 503: REDIS_DOWN}),
}

_RESULT = (
    '{"id":"batch_req_8c1f0a2b3d4e5f6a7b8c9d0e","custom_id":"request-1","response":{"status_code":200,'
    '"request_id":"254f30f6bc4d4659acfe37e61f3fd3dc","body":{"id":"chatcmpl-254f30f6bc4d4659acfe37e61f3fd3dc",'
    '"object":"chat.completion","created":1767225600,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,'
    '"message":{"role":"assistant","content":"4","refusal":null,"annotations":[]},"logprobs":null,'
    '"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}},"error":null}\n'
)
RESULTS_REPLIES = {
    200: Reply(
        "JSONL: a line per request that has ended (while the batch runs), or its output and error files (once it "
        "ended).",
        {"type": "string"},
        {"a line so far": _RESULT},
        media_type="application/jsonl",
    ),
    **_batch_errors(400, 401, 404, 503),
}
