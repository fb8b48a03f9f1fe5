"""``/v1/files``: batch input files, uploaded, listed, read and deleted in OpenAI's shapes.

Uploading is for the tiers that may generate (a batch input is only good for a batch); listing, reading and
deleting one's own files is open to every tier. Another user's file is a 404 everywhere. A file is checked
line by line as it streams in (``batch_lines.py``): the first bad line refuses it, naming the line.
"""

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from litestar import Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter
from litestar.response import Stream

from services.api.auth.deps import provide_paid_principal, provide_principal
from services.api.deps import Files, files_of, generation_of
from services.api.dialects.openai import batch_docs as docs
from services.api.dialects.openai.batch_lines import LineChecker
from services.api.dialects.openai.translate import file_object
from services.api.openapi_doc import documented
from services.api.options import options_for
from services.api.uploads import receive_upload
from services.api.wire import encode_json
from services.stores.files import FileRecord, new_file_id
from shared.batches import encode_line, lines_file_id
from shared.errors import ErrorCode, InvalidRequestError
from shared.jobs import Principal

__all__ = ["ROUTES"]

_JSON = "application/json"
_TAGS = ["openai"]
FileId = Annotated[str, PathParameter(max_length=64)]
#: OpenAI's bounds on a file's expiry (seconds after its creation)
MIN_EXPIRY, MAX_EXPIRY = 3600, 2_592_000
MAX_PAGE = 10_000


def _json(body: object) -> Response[bytes]:
    return Response(encode_json(body), media_type=_JSON)


def _missing(file_id: str) -> InvalidRequestError:
    return InvalidRequestError(f"No such File object: {file_id}", code=ErrorCode.NOT_FOUND, param="id")


def _expiry(fields: dict[str, str], created: int, default: int) -> int | None:
    anchor, seconds = fields.get("expires_after[anchor]"), fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return created + default if default else None
    if anchor != "created_at":
        raise InvalidRequestError("expires_after[anchor] must be 'created_at'", param="expires_after[anchor]")
    try:
        after = int(seconds or "")
    except ValueError:
        after = 0
    if not MIN_EXPIRY <= after <= MAX_EXPIRY:
        raise InvalidRequestError(
            f"expires_after[seconds] must be a whole number from {MIN_EXPIRY} to {MAX_EXPIRY}",
            param="expires_after[seconds]",
        )
    return created + after


def _purpose(fields: dict[str, str]) -> Literal["batch"]:
    purpose = fields.get("purpose")
    if purpose != "batch":
        raise InvalidRequestError(
            f"purpose must be 'batch' (this gateway keeps files for batches), not {purpose!r}", param="purpose"
        )
    return "batch"


async def _delete_bytes(files: Files, file_id: str) -> None:
    await files.store.delete(file_id)
    await files.store.delete(lines_file_id(file_id))


@post(
    "/v1/files",
    status_code=200,
    dependencies={"principal": Provide(provide_paid_principal)},
    request_max_body_size=None,  # the upload's own cap (CONDUIT_FILE_MAX_BYTES), counted as it streams
    operation_class=documented(form=docs.FILE_FORM, replies=docs.UPLOAD_REPLIES),
    summary="Upload a batch input file (multipart: `file`, `purpose=batch`)",
    description="The file is JSONL, one batch request per line, checked as it arrives: the first line the "
    "endpoint it names would refuse refuses the upload (400, naming the line).",
    tags=_TAGS,
)
async def create_file(
    request: Request[Any, Any, State], principal: NamedDependency[Principal], state: State
) -> Response[bytes]:
    files, generation = files_of(state), generation_of(state)
    settings = generation.settings
    checker = LineChecker(
        settings, generation.catalog, max_lines=settings.batch_max_lines, max_line_bytes=settings.max_body_bytes
    )
    file_id, created = new_file_id(), int(time.time())
    translated = lines_file_id(file_id)
    try:
        async with files.store.writer(translated) as lines:  # the lines as jobs, beside the file: both or neither

            async def check(chunk: bytes) -> None:
                for line in checker.feed(chunk):
                    await lines.write(encode_line(line))

            upload = await receive_upload(
                request.stream(),
                request.headers.get("content-type", ""),
                files.store,
                file_id,
                max_bytes=settings.file_max_bytes,
                check=check,
            )
            found, last = checker.close()
            for line in last:
                await lines.write(encode_line(line))
        record = FileRecord(
            id=file_id,
            owner=principal.user_id,
            bytes=upload.bytes,
            created_at=created,
            filename=upload.filename,
            purpose=_purpose(upload.fields),
            expires_at=_expiry(upload.fields, created, settings.batch_file_expiry),
            lines=found.lines,
            endpoint=found.endpoint,
            providers=list(found.providers),
        )
        await files.records.add(record)
    except BaseException:
        await _delete_bytes(files, file_id)
        raise
    return _json(file_object(record))


