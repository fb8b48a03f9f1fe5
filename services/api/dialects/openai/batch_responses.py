"""The OpenAI dialect's files and batches as msgspec Structs, for ``/openapi.json`` only (see ``responses.py``)."""

from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from services.api.dialects.openai.responses import Exact

__all__ = ["Batch", "DeleteFileResponse", "ListBatchesResponse", "ListFilesResponse", "OpenAIFile"]


class OpenAIFile(Exact, kw_only=True):
    """An uploaded file (a batch input), or a batch's output or error file."""

    id: Annotated[str, Meta(examples=["file-5f1c2a9e0b7d4c3a8e6f1b2d"])]
    object: Literal["file"]
    bytes: Annotated[int, Meta(description="Its size in bytes.")]
    created_at: Annotated[int, Meta(description="Unix time (seconds) of the upload.")]
    expires_at: Annotated[int | None, Meta(description="Unix time (seconds) it is deleted at; null: kept.")]
    filename: str
    purpose: Annotated[str, Meta(description="`batch` (an input), or `batch_output` (a batch's results).")]
    status: Annotated[Literal["processed"], Meta(description="Deprecated by OpenAI; always `processed` here.")]


class ListFilesResponse(Exact, kw_only=True):
    """A page of your files; the next is `after=<last_id>` while `has_more`."""

    object: Literal["list"]
    data: list[OpenAIFile]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeleteFileResponse(Exact, kw_only=True):
    id: str
    object: Literal["file"]
    deleted: Literal[True]


Stamp = Annotated[
    int | UnsetType, Meta(description="Unix time (seconds) the batch reached that point; absent: not (yet).")
]


class BatchErrorItem(Exact, kw_only=True):
    code: str
    message: str
    param: str | None
    line: int | None


class BatchErrors(Exact, kw_only=True):
    object: Literal["list"]
    data: list[BatchErrorItem]


class BatchRequestCounts(Exact, kw_only=True):
    total: int
    completed: Annotated[int, Meta(description="Lines answered (in the output file).")]
    failed: Annotated[int, Meta(description="Lines that failed after their retries (in the error file).")]


class InputTokensDetails(Exact, kw_only=True):
    cached_tokens: int


class OutputTokensDetails(Exact, kw_only=True):
    reasoning_tokens: int


class BatchUsage(Exact, kw_only=True):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class Batch(Exact, kw_only=True):
    """A batch: run by the gateway's batch workers, line by line, on any configured provider."""

    id: Annotated[str, Meta(examples=["batch_5f1c2a9e0b7d4c3a8e6f1b2d"])]
    object: Literal["batch"]
    endpoint: str
    errors: BatchErrors | UnsetType = UNSET
    input_file_id: str
    completion_window: Literal["24h"]
    status: Literal[
        "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
    ]
    output_file_id: Annotated[
        str | UnsetType, Meta(description="The answered lines' file, once the batch ended with any.")
    ] = UNSET
    error_file_id: Annotated[
        str | UnsetType, Meta(description="The failed and never-run lines' file, once it ended with any.")
    ] = UNSET
    created_at: int
    in_progress_at: Stamp = UNSET
    expires_at: int
    finalizing_at: Stamp = UNSET
    completed_at: Stamp = UNSET
    failed_at: Stamp = UNSET
    expired_at: Stamp = UNSET
    cancelling_at: Stamp = UNSET
    cancelled_at: Stamp = UNSET
    request_counts: BatchRequestCounts
    usage: BatchUsage
    metadata: dict[str, str] | None


class ListBatchesResponse(Exact, kw_only=True):
    """A page of your batches, newest first; the next is `after=<last_id>` while `has_more`."""

    object: Literal["list"]
    data: list[Batch]
    first_id: str | None
    last_id: str | None
    has_more: bool
