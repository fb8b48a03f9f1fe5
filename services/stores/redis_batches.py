"""``RedisBatchStore``: batch records in Redis.

A batch is a hash (``shared.keys.batch``), one field per record field (``metadata`` and ``errors`` as JSON,
a null one absent), so a runner can move its counters and status field by field; the owner's batches are a
sorted set by creation time (``user_batches``), paged by a script. Batch records have no TTL: OpenAI keeps
batch objects, and so does this store.
"""

import importlib.resources
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis

from services.redis_calls import GroupedCalls, raised, script_sha
from services.stores.batches import BatchPage, BatchRecord, LineResult
from shared import keys

__all__ = ["RedisBatchStore", "from_hash", "to_hash"]

_SCRIPTS = importlib.resources.files("services.stores")
_PAGE = _SCRIPTS.joinpath("ranked_page.lua").read_text()  # the chats' pages too
_CANCEL = _SCRIPTS.joinpath("batch_cancel.lua").read_text()
_STEP = _SCRIPTS.joinpath("batch_step.lua").read_text()
_LINE = _SCRIPTS.joinpath("batch_line.lua").read_text()
_LOCK = _SCRIPTS.joinpath("lock.lua").read_text()
_END = _SCRIPTS.joinpath("batch_end.lua").read_text()
_encode = msgspec.json.Encoder().encode
_result = msgspec.json.Decoder(LineResult).decode
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
        self._calls = GroupedCalls(redis, scripts=[_PAGE, _CANCEL, _STEP, _LOCK, _END], resend=True)
        # a line's result is recorded once whatever happens: a resend finds it recorded (HSETNX)
        self._lines = GroupedCalls(redis, scripts=[_LINE], resend=True)

    async def aclose(self) -> None:
        await self._calls.aclose()
        await self._lines.aclose()

    async def add(self, record: BatchRecord) -> None:
        created = time.time() * 1000
        raised(
            await self._calls(
                [
                    ("HSET", keys.batch(record.id), *to_hash(record)),
                    ("ZADD", keys.user_batches(record.owner), created, record.id),
                    ("SADD", keys.ACTIVE_BATCHES, record.id),
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
        return BatchPage(batches=[from_hash(flat) for _, flat in reply[1:]], has_more=reply[0] == 1)

    async def cancel(self, owner: str, batch_id: str, now: int) -> BatchRecord | None:
        command = ("EVALSHA", script_sha(_CANCEL), 1, keys.batch(batch_id), owner, now)
        (flat,) = raised(await self._calls([command]))
        return None if flat is None else from_hash(flat)

    # --- the batch workers' side ---

    async def take(self, batch_id: str, runner: str, ttl: float) -> bool:
        """Hold the batch for ``runner`` for ``ttl`` seconds (again: its hold restarts); ``False`` while another
        runner holds it."""
        command = ("EVALSHA", script_sha(_LOCK), 1, keys.batch_runner(batch_id), "take", runner, int(ttl * 1000))
        (holder,) = raised(await self._calls([command]))
        return holder is None

    async def let_go(self, batch_id: str, runner: str) -> None:
        raised(await self._calls([("EVALSHA", script_sha(_LOCK), 1, keys.batch_runner(batch_id), "drop", runner)]))

    async def _step(self, batch_id: str, step: str, now: int, ends_as: str = "") -> BatchRecord | None:
        (flat,) = raised(
            await self._calls([("EVALSHA", script_sha(_STEP), 1, keys.batch(batch_id), step, now, ends_as)])
        )
        return None if flat is None else from_hash(flat)

    async def start(self, batch_id: str, now: int) -> BatchRecord | None:
        """``validating`` -> ``in_progress``; the record as it is then (moved or not)."""
        return await self._step(batch_id, "start", now)

    async def finish(self, batch_id: str, now: int, ends_as: str) -> BatchRecord | None:
        """``in_progress`` or ``cancelling`` -> ``finalizing``, to end as ``ends_as`` (``cancelled`` if a cancel
        was asked meanwhile)."""
        return await self._step(batch_id, "finish", now, ends_as)

    async def status(self, batch_id: str) -> str | None:
        (status,) = raised(await self._calls([("HGET", keys.batch(batch_id), "status")]))
        return None if status is None else status.decode()

    async def recorded(self, batch_id: str, custom_ids: Sequence[str]) -> set[str]:
        """Which of these lines have a result already."""
        if not custom_ids:
            return set()
        (found,) = raised(await self._calls([("HMGET", keys.batch_results(batch_id), *custom_ids)]))
        return {custom_id for custom_id, result in zip(custom_ids, found, strict=True) if result is not None}

    async def record(self, record: BatchRecord, result: LineResult, provider: str, model: str, day: str) -> bool:
        """Keep ``result`` unless its line has one already, counting it into the batch and its owner's usage
        (marked as a batch's); ``False`` if the line had a result."""
        fields = [keys.usage_field(f"batch:{provider}", model, counter) for counter in keys.USAGE_COUNTERS]
        command = (
            "EVALSHA",
            script_sha(_LINE),
            3,
            keys.batch(record.id),
            keys.batch_results(record.id),
            keys.usage(record.owner, day),
            result.custom_id,
            _encode(result),
            "1" if result.ok else "0",
            result.input_tokens,
            result.output_tokens,
            *fields,
            keys.USAGE_TTL,
        )
        (recorded,) = raised(await self._lines([command]))
        return bool(recorded == 1)

    # --- the API's batch keeper ---

    async def active(self) -> list[tuple[str, str | None, bool]]:
        """The batches not ended yet: (id, status or ``None`` if its record is gone, whether a runner holds it)."""
        (ids,) = raised(await self._calls([("SMEMBERS", keys.ACTIVE_BATCHES)]))
        if not ids:
            return []
        names = [raw.decode() for raw in ids]
        commands = [
            command
            for batch_id in names
            for command in (("HGET", keys.batch(batch_id), "status"), ("EXISTS", keys.batch_runner(batch_id)))
        ]
        replies = raised(await self._calls(commands))
        return [
            (batch_id, None if status is None else status.decode(), bool(held))
            for batch_id, status, held in zip(names, replies[::2], replies[1::2], strict=True)
        ]

    async def read(self, batch_id: str) -> BatchRecord | None:
        """Whoever's it is (the keeper's read)."""
        (flat,) = raised(await self._calls([("HGETALL", keys.batch(batch_id))]))
        return from_hash(flat) if flat else None

    async def results(self, batch_id: str, custom_ids: Sequence[str]) -> list[LineResult | None]:
        if not custom_ids:
            return []
        (found,) = raised(await self._calls([("HMGET", keys.batch_results(batch_id), *custom_ids)]))
        return [None if raw is None else _result(raw) for raw in found]

    async def end(self, batch_id: str, now: int, output_file_id: str | None, error_file_id: str | None) -> bool:
        command = (
            "EVALSHA",
            script_sha(_END),
            3,
            keys.batch(batch_id),
            keys.batch_results(batch_id),
            keys.ACTIVE_BATCHES,
            batch_id,
            now,
            output_file_id or "",
            error_file_id or "",
        )
        (ended,) = raised(await self._calls([command]))
        return bool(ended == 1)

    async def forget(self, batch_id: str) -> None:
        """Out of the set of batches not ended (one whose record is gone)."""
        raised(await self._calls([("SREM", keys.ACTIVE_BATCHES, batch_id)]))
