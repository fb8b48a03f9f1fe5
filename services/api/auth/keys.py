"""API keys: ``sk-conduit-…`` secrets shown once; Redis keeps only their SHA-256, with whose key it is.

A key's record (``conduit:apikey:<sha256>``) holds its id, user, tier, name, creation and expiry times,
revocation time and limits of its own; ``conduit:apikeys`` maps ids to hashes for listing and revoking.
Every request with a key reads its record, so a revoked or expired key is refused at once, on every
replica. Its last use is a key of its own, written at most once a minute per key and API process (never
the record: a write racing a revocation must not undo it).
"""

import hashlib
import secrets
import time
import uuid
from typing import cast

import msgspec
import redis.asyncio as aioredis

from services.api.tiers import Limits
from shared import keys

__all__ = ["KEY_PREFIX", "ApiKey", "KeyStore", "is_api_key", "key_hash"]

KEY_PREFIX = "sk-conduit-"
TOUCH_EVERY = 60.0


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
            pipe.set(keys.api_key(digest), _ENCODE(record))
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
            await self._redis.set(keys.api_key_used(key_hash(secret)), str(now))

    async def list(self, user: str | None = None) -> list[ApiKey]:
        digests = [d.decode() for d in cast(dict[bytes, bytes], await self._redis.hgetall(keys.API_KEYS)).values()]
        if not digests:
            return []
        raws = cast(list[bytes | None], await self._redis.mget([keys.api_key(d) for d in digests]))
        used = cast(list[bytes | None], await self._redis.mget([keys.api_key_used(d) for d in digests]))
        found = [
            msgspec.structs.replace(_DECODE(raw), last_used=float(when or 0))
            for raw, when in zip(raws, used, strict=True)
            if raw is not None
        ]
        return sorted((k for k in found if user is None or k.user == user), key=lambda k: k.created)

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
            await self._redis.set(key, _ENCODE(record))
        return record
