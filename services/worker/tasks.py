"""Thin tasks: decode, hand to the pipeline, return nothing."""

import logging

import msgspec
from celery import Celery

from services.worker.runtime import get_runtime
from shared.codec import decode_job, decode_job_head
from shared.errors import ErrorCode
from shared.events import Failed
from shared.jobs import GenerationJob
from shared.tasks import TaskName

__all__ = ["register_tasks"]

log = logging.getLogger("conduit.worker")


def _undecodable(payload: object, exc: Exception) -> tuple[GenerationJob, Failed] | None:
    """A job this worker cannot decode fails alone: its stand-in, and its error (``None``: not even its
    id can be read, so there is nobody to tell)."""
    head = decode_job_head(payload)
    reason = "it nests too deeply" if isinstance(exc, RecursionError) else str(exc)
    if head is None:
        log.error("dropped a job that could not be decoded, nor its id (%s)", reason)
        return None
    log.error("job %s could not be decoded: %s", head.id, reason)
    message = f"the job could not be decoded by the worker ({reason})"
    return head, Failed(seq=0, code=ErrorCode.INVALID_REQUEST, message=message)


def register_tasks(app: Celery) -> None:
    @app.task(name=TaskName.GENERATE_JOBS.value, ignore_result=True)
    def generate_jobs(jobs: list[object]) -> None:
        decoded: list[GenerationJob] = []
        refused: list[tuple[GenerationJob, Failed]] = []
        for job in jobs:
            try:
                decoded.append(decode_job(job))
            except (msgspec.DecodeError, RecursionError, UnicodeError) as exc:
                if (failure := _undecodable(job, exc)) is not None:
                    refused.append(failure)
        if refused:
            get_runtime().refuse(refused)
        get_runtime().submit(decoded)

    @app.task(name=TaskName.RUN_BATCH.value, ignore_result=True)
    def run_batch(batch_id: str) -> None:
        get_runtime().run_batch(batch_id)
