"""``RedisFileRecords``: file records in Redis.

A record is one key (``shared.keys.file``), the record as JSON, expiring with the file (``expires_at``); the
owner's files are a sorted set by creation time (``user_files``), read a page at a time by a script that also
drops the entries of expired records. Deleting checks the owner in the same script step.
"""

import importlib.resources
import time
from typing import Any

import msgspec
import redis.asyncio as aioredis

from services.redis_calls import GroupedCalls, raised, script_sha
from services.stores.files import FilePage, FileRecord
from shared import keys

__all__ = ["RedisFileRecords"]

_SCRIPTS = importlib.resources.files("services.stores")
_PAGE = _SCRIPTS.joinpath("file_page.lua").read_text()
_DELETE = _SCRIPTS.joinpath("file_delete.lua").read_text()
_decode = msgspec.json.Decoder(FileRecord).decode
_encode = msgspec.json.Encoder().encode


class RedisFileRecords:
    def __init__(self, redis: "aioredis.Redis") -> None:
        # every call on a connection of its own, grouped (each may run twice: a closed connection is resent)
        self._calls = GroupedCalls(redis, scripts=[_PAGE, _DELETE], resend=True)

    async def aclose(self) -> None:
        await self._calls.aclose()

    async def add(self, record: FileRecord) -> None:
        expiry: tuple[Any, ...] = ("EXAT", record.expires_at) if record.expires_at else ()
        created = time.time() * 1000
        raised(
            await self._calls(
                [
                    ("SET", keys.file(record.id), _encode(record), *expiry),
                    ("ZADD", keys.user_files(record.owner), created, record.id),
                ]
            )
        )

    async def get(self, owner: str, file_id: str) -> FileRecord | None:
        (raw,) = raised(await self._calls([("GET", keys.file(file_id))]))
        if raw is None:
            return None
        record = _decode(raw)
        return record if record.owner == owner else None

    async def page(
        self, owner: str, *, limit: int, after: str | None, newest_first: bool, purpose: str | None
    ) -> FilePage | None:
        args = (after or "", max(limit, 0), keys.file(""), "1" if newest_first else "0", purpose or "")
        (reply,) = raised(await self._calls([("EVALSHA", script_sha(_PAGE), 1, keys.user_files(owner), *args)]))
        if reply is None:
            return None
        return FilePage(files=[_decode(raw) for raw in reply[1:]], has_more=reply[0] == 1)

    async def delete(self, owner: str, file_id: str) -> bool:
        command = ("EVALSHA", script_sha(_DELETE), 2, keys.file(file_id), keys.user_files(owner), owner, file_id)
        (deleted,) = raised(await self._calls([command]))
        return bool(deleted == 1)
