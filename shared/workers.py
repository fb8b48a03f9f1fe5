"""What a worker records in Redis about a job it runs, for whoever notices the worker died.

Written by the worker when it claims a job (``keys.worker_jobs``); read by the API's sweeper, which then
frees the job's stream lease and ends its stream with ``worker_lost``.
"""

import msgspec

__all__ = ["RunningJob"]


class RunningJob(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    #: the key of the job's concurrent-stream lease ("" when it holds none)
    lease: str = ""
    #: the reply channel of the API process relaying it
    reply_to: str = ""
