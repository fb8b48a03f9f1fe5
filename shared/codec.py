"""The only msgspec encoders and decoders for internal messages.

A replay-stream entry is one msgpack array of events: the worker coalesces what it has into one round
trip. The live copy goes to the reply channel of the API process relaying the job, framed as
``job id + "\n" + events`` so one subscription serves every job of that process.

A job travels in its Celery message as a JSON text of its own (``encode_job``), not as nested builtins:
kombu decodes a message whole, with the stdlib's recursive ``json``, so one job nested too deeply for it
would cost every job of the message (up to 32, of any users). As a string, each job is decoded by itself
(``decode_job``), and one that cannot be still yields its id and reply channel (``decode_job_head``), for
an error of its own.
"""

import msgspec

from shared.events import Event
from shared.jobs import Admission, GenerationJob, OnDisconnect, Principal, StreamRecord, StreamView
from shared.jsondepth import flatten_below

__all__ = [
    "decode_events",
    "decode_job",
    "decode_job_head",
    "decode_record",
    "encode_events",
    "encode_job",
    "encode_record",
    "frame_reply",
    "job_to_builtins",
    "log_entry_id",
    "split_reply",
]

_ENCODER = msgspec.msgpack.Encoder()
_EVENTS = msgspec.msgpack.Decoder(list[Event])
_RECORD = msgspec.msgpack.Decoder(StreamRecord)
_JSON = msgspec.json.Encoder()
_JOB = msgspec.json.Decoder(GenerationJob)


def encode_events(events: list[Event]) -> bytes:
    return _ENCODER.encode(events)


def decode_events(payload: bytes) -> list[Event]:
    return _EVENTS.decode(payload)


def log_entry_id(last_seq: int) -> str:
    """The replay-log entry id of a batch of events ending with ``last_seq``: entries after seq N are
    exactly those after ``log_entry_id(N)`` (``XRANGE key (1-N +``), the first of them possibly holding
    a few events up to N as well."""
    return f"1-{last_seq}"


def encode_record(record: StreamRecord) -> bytes:
    return _ENCODER.encode(record)


def decode_record(payload: bytes) -> StreamRecord:
    return _RECORD.decode(payload)


def frame_reply(job_id: str, payload: bytes) -> bytes:
    return job_id.encode() + b"\n" + payload


def split_reply(message: bytes) -> tuple[bytes, bytes]:
    """``(job id, events payload)`` of a reply-channel message (job ids never contain a newline)."""
    job_id, _, payload = message.partition(b"\n")
    return job_id, payload


def job_to_builtins(job: GenerationJob) -> dict[str, object]:
    """The job as JSON-ready builtins."""
    result: dict[str, object] = msgspec.to_builtins(job)
    return result


def encode_job(job: GenerationJob) -> str:
    """The job as the JSON text it travels in as a Celery task argument (see the module's docstring)."""
    return _JSON.encode(job).decode()


def decode_job(payload: object) -> GenerationJob:
    """Re-validate a task argument into a job: its JSON text, or builtins (as APIs before ``encode_job``
    sent it). Raises ``msgspec.ValidationError`` or ``msgspec.DecodeError``, and ``RecursionError`` for a
    job nested too deeply to decode here."""
    if isinstance(payload, str):
        return _JOB.decode(payload)
    return msgspec.convert(payload, GenerationJob)


class _JobHead(msgspec.Struct, kw_only=True):
    """The outer fields of a job: who to tell, and how, that it failed."""

    id: str
    request_id: str = ""
    principal: Principal | None = None
    provider: str = ""
    model: str = ""
    stream: bool = True
    reply_to: str = ""
    view: StreamView | None = None
    on_disconnect: OnDisconnect = "cancel"
    name: str = ""
    admission: Admission | None = None


_HEAD = msgspec.json.Decoder(_JobHead)


def _shallow(payload: dict[object, object]) -> dict[object, object]:
    """A job's builtins down to its second level (deeper containers dropped)."""

    def scalar(value: object) -> bool:
        return not isinstance(value, dict | list)

    return {
        key: value
        for key, value in payload.items()
        if scalar(value) or (isinstance(value, dict) and all(scalar(v) for v in value.values()))
    }


def decode_job_head(payload: object) -> GenerationJob | None:
    """A stand-in for a job that ``decode_job`` refused: its id, principal, reply channel, view and admission
    (what its failure needs), with no messages; ``None`` if even those cannot be read."""
    try:
        if isinstance(payload, str):
            head = _HEAD.decode(flatten_below(payload.encode(), 2))
        elif isinstance(payload, dict):
            head = msgspec.convert(_shallow(payload), _JobHead)
        else:
            return None
    except (msgspec.DecodeError, RecursionError, UnicodeEncodeError):
        return None
    fields = msgspec.structs.asdict(head)
    principal = head.principal or Principal(user_id="", tier="")
    return GenerationJob(**{**fields, "principal": principal}, messages=[])
