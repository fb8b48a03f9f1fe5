"""The only msgspec encoders and decoders for internal messages.

A replay-stream entry is one msgpack array of events: the worker coalesces what it has into one round
trip. The live copy goes to the reply channel of the API process relaying the job, framed as
``job id + "\n" + events`` so one subscription serves every job of that process.
"""

import msgspec

from shared.events import Event
from shared.jobs import GenerationJob, StreamRecord

__all__ = [
    "decode_events",
    "decode_job",
    "decode_record",
    "encode_events",
    "encode_record",
    "frame_reply",
    "job_to_builtins",
    "log_entry_id",
    "split_reply",
]

_ENCODER = msgspec.msgpack.Encoder()
_EVENTS = msgspec.msgpack.Decoder(list[Event])
_RECORD = msgspec.msgpack.Decoder(StreamRecord)


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
    """The job as JSON-ready builtins, the form it travels in as a Celery task argument."""
    result: dict[str, object] = msgspec.to_builtins(job)
    return result


def decode_job(payload: object) -> GenerationJob:
    """Re-validate a task argument into a job (raises ``msgspec.ValidationError``)."""
    return msgspec.convert(payload, GenerationJob)
