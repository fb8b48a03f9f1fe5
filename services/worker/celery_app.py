"""The Celery app: ``create_celery(settings)``, and ``app`` for ``celery -A services.worker.celery_app``.

Every Celery setting lives in the block below. Generation is at-most-once, and no job is lost: messages
are acked early, and a job is claimed (``SET NX``, ``claims.py``) when a worker starts it. A job fetched
by a worker that died or froze before starting it is sent again by the API's sweeper (it watches the jobs
still pending), and whichever copy is claimed first runs; a job that started and lost its worker ends
``worker_lost`` (noticed by its heartbeat), never with a duplicated answer. Celery's own redelivery
(``acks_late`` with kombu's visibility timeout) was not enough: it redelivers a whole message of up to 32
jobs only after the timeout (an hour by default, and it must outlast the longest job), reruns the jobs of
it that had started, and still loses the message a frozen worker's BRPOP was answered with.
"""

import logging
import os
import sys
from pathlib import Path
from typing import Any

from celery import Celery, signals
from kombu import Queue

from services.telemetry.logs import configure_logging
from services.telemetry.traces import configure_tracing
from services.worker.runtime import start_runtime, stop_runtime
from services.worker.settings import WorkerSettings, load_worker_settings
from services.worker.tasks import register_tasks
from shared.catalog import DEFAULT_CATALOG_PATH, Catalog, CatalogError, load_catalog
from shared.config import SettingsError
from shared.heap import settle
from shared.tasks import QueueName

__all__ = ["POOL", "create_celery", "load_from_environ"]

#: the task only decodes a message's jobs and hands them to the event loop (see runtime.py), so it runs
#: inline in the consumer: a pool thread per message would cost a thread wake-up and GIL hand-off per job
POOL = "solo"


def create_celery(settings: WorkerSettings, catalog: Catalog) -> Celery:
    app = Celery("conduit", set_as_current=False)
    app.conf.update(
        broker_url=settings.broker,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # keep retrying under a supervisor; never give up silently
        broker_transport_options={
            "socket_timeout": 10,  # kombu's default None lets a silent Redis hang the consumer
            "socket_connect_timeout": 5,
            "retry_on_timeout": True,
            "health_check_interval": 10,
            # at-most-once: a fetched message is gone (no unacked hash and sorted set to write and clear
            # per message, and no redelivery an hour later of a job whose client left long ago)
            "ack_emulation": False,
        },
        task_queues=[Queue(QueueName.INTERACTIVE.value), Queue(QueueName.BATCH.value)],
        task_default_queue=QueueName.INTERACTIVE.value,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # results travel over pub/sub, not a result backend
        result_backend=None,
        task_acks_late=False,  # at-most-once: a retry after the first token would duplicate text
        worker_prefetch_multiplier=1,  # long tasks: hold only what runs
        worker_concurrency=1,  # the consumer runs the task itself and is free again at once
        worker_pool=POOL,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_enable_remote_control=False,  # no pidbox traffic on the broker
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    register_tasks(app)

    def _start(**_: Any) -> None:
        logging.getLogger("httpx").setLevel(logging.WARNING)
        configure_tracing("conduit-worker", os.environ)
        start_runtime(settings, catalog)

    def _stop(**_: Any) -> None:
        stop_runtime()

    def _ready(**_: Any) -> None:
        settle()  # start-up is over: what the process keeps is frozen out of the collector's way

    def _logging(loglevel: int | str | None = None, **_: Any) -> None:
        """Celery leaves the logging to this (connected, it configures none of its own)."""
        level = logging.getLevelName(loglevel) if isinstance(loglevel, str) else loglevel
        configure_logging(settings.log_format, level if isinstance(level, int) else logging.INFO)

    signals.setup_logging.connect(_logging, weak=False)
    signals.worker_init.connect(_start, weak=False)
    signals.worker_process_init.connect(_start, weak=False)
    signals.worker_ready.connect(_ready, weak=False)
    signals.worker_shutdown.connect(_stop, weak=False)
    signals.worker_process_shutdown.connect(_stop, weak=False)
    return app


def load_from_environ(environ: dict[str, str]) -> tuple[WorkerSettings, Catalog]:
    """Catalog and settings from the environment; raises ``SettingsError`` or ``CatalogError``."""
    path = environ.get("CONDUIT_CATALOG_PATH", "").strip()
    catalog = load_catalog(Path(path) if path else DEFAULT_CATALOG_PATH)
    return load_worker_settings(environ, catalog), catalog


_app: Celery | None = None


def __getattr__(name: str) -> Celery:
    """``app`` is built from the environment on first access (the ``celery -A`` entry point)."""
    global _app  # noqa: PLW0603
    if name not in {"app", "celery"}:
        raise AttributeError(name)
    if _app is None:
        try:
            _app = create_celery(*load_from_environ(dict(os.environ)))
        except (SettingsError, CatalogError) as exc:
            sys.exit(f"conduit worker: {exc}")
    return _app
