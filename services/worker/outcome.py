"""What a job publishes from its upstream's pieces, and what it keeps of them (``Outcome``): whether content went
out (then nothing is retried), the usage and finish the upstream reported, the model it named, and the text
for the job-end hooks that need it."""

import msgspec

from services.worker.providers.base import (
    FinishPiece,
    ModelPiece,
    NativePiece,
    Piece,
    ReasoningPiece,
    SourcePiece,
    TextPiece,
    ToolCallPiece,
    UsagePiece,
)
from services.worker.publisher import JobPublisher
from shared.events import ModelInfo, Native, ReasoningDelta, Source, TextDelta, ToolCallDelta, Usage
from shared.jobs import GenerationJob, message_text
from shared.tokens import estimate_tokens, tokens_for_chars

__all__ = ["Outcome", "announce", "publish_piece", "usage_of"]


class Outcome:
    """What a job published so far, and what its upstream reported."""

    def __init__(self) -> None:
        self.usage: UsagePiece | None = None
        self.finish: FinishPiece | None = None
        self.content = False  # text, reasoning or a tool call was published: never call the upstream again
        self.provider = ""  # the provider and upstream model of the target being streamed
        self.model = ""
        self.chars = 0  # characters of text, reasoning and tool arguments published (for an estimated usage)
        self.meta: ModelPiece | None = None  # what the upstream being streamed said of its model
        self.announced = False  # ModelInfo was published
        self.parts: list[str] | None = None  # the text published, kept for the job-end hooks that need it


def announce(publisher: JobPublisher, outcome: Outcome) -> None:
    """ModelInfo, once, just before the first content (or the end): in the same flush as what follows it."""
    if not outcome.announced:
        outcome.announced = True
        meta = outcome.meta or ModelPiece("")
        publisher.emit(ModelInfo(seq=0, model=meta.model or outcome.model, system_fingerprint=meta.system_fingerprint))


def publish_piece(piece: Piece, publisher: JobPublisher, outcome: Outcome) -> None:
    match piece:
        case TextPiece(text=text, logprobs=logprobs, choice=choice):
            if text:
                announce(publisher, outcome)
                if logprobs is None:
                    publisher.emit_text(text, choice)
                else:  # its own event: the logprobs belong to this text alone
                    publisher.emit(TextDelta(seq=0, text=text, logprobs=logprobs, choice=choice))
                if outcome.parts is not None and not choice:
                    outcome.parts.append(text)
                outcome.content = True
                outcome.chars += len(text)
        case ModelPiece():
            outcome.meta = piece
        case ReasoningPiece(text=text, choice=choice):
            announce(publisher, outcome)
            publisher.emit(ReasoningDelta(seq=0, text=text, choice=choice))
            outcome.content = True
            outcome.chars += len(text)
        case ToolCallPiece(index=index, id=call_id, name=name, arguments=arguments, choice=choice):
            announce(publisher, outcome)
            publisher.emit(ToolCallDelta(seq=0, index=index, id=call_id, name=name, arguments=arguments, choice=choice))
            outcome.content = True
            outcome.chars += len(arguments) + len(name or "")
        case SourcePiece():
            announce(publisher, outcome)
            publisher.emit(Source(seq=0, **msgspec.structs.asdict(piece)))
        case NativePiece(data=data, chars=chars):
            announce(publisher, outcome)
            publisher.emit(Native(seq=0, data=data))
            outcome.content = True
            outcome.chars += chars
        case UsagePiece():
            outcome.usage = piece
        case FinishPiece():
            outcome.finish = piece


def usage_of(job: GenerationJob, outcome: Outcome) -> Usage | None:
    """The upstream's last usage report; for a job cut short after some output without one, an estimate
    from what was published (the prompt estimated from the job's messages)."""
    usage = outcome.usage
    if usage is not None:
        return Usage(
            seq=0,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
        )
    if not outcome.chars:
        return None
    prompt = sum(estimate_tokens(message_text(message)) for message in job.messages)
    return Usage(seq=0, prompt_tokens=prompt, completion_tokens=tokens_for_chars(outcome.chars), estimated=True)
