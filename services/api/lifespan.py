"""Process-wide collaborators: Redis pools, the pub/sub hub, the job queue, the worker directory."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
import redis.exceptions
from litestar import Litestar
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff

from services.api.auth.keys import KeyStore
from services.api.batches.keeper import BatchKeeper
from services.api.batches.service import BatchService
from services.api.chats.service import ChatService
from services.api.deps import Files
from services.api.enqueue import Broker, CeleryBroker, JobQueue, RedisListBroker
from services.api.generation import GenerationService
from services.api.jobnames import RedisJobNames
from services.api.ratelimit.limiter import RedisLimiter
from services.api.relay.hub import PubSubHub
from services.api.relay.run import Gateway
from services.api.settings import ApiSettings
from services.api.sweeper import Sweeper
from services.api.workers import WorkerDirectory
from services.stores.chats import ChatLimits
from services.stores.file_stores import close_file_store, file_store
from services.stores.redis_batches import RedisBatchStore
from services.stores.redis_chats import RedisChatStore
from services.stores.redis_files import RedisFileRecords
from shared.heap import settle

__all__ = ["lifespan", "redis_client"]


def redis_client(
    url: str, *, pubsub: bool = False, blocking: bool = False, max_connections: int = 64
) -> "aioredis.Redis":
    """For commands: a pool that fails fast (a second or two) when Redis is down or silent. For pub/sub and
    blocking reads: no read timeout (the hub and the resume relay keep their own deadlines)."""
    if pubsub:
        return aioredis.Redis.from_url(url, socket_timeout=None, socket_connect_timeout=2.0, health_check_interval=30)
    # The retry must be the pool's: its connections retry with their own, not the client's. Once, and only
    # for a connection Redis closed (a restart leaves every pooled connection so): a silent Redis fails
    # after one read timeout, not two.
    backoff = NoBackoff() if blocking else ExponentialWithJitterBackoff(base=0.02, cap=0.1)
    retry = Retry(backoff, 1, supported_errors=(redis.exceptions.ConnectionError,))
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=2.0,
        socket_timeout=None if blocking else 1.0,
        socket_connect_timeout=1.0,
        retry=retry,
    )
    return aioredis.Redis(connection_pool=pool, retry=retry)


def _broker(settings: ApiSettings, redis: "aioredis.Redis") -> tuple[Broker, "aioredis.Redis | None"]:
    broker = settings.broker
    if broker == settings.redis_url:
        return RedisListBroker(redis), None
    if broker.startswith(("redis://", "rediss://", "unix://")):
        own = redis_client(broker)
        return RedisListBroker(own, redis), own
    return CeleryBroker(broker), None


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    settings: ApiSettings = app.state.settings
    redis = redis_client(settings.redis_url)
    blocking = redis_client(settings.redis_url, blocking=True, max_connections=256)
    hub = PubSubHub(redis_client(settings.redis_url, pubsub=True), queue_limit=settings.relay_queue)
    broker, broker_client = _broker(settings, redis)
    jobs = JobQueue(broker)
    directory = WorkerDirectory(redis)
    sweeper = Sweeper(redis, settings, broker_client or (redis if isinstance(broker, RedisListBroker) else None))
    await hub.start()
    await directory.start()
    await sweeper.start()
    app.state.redis = redis
    app.state.directory = directory
    app.state.api_keys = KeyStore(redis)
    limiter = RedisLimiter(redis, settings.lease_ttl)
    gateway = Gateway(settings, redis, hub, jobs, blocking, app.state.drain, limiter)
    app.state.gateway = gateway
    app.state.generation = GenerationService(
        settings=settings,
        catalog=app.state.catalog,
        tiers=app.state.tiers,
        jobs=gateway,
        limiter=limiter,
        directory=directory,
        names=RedisJobNames(redis),
    )
    store = RedisChatStore(
        redis, ChatLimits(max_chats=settings.chat_max_chats, max_messages=settings.chat_max_messages)
    )
    app.state.chats = ChatService(
        store,
        gateway,
        app.state.personas,
        max_messages=settings.chat_max_messages,
        lock_ttl=settings.queue_timeout + settings.chat_turn_timeout,
    )
    file_records = RedisFileRecords(redis)
    app.state.files = files = Files(file_store(settings, os.environ), file_records)
    batch_store = RedisBatchStore(redis)
    app.state.batches = BatchService(batch_store, file_records, broker, directory, app.state.tiers)
    keeper = BatchKeeper(redis, batch_store, files, broker, resend_after=settings.batch_resend_after)
    await keeper.start()
    settle()  # start-up is over: what the process keeps is frozen out of the collector's way
    try:
        yield
    finally:
        await keeper.stop()
        await sweeper.stop()
        await directory.stop()
        await hub.stop()
        await jobs.close()
        if broker_client is not None:
            await broker_client.aclose()
        await store.aclose()
        await file_records.aclose()
        await close_file_store(files.store)
        await batch_store.aclose()
        await blocking.aclose()
        await redis.aclose()
