"""One asyncio loop per worker process, in a daemon thread, shared by every job the process runs.

Celery's consumer only hands jobs over (the solo pool runs the task inline): it takes one of
``concurrency`` slots per job (waiting while all are taken, which stops it from fetching more) and
returns at once; the job then runs as a task on the loop and frees its slot when it has published its
terminal event. So thousands of open streams cost thousands of small tasks, not thousands of threads.
The loop holds one httpx client (connection pool) and one Redis pool for all jobs, a subscriber on the
cancel channel, and the worker's presence: a heartbeat every ``presence_interval`` that also renews the
stream leases of the jobs it runs (``claims.py``). Jobs handed over together are claimed together (one
round trip) before they start; a job another copy of which was claimed elsewhere is skipped.

Stopping waits up to ``shutdown_grace`` for running jobs, then cancels the rest, which end
``worker_lost`` (retryable): no job is left without a terminal event.
"""

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any

import httpx
import msgspec
import uvloop
from prometheus_client import start_http_server

from services.proxy_config import proxy_policy, proxy_sealer
from services.stores.chats import ChatLimits
from services.stores.file_stores import close_file_store, file_store
from services.stores.redis_batches import RedisBatchStore
from services.stores.redis_chats import RedisChatStore
from services.telemetry.metrics import REGISTRY
from services.worker.accounting import Ledger
from services.worker.batch_lines import CollectingSink
from services.worker.batches import BatchRunner
from services.worker.cancels import CancelListener, redis_client
from services.worker.chat_replies import ChatReplies
from services.worker.claims import JobClaims
from services.worker.egress import GuardedTransport
from services.worker.generate import PipelineContext, run_job
from services.worker.http_client import UpstreamClient, upstream_client
from services.worker.interactive import InteractiveWatch
from services.worker.metrics import IN_FLIGHT, JobMetrics
from services.worker.providers.registry import Streamer, build_streamers
from services.worker.publisher import JobPublisher
from services.worker.settings import WorkerSettings
from services.worker.sink import RedisSink
from services.worker.titles import Titler
from shared import keys
from shared.catalog import Catalog
from shared.codec import encode_record
from shared.config import SettingsError
from shared.errors import InvalidRequestError
from shared.events import Failed
from shared.jobs import GenerationJob, StreamRecord
from shared.workers import WorkerInfo

__all__ = ["WorkerRuntime", "get_runtime", "start_runtime", "stop_runtime"]

log = logging.getLogger("conduit.worker")

PRESENCE_TTL = 15.0


