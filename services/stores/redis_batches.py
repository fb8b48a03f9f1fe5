"""``RedisBatchStore``: batch records in Redis.

A batch is a hash (``shared.keys.batch``), one field per record field (``metadata`` and ``errors`` as JSON,
a null one absent), so a runner can move its counters and status field by field; the owner's batches are a
sorted set by creation time (``user_batches``), paged by a script. Batch records have no TTL: OpenAI keeps
batch objects, and so does this store.
"""

import importlib.resources
import time
from typing import Any

import msgspec
import redis.asyncio as aioredis

from services.redis_calls import GroupedCalls, raised, script_sha
from services.stores.batches import BatchPage, BatchRecord
from shared import keys

__all__ = ["RedisBatchStore", "from_hash", "to_hash"]

_SCRIPTS = importlib.resources.files("services.stores")
_PAGE = _SCRIPTS.joinpath("batch_page.lua").read_text()
_CANCEL = _SCRIPTS.joinpath("batch_cancel.lua").read_text()
_JSON_FIELDS = ("metadata", "errors")


def to_hash(record: BatchRecord) -> list[Any]:
    """The record as hash fields and values, flat (a null field left out)."""
    flat: list[Any] = []
    for name, value in msgspec.structs.asdict(record).items():
        if value is None:
            continue
        flat += [name, msgspec.json.encode(value) if name in _JSON_FIELDS else str(value)]
    return flat


def from_hash(flat: list[bytes] | dict[bytes, bytes]) -> BatchRecord:
    pairs = flat.items() if isinstance(flat, dict) else zip(flat[::2], flat[1::2], strict=True)
    fields: dict[str, Any] = {}
    for name, value in pairs:
        key = name.decode()
        fields[key] = msgspec.json.decode(value) if key in _JSON_FIELDS else value.decode()
    return msgspec.convert(fields, BatchRecord, strict=False)


class RedisBatchStore:
    def __init__(self, redis: "aioredis.Redis") -> None:
        self._calls = GroupedCalls(redis, scripts=[_PAGE, _CANCEL], resend=True)

    async def aclose(self) -> None:
        await self._calls.aclose()

    async def add(self, record: BatchRecord) -> None:
        created = time.time() * 1000
        raised(
            await self._calls(
                [
                    ("HSET", keys.batch(record.id), *to_hash(record)),
                    ("ZADD", keys.user_batches(record.owner), created, record.id),
                ]
            )
        )

    async def get(self, owner: str, batch_id: str) -> BatchRecord | None:
        (flat,) = raised(await self._calls([("HGETALL", keys.batch(batch_id))]))
        if not flat:
            return None
        record = from_hash(flat)
        return record if record.owner == owner else None

    async def page(self, owner: str, *, limit: int, after: str | None) -> BatchPage | None:
        command = (
            "EVALSHA",
            script_sha(_PAGE),
            1,
            keys.user_batches(owner),
            after or "",
            max(limit, 0),
            keys.batch(""),
        )
        (reply,) = raised(await self._calls([command]))
        if reply is None:
            return None
        return BatchPage(batches=[from_hash(flat) for flat in reply[1:]], has_more=reply[0] == 1)

    async def cancel(self, owner: str, batch_id: str, now: int) -> BatchRecord | None:
        command = ("EVALSHA", script_sha(_CANCEL), 1, keys.batch(batch_id), owner, now)
        (flat,) = raised(await self._calls([command]))
        return None if flat is None else from_hash(flat)
