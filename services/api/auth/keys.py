"""API keys: ``sk-conduit-…`` secrets shown once; Redis keeps only their SHA-256, with whose key it is.

A key's record (``conduit:apikey:<sha256>``) holds its id, user, tier, name, creation and expiry times,
revocation time and limits of its own; ``conduit:apikeys`` maps ids to hashes for listing and revoking.
Every request with a key reads its record, so a revoked or expired key is refused at once, on every
replica. Its last use is a key of its own, written at most once a minute per key and API process (never
the record: a write racing a revocation must not undo it), with the record's own TTL.

Lifetimes: the record of a key that never expires is kept until it is revoked. A revoked or expired key
stays listed (for audit) for ``KEY_RETENTION`` after its revocation or expiry, then Redis removes its record
and last use (TTLs set at creation for an expiry, at revocation otherwise). The index is kept; ``list``
drops the entries of records that are gone.
"""

import hashlib
import importlib.resources
import secrets
import time
import uuid
from collections.abc import Sequence
from typing import cast

import msgspec
import redis.asyncio as aioredis

from services.api.tiers import Limits
from shared import keys

__all__ = ["KEY_PREFIX", "KEY_RETENTION", "ApiKey", "KeyStore", "is_api_key", "key_hash"]

KEY_PREFIX = "sk-conduit-"
TOUCH_EVERY = 60.0
#: how long a revoked or expired key stays listed (for audit) before Redis removes it
KEY_RETENTION = 30 * 86400


class ApiKey(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    user: str
    tier: str
    name: str = ""
    created: float
    #: unix time after which it is refused; 0 = never
    expires: float = 0.0
    #: unix time it was revoked; 0 = not revoked
    revoked: float = 0.0
    limits: Limits = Limits()
    #: filled in by ``KeyStore.list`` (kept beside the record)
    last_used: float = 0.0

    def usable(self, now: float) -> bool:
        return not self.revoked and (not self.expires or now < self.expires)


_SCRIPTS = importlib.resources.files("services.api.auth")
_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(ApiKey).decode


def is_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    def __init__(self, redis: "aioredis.Redis") -> None:
        self._redis = redis
        self._touched: dict[str, float] = {}  # key id -> when this process last wrote its last use
        self._touch = redis.register_script(_SCRIPTS.joinpath("touch.lua").read_text())

    async def create(
        self, user: str, tier: str, name: str = "", expires: float = 0.0, limits: Limits | None = None
    ) -> tuple[str, ApiKey]:
        """A new key: its secret (to show once) and its record."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(
            id=f"key_{uuid.uuid4().hex[:16]}",
            user=user,
            tier=tier,
            name=name,
            created=time.time(),
            expires=expires,
            limits=limits or Limits(),
        )
        digest = key_hash(secret)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.api_key(digest), _ENCODE(record), exat=_removal(record))
            pipe.hset(keys.API_KEYS, record.id, digest)
            await pipe.execute()
        return secret, record

    async def lookup(self, secret: str) -> ApiKey | None:
        raw = cast(bytes | None, await self._redis.get(keys.api_key(key_hash(secret))))
        return None if raw is None else _DECODE(raw)

    async def touch(self, secret: str, record: ApiKey, now: float) -> None:
        """Record a use, at most once a minute (per API process)."""
        if now - self._touched.get(record.id, 0.0) >= TOUCH_EVERY:
            self._touched[record.id] = now
            if len(self._touched) > 100_000:  # noqa: PLR2004 - bounded: forget the oldest
                del self._touched[next(iter(self._touched))]
            digest = key_hash(secret)
            await self._touch(keys=[keys.api_key(digest), keys.api_key_used(digest)], args=[str(now)])

    async def list(self, user: str | None = None) -> list[ApiKey]:
        index = {
            k.decode(): d.decode()
            for k, d in cast(dict[bytes, bytes], await self._redis.hgetall(keys.API_KEYS)).items()
        }
        if not index:
            return []
        raws = cast(list[bytes | None], await self._redis.mget([keys.api_key(d) for d in index.values()]))
        used = cast(list[bytes | None], await self._redis.mget([keys.api_key_used(d) for d in index.values()]))
        found = [
            msgspec.structs.replace(_DECODE(raw), last_used=float(when or 0))
            for raw, when in zip(raws, used, strict=True)
            if raw is not None
        ]
        await self._tidy(index, found)
        return sorted((k for k in found if user is None or k.user == user), key=lambda k: k.created)

    async def _tidy(self, index: dict[str, str], found: Sequence[ApiKey]) -> None:
        """Drop the index entries of records Redis has removed, and give the records of revoked or expiring
        keys that an older version wrote without a TTL their TTL."""
        present = {key.id for key in found}
        if gone := [key_id for key_id in index if key_id not in present]:
            await self._redis.hdel(keys.API_KEYS, *gone)
        ending = [(index[key.id], removal) for key in found if (removal := _removal(key)) is not None]
        if not ending:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for digest, _ in ending:
                pipe.ttl(keys.api_key(digest))
            ttls = cast(list[int], await pipe.execute())
        for (digest, removal), ttl in zip(ending, ttls, strict=True):
            if ttl == -1:
                await self._expire(digest, removal)

    async def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke ``key_id``; its record, or None if there is no such key."""
        digest = cast(bytes | None, await self._redis.hget(keys.API_KEYS, key_id))
        if digest is None:
            return None
        key = keys.api_key(digest.decode())
        raw = cast(bytes | None, await self._redis.get(key))
        if raw is None:
            return None
        record = _DECODE(raw)
        if not record.revoked:
            record = msgspec.structs.replace(record, revoked=time.time())
            removal = _removal(record) or int(record.revoked + KEY_RETENTION)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(key, _ENCODE(record), exat=removal)
                pipe.expireat(keys.api_key_used(digest.decode()), removal)
                await pipe.execute()
        return record

    async def _expire(self, digest: str, removal: int) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.expireat(keys.api_key(digest), removal)
            pipe.expireat(keys.api_key_used(digest), removal)
            await pipe.execute()


def _removal(record: ApiKey) -> int | None:
    """When Redis removes the record (unix time): ``KEY_RETENTION`` after its revocation or expiry; None (kept)
    for a key that is neither revoked nor ever expires."""
    ends = min(t for t in (record.revoked, record.expires, float("inf")) if t)
    return None if ends == float("inf") else int(ends + KEY_RETENTION)