class WorkerRuntime:
    def __init__(self, settings: WorkerSettings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self.pid = os.getpid()
        self.loop = uvloop.new_event_loop()
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._refusing: set[asyncio.Task[None]] = set()
        self._claiming: set[asyncio.Task[None]] = set()
        self._batch_tasks: set[asyncio.Task[None]] = set()
        self._slots = threading.BoundedSemaphore(settings.concurrency)
        self._thread = threading.Thread(target=self.loop.run_forever, name="conduit-loop", daemon=True)
        self._thread.start()
        self._call(self._start())

    def _call(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        settings = self.settings
        self.redis = redis_client(settings.redis_url, pooled=True)
        self.cancels = CancelListener(settings.redis_url, self.redis, self._running)
        self.client = upstream_client(
            httpx.Timeout(connect=settings.connect_timeout, read=settings.read_timeout, write=30.0, pool=30.0),
            httpx.Limits(
                max_connections=settings.max_upstream_connections or settings.concurrency,
                max_keepalive_connections=256,
                keepalive_expiry=30,
            ),
        )
        self.proxy_client = UpstreamClient(
            timeout=httpx.Timeout(connect=settings.connect_timeout, read=settings.read_timeout, write=30.0, pool=30.0),
            transport=GuardedTransport(
                httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=64, keepalive_expiry=30),
                proxy_policy(settings),
                max_bytes=settings.proxy_max_response_bytes,
            ),
            trust_env=False,
            follow_redirects=False,
        )
        self.ledger = Ledger(self.redis)
        self.metrics = JobMetrics(self.catalog)
        self.claims = JobClaims(self.redis, settings.worker_name, settings.lease_ttl)
        self.sink = RedisSink(self.redis, settings.log_ttl, settings.total_timeout + settings.log_ttl)
        streamers = build_streamers(settings.echo_delay)
        self.context = PipelineContext(
            settings,
            self.catalog,
            self.client,
            self.sink,
            streamers,
            self.cancels.requested,
            self._watched,
            (self.ledger.on_end, self._chat_replies(streamers).on_end, self.metrics.on_end),
            self.proxy_client,
            proxy_sealer(settings),
            self.metrics,
        )
        IN_FLIGHT.labels("interactive").set_function(lambda: len(self._running))
        IN_FLIGHT.labels("batch").set_function(lambda: len(self._batch_tasks))
        if settings.metrics_port:
            try:
                start_http_server(settings.metrics_port, settings.metrics_host, registry=REGISTRY)
            except OSError as exc:  # the jobs matter more than their figures: serve them, say why there are none
                log.error("no /metrics on %s:%d: %s", settings.metrics_host, settings.metrics_port, exc)  # noqa: TRY400 - the reason is enough
        self.batches = self._batch_runner(streamers)
        self._tasks = [
            asyncio.create_task(self.cancels.listen(), name="cancel-listener"),
            asyncio.create_task(self._announce(), name="presence"),
        ]

    def _batch_runner(self, streamers: dict[str, Streamer]) -> BatchRunner:
        """Batch lines run through the same pipeline, their events collected, with no job-end hooks (a line's
        usage is counted with its result)."""
        settings, sink = self.settings, CollectingSink()
        self.batch_store = RedisBatchStore(self.redis)
        self.files = files = file_store(settings, os.environ)
        context = PipelineContext(settings, self.catalog, self.client, sink, streamers)
        return BatchRunner(
            self.batch_store,
            files,
            context,
            sink,
            name=settings.worker_name,
            concurrency=settings.batch_concurrency,
            attempts=settings.batch_attempts,
            hold=settings.batch_hold,
            interactive=InteractiveWatch(self.redis, roster_every=settings.presence_interval * 2),
            give_way=settings.batch_give_way,
        )

    def run_batch(self, batch_id: str) -> None:
        """Start running a batch on the loop (from the consumer thread); returns at once."""
        self.loop.call_soon_threadsafe(self._start_batch, batch_id)

    def _start_batch(self, batch_id: str) -> None:
        task = self.loop.create_task(self._run_batch(batch_id), name=f"batch:{batch_id}")
        self._batch_tasks.add(task)
        task.add_done_callback(self._batch_tasks.discard)

    async def _run_batch(self, batch_id: str) -> None:
        try:
            await self.batches.run(batch_id)
        except Exception:  # its hold runs out; the API's sweeper hands the batch to a runner again
            log.exception("batch %s: its runner failed", batch_id)

    def _chat_replies(self, streamers: dict[str, Streamer]) -> ChatReplies:
        store = RedisChatStore(self.redis, ChatLimits())
        self.titler = None
        if self.settings.chat_title_model:
            try:
                self.titler = Titler(store, self.settings, self.catalog, self.client, streamers)
            except InvalidRequestError as exc:
                raise SettingsError(f"CONDUIT_CHAT_TITLE_MODEL: {exc.message}") from None
        return ChatReplies(store, self.titler)

    # -- jobs -------------------------------------------------------------------------------------

    async def _watched(self, job: GenerationJob) -> bool:
        try:
            return bool(await self.redis.exists(keys.job_watch(job.id)))
        except Exception:  # Redis unreachable: nobody can be watching through it
            return False

    def submit(self, jobs: list[GenerationJob]) -> None:
        """Start ``jobs`` on the loop as slots free up; blocks the calling (consumer) thread only until then.

        Jobs that got a slot are handed over together (one wake-up of the loop), before waiting for more."""
        start = 0
        for end in range(len(jobs)):
            if not self._slots.acquire(blocking=False):
                self._hand_over(jobs[start:end])
                start = end
                self._slots.acquire()
        self._hand_over(jobs[start:])

    def _hand_over(self, jobs: list[GenerationJob]) -> None:
        if not jobs:
            return
        try:
            self.loop.call_soon_threadsafe(self._start_jobs, jobs)
        except RuntimeError:  # the loop is closed: the worker is stopping
            for _ in jobs:
                self._slots.release()
            raise

    def _start_jobs(self, jobs: list[GenerationJob]) -> None:
        task = self.loop.create_task(self._claim_and_start(jobs), name="claim")
        self._claiming.add(task)
        task.add_done_callback(self._claiming.discard)

    async def _claim_and_start(self, jobs: list[GenerationJob]) -> None:
        """Start the jobs this worker is the first to claim; another copy of a job claimed elsewhere is skipped
        (its message was sent again while this worker held it: see ``claims.py``)."""
        try:
            claimed = await self.claims.claim(jobs)
        except Exception as exc:  # Redis unreachable: the jobs will fail to publish and say so
            log.warning("could not claim %d jobs (%s); running them unclaimed", len(jobs), exc)
            claimed = [True] * len(jobs)
        for job, mine in zip(jobs, claimed, strict=True):
            if mine:
                self._running[job.id] = self.loop.create_task(self._run(job), name=f"job:{job.id}")
            else:
                log.info("job %s was started by another worker; skipped", job.id)
                self._slots.release()

    async def _run(self, job: GenerationJob) -> None:
        try:
            await run_job(job, self.context)
        except Exception:
            log.exception("job %s could not publish its outcome", job.id)
        finally:
            self._running.pop(job.id, None)
            self.claims.finished(job.id)
            self._slots.release()

    def refuse(self, failures: list[tuple[GenerationJob, Failed]]) -> None:
        """End jobs that could not be decoded (stand-ins from ``decode_job_head``), each with its own error;
        they take no slot."""
        self.loop.call_soon_threadsafe(self._start_refusals, failures)

    def _start_refusals(self, failures: list[tuple[GenerationJob, Failed]]) -> None:
        for job, failed in failures:
            task = self.loop.create_task(self._refuse(job, failed), name=f"refuse:{job.id}")
            self._refusing.add(task)
            task.add_done_callback(self._refusing.discard)

    async def _refuse(self, job: GenerationJob, failed: Failed) -> None:
        if not await self._claim_refused(job):
            return
        owner = job.principal.user_id
        record = None
        if job.view is not None:
            view = StreamRecord(owner=owner, view=job.view, stream=job.stream, on_disconnect=job.on_disconnect)
            record = encode_record(view)
        publisher = JobPublisher(self.sink, job.id, self.settings.heartbeat_interval, job.reply_to, record=record)
        admission = job.admission
        release = ("ZREM", keys.lease(admission.subject), job.id) if admission is not None and admission.lease else None
        try:
            await publisher.close(failed, release)
        except Exception:
            log.exception("job %s could not publish its failure", job.id)
        if owner:
            self.ledger.add(job, None, job.provider, job.model)  # returns its token reservation

    async def _claim_refused(self, job: GenerationJob) -> bool:
        """A refused job is claimed too (unregistered: it ends at once), so a copy of it is not refused twice."""
        try:
            return (await self.claims.claim([job], register=False))[0]
        except Exception:
            return True

    async def _announce(self) -> None:
        name = self.settings.worker_name
        settings = self.settings
        info = msgspec.json.encode(
            WorkerInfo(
                pid=self.pid,
                providers=sorted(settings.credentials),
                concurrency=settings.concurrency,
                queues=list(settings.queues),
            )
        )
        failing = False
        while True:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    await self.claims.announce(pipe, PRESENCE_TTL * 4)
                    pipe.set(keys.worker_info(name), info, ex=int(PRESENCE_TTL))
                    self.claims.beat(pipe)
                    await pipe.execute()
                failing = False
            except Exception as exc:
                if not failing:  # once per outage: it beats twice a second
                    log.warning("could not announce worker presence: %s", exc)
                failing = True
            await asyncio.sleep(self.settings.presence_interval)

    # -- shutdown ---------------------------------------------------------------------------------

    def stop(self) -> None:
        grace = self.settings.shutdown_grace
        try:
            self._call(self._stop(grace), timeout=grace + 15)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)

    async def _finish_jobs(self, grace: float) -> None:
        running = list(self._running.values())
        if running:
            log.info("waiting up to %g s for %d running jobs", grace, len(running))
            _, pending = await asyncio.wait(running, timeout=grace)
            if pending:
                log.warning("cancelling %d jobs still running after %g s", len(pending), grace)
                self.context.shutting_down = True
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=10)

    async def _stop(self, grace: float) -> None:
        for task in self._batch_tasks:  # their lines in flight end; the rest are another runner's (no result yet)
            task.cancel()
        if self._batch_tasks:
            await asyncio.wait(self._batch_tasks, timeout=grace)
        await self._finish_jobs(grace)
        for task in self._tasks:
            task.cancel()
        name = self.settings.worker_name
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(keys.WORKERS, name)
                pipe.delete(keys.worker_info(name), keys.worker_jobs(name))
                await pipe.execute()
        except Exception as exc:
            log.warning("could not withdraw worker presence: %s", exc)
        if self.titler is not None:
            await self.titler.aclose()
        await self.client.aclose()
        await self.proxy_client.aclose()
        await self.ledger.aclose()
        await self.claims.aclose()
        await self.sink.aclose()
        await self.batch_store.aclose()
        await close_file_store(self.files)
        await self.redis.aclose()


_runtime: WorkerRuntime | None = None
_lock = threading.Lock()


def start_runtime(settings: WorkerSettings, catalog: Catalog) -> WorkerRuntime:
    """The runtime of this process, started on first use (and again in a forked child)."""
    global _runtime  # noqa: PLW0603 - one runtime per process, by design
    with _lock:
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = WorkerRuntime(settings, catalog)
        return _runtime


def get_runtime() -> WorkerRuntime:
    if _runtime is None or _runtime.pid != os.getpid():
        raise RuntimeError("the worker runtime was not started (worker_init signal)")
    return _runtime


def stop_runtime() -> None:
    global _runtime  # noqa: PLW0603
    with _lock:
        if _runtime is not None and _runtime.pid == os.getpid():
            _runtime.stop()
        _runtime = None
