"""Task and queue names: the contract between the API and the worker."""

from enum import StrEnum

__all__ = ["QueueName", "TaskName"]


class TaskName(StrEnum):
    GENERATE_JOBS = "conduit.generate_jobs"  # args: a list of jobs (several per message)
    RUN_BATCH = "conduit.run_batch"  # args: a batch id


class QueueName(StrEnum):
    INTERACTIVE = "interactive"
    BATCH = "batch"
