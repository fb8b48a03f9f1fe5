"""Task and queue names: the contract between the API and the worker."""

from enum import StrEnum

__all__ = ["QueueName", "TaskName"]


class TaskName(StrEnum):
    GENERATE = "conduit.generate"


class QueueName(StrEnum):
    INTERACTIVE = "interactive"
    BATCH = "batch"
