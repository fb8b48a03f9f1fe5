"""Every Redis key and pub/sub channel name. Nothing else spells one."""

import hashlib

__all__ = [
    "ACTIVE_BATCHES",
    "API_KEYS",
    "USAGE_COUNTERS",
    "USAGE_TTL",
    "CANCEL_CHANNEL",
    "PREFIX",
    "WORKERS",
    "api_key",
    "api_key_used",
    "batch",
    "batch_keeper",
    "batch_results",
    "batch_runner",
    "chat",
    "chat_lock",
    "chat_messages",
    "file",
    "SWEEP_LOCK",
    "job_cancel",
    "job_claim",
    "job_log",
    "job_name",
    "job_record",
    "job_watch",
    "lease",
    "pending",
    "pending_jobs",
    "rate_requests",
    "rate_tokens",
    "replies",
    "usage",
    "usage_field",
    "user_batches",
    "user_chats",
    "user_files",
    "worker_info",
    "worker_jobs",
    "worker_reaped",
]

PREFIX = "conduit:"

#: channel on which the API announces cancelled job ids to every worker
CANCEL_CHANNEL = f"{PREFIX}cancel"

#: sorted set: worker name -> last heartbeat (unix seconds)
WORKERS = f"{PREFIX}workers"


#: hash: API key id -> the SHA-256 of its secret (the record's key)
API_KEYS = f"{PREFIX}apikeys"


def api_key(digest: str) -> str:
    """An API key's record, by the SHA-256 of its secret (the secret itself is never stored)."""
    return f"{PREFIX}apikey:{digest}"


def api_key_used(digest: str) -> str:
    """When an API key was last used (unix time), beside its record."""
    return f"{PREFIX}apikey:{digest}:used"


def rate_requests(subject: str) -> str:
    """GCRA state (theoretical arrival time) of a principal's requests-per-minute limit (has a TTL)."""
    return f"{PREFIX}rl:{subject}:req"


def rate_tokens(subject: str) -> str:
    """Token bucket of a principal's tokens-per-minute limit: hash ``tokens``, ``ts`` (has a TTL). The API
    reserves from it at admission; the worker settles the reservation with the real usage."""
    return f"{PREFIX}rl:{subject}:tok"


def lease(subject: str) -> str:
    """Sorted set of a principal's concurrent-stream leases: job id -> expiry (unix ms)."""
    return f"{PREFIX}lease:{subject}"


#: the counters of a usage hash, per provider and model
USAGE_COUNTERS = ("requests", "prompt_tokens", "completion_tokens")
#: how long a day's usage counters are kept (seconds)
USAGE_TTL = 400 * 86400


def usage(user_id: str, day: str) -> str:
    """Hash of a user's usage on a UTC day (``YYYY-MM-DD``): ``usage_field(...)`` -> count."""
    return f"{PREFIX}usage:{user_id}:{day}"


def usage_field(provider: str, model: str, counter: str) -> str:
    """A field of a usage hash: the worker counts into it, the API reads it back (split at the last ``|``)."""
    return f"{provider}/{model}|{counter}"


def replies(replica: str) -> str:
    """Pub/sub channel of one API process: workers publish the live events of every job it relays here,
    each message framed with its job id (``shared.codec.frame_reply``)."""
    return f"{PREFIX}replies:{replica}"


def job_log(job_id: str) -> str:
    """Capped stream of a job's events, for replay and resume (has a TTL)."""
    return f"{PREFIX}job:{job_id}:log"


def job_name(user_id: str, name: str) -> str:
    """The id of the job a user named (``x-conduit-job-name``): hashed, so any name makes a safe key (has a TTL)."""
    digest = hashlib.sha256(f"{user_id}\0{name}".encode()).hexdigest()[:40]
    return f"{PREFIX}jobname:{digest}"


def job_record(job_id: str) -> str:
    """The job's ``StreamRecord`` (owner, how to render it), written with its first events (has a TTL)."""
    return f"{PREFIX}job:{job_id}:record"


def job_watch(job_id: str) -> str:
    """Set (with a short TTL, refreshed) while an API replica other than the job's own relays a resume of it,
    so a worker does not take the job's silent reply channel for a client that left."""
    return f"{PREFIX}job:{job_id}:watch"


