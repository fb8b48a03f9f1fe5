"""The only msgspec encoders and decoders for internal messages.

A pub/sub message (and a replay-stream entry) is one msgpack array of events: the worker coalesces
what it has into one round trip.
"""

import msgspec

from shared.events import Event
from shared.jobs import GenerationJob

__all__ = ["decode_events", "decode_job", "encode_events", "job_to_builtins"]

_ENCODER = msgspec.msgpack.Encoder()
_EVENTS = msgspec.msgpack.Decoder(list[Event])


def encode_events(events: list[Event]) -> bytes:
    return _ENCODER.encode(events)


def decode_events(payload: bytes) -> list[Event]:
    return _EVENTS.decode(payload)


def job_to_builtins(job: GenerationJob) -> dict[str, object]:
    """The job as JSON-ready builtins, the form it travels in as a Celery task argument."""
    result: dict[str, object] = msgspec.to_builtins(job)
    return result


def decode_job(payload: object) -> GenerationJob:
    """Re-validate a task argument into a job (raises ``msgspec.ValidationError``)."""
    return msgspec.convert(payload, GenerationJob)
