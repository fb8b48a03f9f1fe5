"""Worker settings: the only place provider credentials live."""

import os
import socket
from collections.abc import Mapping
from typing import ClassVar

import msgspec

from services.proxy_config import proxy_policy, proxy_sealer
from services.shared_settings import SharedSettings
from services.stores.file_stores import check_file_store
from shared.catalog import Catalog
from shared.config import load_settings

__all__ = ["Credentials", "WorkerSettings", "load_worker_settings"]


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    api_key: str
    base_url: str


class WorkerSettings(SharedSettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    env_names: ClassVar[dict[str, str]] = {"redis_url": "REDIS_URL"}

    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Celery broker; defaults to ``redis_url`` (may be amqp:// for RabbitMQ)
    broker_url: str = ""
    #: worker name in presence records and logs; defaults to host:pid
    name: str = ""
    #: concurrent jobs per worker process (tasks on its event loop; the Celery pool only hands them over)
    concurrency: int = 2048
    #: on SIGTERM, how long running jobs may take to finish before they are ended ``worker_lost``
    shutdown_grace: float = 30.0
    catalog_path: str = ""
    connect_timeout: float = 10.0
    #: longest silence allowed between two upstream chunks
    read_timeout: float = 120.0
    #: longest a whole job may run
    total_timeout: float = 900.0
    #: retries of a retryable upstream failure before the first token (then the catalog's fallbacks)
    upstream_retries: int = 2
    #: first backoff between retries, doubled each time, with jitter
    retry_base_delay: float = 0.5
    #: longest wait before a retry, ``Retry-After`` included; an upstream asking for longer is not retried
    retry_max_delay: float = 8.0
    #: worker -> API heartbeat while the upstream is silent
    heartbeat_interval: float = 5.0
    #: how often the worker announces it is alive (and renews its jobs' stream leases, every third of
    #: ``lease_ttl``); the API declares a worker dead after its ``CONDUIT_WORKER_TIMEOUT`` of silence
    presence_interval: float = 0.5
    #: a concurrent-stream lease runs out this long after it was last renewed: the same variable as the API's
    lease_ttl: float = 30.0
    #: how long a job's flushes may reach nobody (its API process gone) before it stops, unless detached
    #: or watched by a resume: the resume window after an API replica dies. Long enough for a browser's
    #: EventSource (it reconnects after ~3 s, then backs off) and a phone between cells; the price is at
    #: most this long of generation for a job nobody comes back for, and only when a replica dies (a
    #: client that hangs up cancels its job at once)
    orphan_grace: float = 30.0
    #: how long a job's replay log is kept after its last event
    log_ttl: float = 600.0
    #: the largest answer a proxy endpoint's upstream may send (bytes); beyond it the job ends with an error
    proxy_max_response_bytes: int = 32_000_000
    #: lines of one batch in flight at once, and runs of a line that failed in a way worth retrying
    batch_concurrency: int = 64
    batch_attempts: int = 3
    #: a batch runner's hold on its batch, renewed every third of it: a runner that died lets go this long after
    batch_hold: float = 15.0
    #: a worker serving the batch queue alone lowers its CPU priority by this much (0: not), so that the API and
    #: the interactive workers on the same machine go first
    batch_nice: int = 10
    #: while interactive jobs run (on any worker), a batch hands out one line every this many seconds at most,
    #: so that it does not slow them down; 0: batches never give way (batch workers on machines of their own)
    batch_give_way: float = 0.05
    #: the queues this worker serves (``conduit worker --queues``), announced with its presence
    queues: tuple[str, ...] = ("interactive",)
    #: where this worker serves its Prometheus ``/metrics`` (a port of its own; 0: not served)
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 where a scraper on another host reads it (a container)
    #: pause between tokens of the offline echo provider
    echo_delay: float = 0.02
    #: open upstream connections per worker process; 0 = one per concurrent job
    max_upstream_connections: int = 0
    #: a model (as clients name one: ``openai/gpt-4o-mini``) that writes a better title for a new chat after its
    #: first reply, in the background; empty (the default): chats keep the title made from their first message
    chat_title_model: str = ""
    #: filled from the catalog's ``api_key_env`` / ``base_url_env`` variables, not from CONDUIT_*
    credentials: dict[str, Credentials] = {}  # noqa: RUF012 - a msgspec field (SharedSettings is a Struct)

    @property
    def worker_name(self) -> str:
        return self.name or f"{socket.gethostname()}:{os.getpid()}"

    @property
    def broker(self) -> str:
        return self.broker_url or self.redis_url


def load_worker_settings(environ: Mapping[str, str], catalog: Catalog) -> WorkerSettings:
    """Settings from ``environ`` plus the key and base URL of each catalog provider that has a key; a file store
    on S3 without its credentials is a ``SettingsError`` here, before the worker starts."""
    settings = load_settings(WorkerSettings, environ)
    check_file_store(settings, environ)
    proxy_policy(settings)
    proxy_sealer(settings)
    credentials: dict[str, Credentials] = {}
    for name, spec in catalog.providers.items():
        if spec.kind == "echo":
            credentials[name] = Credentials(api_key="", base_url="")
            continue
        key = environ.get(spec.api_key_env, "").strip() if spec.api_key_env else ""
        if not key:
            continue
        base_url = (environ.get(spec.base_url_env, "").strip() if spec.base_url_env else "") or spec.base_url
        credentials[name] = Credentials(api_key=key, base_url=base_url)
    return msgspec.structs.replace(settings, credentials=credentials)
