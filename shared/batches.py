"""Batch contracts between the API and the batch workers.

A batch input is checked and translated once, by the API, as it is uploaded: each request line becomes a
``BatchLine`` (the canonical job it asks for, and how its answer is rendered), kept beside the file as JSONL
(``lines_file_id``). The batch workers run those, and never read a dialect's request format.
"""

import msgspec

from shared.jobs import ChatMessage, SamplingParams

__all__ = ["LINES_SUFFIX", "BatchLine", "decode_line", "encode_line", "lines_file_id"]


class BatchLine(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    custom_id: str
    provider: str
    model: str
    messages: list[ChatMessage]
    params: SamplingParams = SamplingParams()
    #: a legacy completion's prompt (see ``GenerationJob.prompt``)
    prompt: str | None = None
    #: how the answer's body is rendered: the dialect's encoder name, the response id's prefix (the job id
    #: follows it), and the model as the line named it
    dialect: str
    id_prefix: str
    model_named: str


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(BatchLine)


def encode_line(line: BatchLine) -> bytes:
    """One JSONL line (newline included)."""
    return _encoder.encode(line) + b"\n"


def decode_line(raw: bytes) -> BatchLine:
    return _decoder.decode(raw)


#: what an input file's id is followed by in its translated lines' id
LINES_SUFFIX = "-lines"


def lines_file_id(file_id: str) -> str:
    """The id, in the file store, of an input file's translated lines."""
    return f"{file_id}{LINES_SUFFIX}"
