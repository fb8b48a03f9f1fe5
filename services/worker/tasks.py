"""Thin tasks: decode, hand to the pipeline, return nothing."""

import logging

import msgspec
from celery import Celery

from services.worker.runtime import get_runtime
from shared.codec import decode_job
from shared.jobs import GenerationJob
from shared.tasks import TaskName

__all__ = ["register_tasks"]

log = logging.getLogger("conduit.worker")


def register_tasks(app: Celery) -> None:
    @app.task(name=TaskName.GENERATE_JOBS.value, ignore_result=True)
    def generate_jobs(jobs: list[object]) -> None:
        decoded: list[GenerationJob] = []
        for job in jobs:
            try:
                decoded.append(decode_job(job))
            except msgspec.ValidationError as exc:
                log.error("dropped a malformed job: %s", exc)  # noqa: TRY400 - the message says it all
        get_runtime().submit(decoded)