def job_cancel(job_id: str) -> str:
    """Flag set when the client of a job has gone (has a TTL)."""
    return f"{PREFIX}job:{job_id}:cancel"


def worker_info(name: str) -> str:
    """Hash describing one live worker: the providers it can serve (has a TTL)."""
    return f"{PREFIX}worker:{name}"


def worker_jobs(name: str) -> str:
    """Hash of the jobs one worker runs: job id -> ``shared.workers.RunningJob`` (JSON); written when it
    claims a job, read and deleted by whoever notices the worker is dead (has a TTL, refreshed by its heartbeat)."""
    return f"{PREFIX}worker:{name}:jobs"


def worker_reaped(name: str) -> str:
    """The heartbeat (score) after which a worker was declared dead, so one silence is reaped once (has a TTL)."""
    return f"{PREFIX}worker:{name}:reaped"


def job_claim(job_id: str) -> str:
    """The name of the worker that started the job: set once (``SET NX``), so a job runs at most once
    whatever copies of its message exist (has a TTL)."""
    return f"{PREFIX}job:{job_id}:claim"


def pending(queue: str) -> str:
    """Sorted set of the jobs sent to ``queue`` that no worker has started yet: job id -> when it was (re)sent
    (unix seconds). A job in it that is no longer in the queue and was not started soon is sent again."""
    return f"{PREFIX}pending:{queue}"


def pending_jobs(queue: str) -> str:
    """Hash beside ``pending(queue)``: job id -> the job as its Celery message carries it (JSON), to send it
    again."""
    return f"{PREFIX}pending:{queue}:jobs"


def chat(chat_id: str) -> str:
    """Hash of a chat's summary: ``owner``, ``title``, ``title_auto``, ``pinned``, ``created``, ``updated``,
    ``count``, ``preview``, ``persona``, ``scope``, ``username``, ``source``, ``forked_chat``, ``forked_message``
    (no TTL: a chat is kept until it is deleted)."""
    return f"{PREFIX}chat:{chat_id}"


def chat_messages(chat_id: str) -> str:
    """List of a chat's messages, oldest first, each a ``StoredMessage`` as JSON (no TTL, like its chat)."""
    return f"{PREFIX}chat:{chat_id}:messages"


def chat_lock(chat_id: str) -> str:
    """The id of the job generating a reply in a chat, while it does (has a TTL)."""
    return f"{PREFIX}chat:{chat_id}:lock"


def user_chats(user_id: str) -> str:
    """Sorted set of a user's chats: chat id -> its place in the list (pinned first, then latest activity);
    no TTL, an entry goes with its chat."""
    return f"{PREFIX}chats:{user_id}"


#: held (briefly) by the one API process that sweeps for dead workers and lost jobs this round
SWEEP_LOCK = f"{PREFIX}sweep"


def file(file_id: str) -> str:
    """A file's record (JSON, ``services.stores.files.FileRecord``); its TTL is the file's expiry, if any."""
    return f"{PREFIX}file:{file_id}"


def user_files(user_id: str) -> str:
    """Sorted set of a user's files: file id -> when it was created (ms); an entry whose record expired is
    dropped when a page of the list reaches it."""
    return f"{PREFIX}files:{user_id}"


def batch(batch_id: str) -> str:
    """A batch's record (hash: one field per ``services.stores.batches.BatchRecord`` field)."""
    return f"{PREFIX}batch:{batch_id}"


def batch_results(batch_id: str) -> str:
    """A batch's line results (hash: custom_id -> ``LineResult`` JSON), each written once."""
    return f"{PREFIX}batch:{batch_id}:results"


def user_batches(user_id: str) -> str:
    """Sorted set of a user's batches: batch id -> when it was created (ms)."""
    return f"{PREFIX}batches:{user_id}"


def batch_runner(batch_id: str) -> str:
    """The worker running a batch (its name), with a TTL it renews while it runs: a runner that died lets go."""
    return f"{PREFIX}batch:{batch_id}:runner"


#: Set of the batches not ended yet (validating, running, cancelling, finalizing): what the API's batch keeper
#: looks after; a batch leaves it when it ends
ACTIVE_BATCHES = f"{PREFIX}batches:active"


def batch_keeper(batch_id: str) -> str:
    """Held by the API process writing a batch's output and error files (with a TTL: one that died lets go)."""
    return f"{PREFIX}batch:{batch_id}:keeper"
