"""The original API's request extensions on ``/v1/chat/completions``, applied to the canonical job before any
provider sees it (so every provider gets them alike):

- ``tone``: ``precise``, ``balanced`` or ``creative``; a system instruction ahead of the conversation, and the
  tone's ``temperature`` when the client set none. Without ``tone`` nothing is added: a request that does not
  name one reaches the provider exactly as an OpenAI client wrote it.
- ``image``: an image URL (``https``, ``http`` or a bounded ``data:image``) that becomes an image part of the
  last user message, as an ``image_url`` content part there would.
"""

from typing import Literal, NamedTuple

import msgspec

from shared.errors import InvalidRequestError
from shared.jobs import ChatMessage, ContentPart, ImagePart, SamplingParams, TextPart

__all__ = ["TONES", "Tone", "ToneName", "with_image", "with_tone"]

ToneName = Literal["precise", "balanced", "creative"]


class Tone(NamedTuple):
    instruction: str
    temperature: float


TONES: dict[str, Tone] = {
    "precise": Tone(
        "Answer precisely: be accurate and concise, state facts plainly, and say so when you are not sure.", 0.2
    ),
    "balanced": Tone("Answer in a balanced way: clear and complete, in a natural, friendly voice.", 0.7),
    "creative": Tone("Answer creatively: be imaginative, vivid and original where the question allows it.", 1.0),
}


def with_tone(
    messages: list[ChatMessage], params: SamplingParams, tone: ToneName | None
) -> tuple[list[ChatMessage], SamplingParams]:
    if tone is None:
        return messages, params
    chosen = TONES[tone]
    if params.temperature is None:
        params = msgspec.structs.replace(params, temperature=chosen.temperature)
    return [ChatMessage(role="system", content=chosen.instruction), *messages], params


def with_image(messages: list[ChatMessage], image: str | None) -> list[ChatMessage]:
    if image is None:
        return messages
    last = max((index for index, message in enumerate(messages) if message.role == "user"), default=None)
    if last is None:
        raise InvalidRequestError("'image' is added to the last user message, and there is none", param="image")
    message = messages[last]
    parts: list[ContentPart] = (
        [TextPart(text=message.content)] if isinstance(message.content, str) else list(message.content or ())
    )
    parts.append(ImagePart(url=image))
    return [*messages[:last], msgspec.structs.replace(message, content=parts), *messages[last + 1 :]]
