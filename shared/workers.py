"""What a worker records in Redis about itself and the jobs it runs.

- ``WorkerInfo`` (``keys.worker_info``), with its heartbeat: the providers it holds keys for and the queues it
  serves; read by the API's worker directory and by batch runners (which give way to interactive workers).
- ``RunningJob`` (``keys.worker_jobs``), written when it claims a job; read by the API's sweeper, which then
  frees the job's stream lease and ends its stream with ``worker_lost`` if the worker died.
"""

import msgspec

from shared.tasks import QueueName

__all__ = ["RunningJob", "WorkerInfo"]


class WorkerInfo(msgspec.Struct, frozen=True, kw_only=True):
    pid: int = 0
    providers: list[str] = []
    concurrency: int = 0
    #: a worker from before queues were announced serves the interactive one
    queues: list[str] = msgspec.field(default_factory=lambda: [QueueName.INTERACTIVE.value])


class RunningJob(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    #: the key of the job's concurrent-stream lease ("" when it holds none)
    lease: str = ""
    #: the reply channel of the API process relaying it
    reply_to: str = ""