@get(
    "/v1/files",
    dependencies={"principal": Provide(provide_principal)},
    summary="Your files, newest first (or `order=asc`); the next page is `after=<last_id>`",
    tags=_TAGS,
    operation_class=documented(replies=docs.LIST_FILES_REPLIES),
)
async def list_files(
    principal: NamedDependency[Principal],
    state: State,
    purpose: Annotated[str | None, QueryParameter(max_length=32, required=False)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = MAX_PAGE,
    order: Annotated[Literal["asc", "desc"], QueryParameter()] = "desc",
    after: Annotated[str | None, QueryParameter(max_length=64, required=False)] = None,
) -> Response[bytes]:
    page = await files_of(state).records.page(
        principal.user_id, limit=limit, after=after or None, newest_first=order == "desc", purpose=purpose or None
    )
    if page is None:
        raise InvalidRequestError(f"no file {after!r} of yours to list after (it may have been deleted)", param="after")
    data = [file_object(record) for record in page.files]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return _json({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": page.has_more})


@get(
    "/v1/files/{file_id:str}",
    dependencies={"principal": Provide(provide_principal)},
    summary="A file",
    tags=_TAGS,
    operation_class=documented(replies=docs.FILE_REPLIES),
)
async def retrieve_file(principal: NamedDependency[Principal], state: State, file_id: FileId) -> Response[bytes]:
    record = await files_of(state).records.get(principal.user_id, file_id)
    if record is None:
        raise _missing(file_id)
    return _json(file_object(record))


@get(
    "/v1/files/{file_id:str}/content",
    dependencies={"principal": Provide(provide_principal)},
    summary="A file's bytes (a batch's input, output or error file: JSONL)",
    tags=_TAGS,
    operation_class=documented(replies=docs.FILE_CONTENT_REPLIES),
)
async def file_content(principal: NamedDependency[Principal], state: State, file_id: FileId) -> Stream:
    files = files_of(state)
    record = await files.records.get(principal.user_id, file_id)
    if record is None:
        raise _missing(file_id)
    chunks = files.store.read(file_id)
    try:
        first = await anext(chunks, b"")
    except FileNotFoundError:  # its record outlived its bytes (a store emptied by hand)
        raise _missing(file_id) from None

    async def content() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    disposition = f"attachment; filename*=UTF-8''{quote(record.filename, safe='')}"
    headers = {"content-length": str(record.bytes), "content-disposition": disposition}
    return Stream(content(), media_type="application/octet-stream", headers=headers)


@delete(
    "/v1/files/{file_id:str}",
    status_code=200,
    dependencies={"principal": Provide(provide_principal)},
    summary="Delete a file",
    tags=_TAGS,
    operation_class=documented(replies=docs.DELETE_FILE_REPLIES),
)
async def delete_file(principal: NamedDependency[Principal], state: State, file_id: FileId) -> Response[bytes]:
    files = files_of(state)
    if not await files.records.delete(principal.user_id, file_id):
        raise _missing(file_id)
    await _delete_bytes(files, file_id)
    return _json({"id": file_id, "object": "file", "deleted": True})


ROUTES = [
    options_for("/v1/files", create_file, list_files),
    options_for("/v1/files/{file_id:str}", retrieve_file, delete_file),
    create_file,
    list_files,
    retrieve_file,
    file_content,
    delete_file,
]
