"""Creating, reading and cancelling a user's batches (the routes are the OpenAI dialect's)."""

import time
import uuid
from collections.abc import Mapping

from services.api.enqueue import Broker, TaskMessage
from services.api.ports import Directory
from services.api.tiers import TierPolicy
from services.stores.batches import BatchPage, BatchRecord, new_batch_id
from services.stores.files import FileRecords
from services.stores.redis_batches import RedisBatchStore
from shared.batches import lines_file_id
from shared.errors import ErrorCode, GatewayError, InvalidRequestError
from shared.jobs import Principal
from shared.tasks import QueueName, TaskName

__all__ = ["WINDOW", "BatchService", "run_batch_message"]

#: the one completion window OpenAI offers, in seconds
WINDOW = {"24h": 86_400}
MAX_METADATA, MAX_KEY, MAX_VALUE = 16, 64, 512


def run_batch_message(batch_id: str) -> TaskMessage:
    """The message handing a batch to the batch workers (whichever takes it first runs it)."""
    return TaskMessage(TaskName.RUN_BATCH, uuid.uuid4().hex, [batch_id], QueueName.BATCH, None, f"batch {batch_id}")


def _missing(kind: str, ident: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(f"No such {kind} object: {ident}", code=ErrorCode.NOT_FOUND, param=param)


def _check_metadata(metadata: Mapping[str, str] | None) -> None:
    if metadata is None:
        return
    if len(metadata) > MAX_METADATA:
        raise InvalidRequestError(f"metadata holds at most {MAX_METADATA} pairs", param="metadata")
    for key, value in metadata.items():
        if len(key) > MAX_KEY or len(value) > MAX_VALUE:
            raise InvalidRequestError(
                f"metadata keys are at most {MAX_KEY} characters and values at most {MAX_VALUE}", param="metadata"
            )


class BatchService:
    def __init__(
        self,
        store: RedisBatchStore,
        files: FileRecords,
        broker: Broker,
        directory: Directory,
        tiers: Mapping[str, TierPolicy],
    ) -> None:
        self.store = store
        self._files, self._broker, self._directory, self._tiers = files, broker, directory, tiers

    async def create(
        self,
        principal: Principal,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
        output_expires_after: int = 0,
    ) -> BatchRecord:
        owner = principal.user_id
        found = await self._files.get(owner, input_file_id)
        if found is None:
            raise _missing("File", input_file_id, "input_file_id")
        if found.purpose != "batch":
            raise InvalidRequestError(f"file {input_file_id} is not a batch input", param="input_file_id")
        if found.endpoint != endpoint:
            raise InvalidRequestError(
                f"the lines of {input_file_id} call {found.endpoint}, not {endpoint}", param="endpoint"
            )
        window = WINDOW.get(completion_window)
        if window is None:
            raise InvalidRequestError("completion_window must be '24h'", param="completion_window")
        _check_metadata(metadata)
        live = await self._directory.current()
        if not live.batch_workers:  # one may have started since the directory last looked
            live = await self._directory.current(fresh=True)
        if not live.batch_workers:
            raise GatewayError(
                "no batch worker is running (`conduit worker --queues batch`); try again once one is",
                code=ErrorCode.NO_WORKER,
            )
        absent = [provider for provider in found.providers if provider not in live.batch_providers]
        if absent:
            raise GatewayError(
                f"the file's lines use providers no batch worker is configured for now: {', '.join(absent)}",
                code=ErrorCode.PROVIDER_NOT_CONFIGURED,
                param="input_file_id",
            )
        tier = self._tiers.get(principal.tier, TierPolicy())
        now = int(time.time())
        record = BatchRecord(
            id=new_batch_id(),
            owner=owner,
            endpoint=endpoint,
            input_file_id=input_file_id,
            completion_window=completion_window,
            status="validating",
            created_at=now,
            expires_at=now + window,
            lines_file_id=lines_file_id(input_file_id),
            total=found.lines,
            metadata=metadata,
            output_expires_after=output_expires_after,
            tier=principal.tier,
            requests_per_minute=tier.requests_per_minute,
            tokens_per_minute=tier.tokens_per_minute,
        )
        await self.store.add(record)
        await self._broker.send([run_batch_message(record.id)])  # lost or not, the keeper sends it again
        return record

    async def get(self, owner: str, batch_id: str) -> BatchRecord:
        record = await self.store.get(owner, batch_id)
        if record is None:
            raise _missing("Batch", batch_id, "batch_id")
        return record

    async def page(self, owner: str, limit: int, after: str | None) -> BatchPage:
        page = await self.store.page(owner, limit=limit, after=after)
        if page is None:
            raise InvalidRequestError(f"no batch {after!r} of yours to list after", param="after")
        return page

    async def cancel(self, owner: str, batch_id: str) -> BatchRecord:
        record = await self.store.cancel(owner, batch_id, int(time.time()))
        if record is None:
            raise _missing("Batch", batch_id, "batch_id")
        return record
