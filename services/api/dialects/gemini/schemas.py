"""The ``GenerateContentRequest`` of Gemini's API as msgspec Structs: attribute = proto name, key = camelCase.

Each Struct forbids unknown fields: ``services.api.dialects.gemini.reader`` has already read the body the
way Google does (names, enum spellings, numbers in strings) and handed ``msgspec.convert`` only what it
took. The metadata on the fields tells the reader how to read each one: an enum's names (in number order),
base64 ``bytes``, or an object whose insides are Google's to check; ``proto_fields`` turns it into one
``ProtoField`` per name Google reads.
"""

import functools
from typing import Annotated, Any, ClassVar, NamedTuple

import msgspec
from msgspec import Meta
from msgspec import inspect as mi

__all__ = [
    "PROTO_PACKAGE",
    "Blob",
    "CodeExecutionResult",
    "Content",
    "ExecutableCode",
    "FileData",
    "GeminiFunctionCall",
    "FunctionCallingConfig",
    "FunctionDeclaration",
    "FunctionResponse",
    "FunctionResponseBlob",
    "FunctionResponseFileData",
    "FunctionResponsePart",
    "GenerateContentRequest",
    "GenerationConfig",
    "Part",
    "ProtoEnum",
    "ProtoField",
    "ProtoMessage",
    "SafetySetting",
    "ThinkingConfig",
    "GeminiTool",
    "ToolConfig",
    "proto_fields",
]

#: the proto package of every message and enum below (for ``type.googleapis.com/...`` in errors)
PROTO_PACKAGE = "google.ai.generativelanguage.v1beta"


class ProtoEnum(NamedTuple):
    proto: str  # the type's name under PROTO_PACKAGE
    names: tuple[str, ...]  # in number order; empty: any name goes (values Google adds often)
    numbered: bool = True  # False where the numbers are not known: a number passes as itself


def _enum_of(proto: str, names: str, prefix: str = "", *, numbered: bool = True) -> Meta:
    return Meta(extra={"enum": ProtoEnum(proto, tuple(prefix + name for name in names.split()), numbered)})


Bytes = Annotated[str, Meta(extra={"bytes": True})]  # base64, as proto3 JSON writes bytes
JsonObject = Annotated[dict[str, Any], Meta(extra={"object": "google.protobuf.Struct"})]
# its insides are Google's to check
Schema = Annotated[dict[str, Any], Meta(extra={"object": f"{PROTO_PACKAGE}.Schema"})]
Free = Annotated[dict[str, Any], Meta(extra={"object": ""})]  # a message whose insides are Google's to check
_HARMS = "UNSPECIFIED DEROGATORY TOXICITY VIOLENCE SEXUAL MEDICAL DANGEROUS HARASSMENT HATE_SPEECH SEXUALLY_EXPLICIT"
HarmCategory = Annotated[str, _enum_of("HarmCategory", f"{_HARMS} DANGEROUS_CONTENT CIVIC_INTEGRITY", "HARM_CATEGORY_")]
_THRESHOLDS = (
    "HARM_BLOCK_THRESHOLD_UNSPECIFIED BLOCK_LOW_AND_ABOVE BLOCK_MEDIUM_AND_ABOVE BLOCK_ONLY_HIGH BLOCK_NONE OFF"
)
Threshold = Annotated[str, _enum_of("SafetySetting.HarmBlockThreshold", _THRESHOLDS)]
Mode = Annotated[str, _enum_of("FunctionCallingConfig.Mode", "MODE_UNSPECIFIED AUTO ANY NONE VALIDATED")]
Language = Annotated[str, _enum_of("ExecutableCode.Language", "LANGUAGE_UNSPECIFIED PYTHON")]
Outcome = Annotated[str, _enum_of("CodeExecutionResult.Outcome", "UNSPECIFIED OK FAILED DEADLINE_EXCEEDED", "OUTCOME_")]
Modality = Annotated[str, _enum_of("GenerationConfig.Modality", "MODALITY_UNSPECIFIED TEXT IMAGE AUDIO VIDEO")]
MediaResolution = Annotated[
    str, _enum_of("GenerationConfig.MediaResolution", "UNSPECIFIED LOW MEDIUM HIGH", "MEDIA_RESOLUTION_")
]
_LEVELS = "THINKING_LEVEL_UNSPECIFIED MINIMAL LOW MEDIUM HIGH"
ThinkingLevel = Annotated[str, _enum_of("ThinkingConfig.ThinkingLevel", _LEVELS, numbered=False)]
Behavior = Annotated[str, _enum_of("FunctionDeclaration.Behavior", "UNSPECIFIED BLOCKING NON_BLOCKING")]
Scheduling = Annotated[str, _enum_of("FunctionResponse.Scheduling", "", numbered=False)]
ServiceTier = Annotated[str, _enum_of("ServiceTier", "", numbered=False)]


class ProtoMessage(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True, forbid_unknown_fields=True):
    #: the message's name under PROTO_PACKAGE (the class name unless set), for ``type.googleapis.com/...``
    #: in errors
    proto: ClassVar[str] = ""
    #: field -> the oneof it belongs to
    oneofs: ClassVar[dict[str, str]] = {}


class Blob(ProtoMessage):
    mime_type: str | None = None
    data: Bytes | None = None


class FileData(ProtoMessage):
    mime_type: str | None = None
    file_uri: str | None = None


class FunctionResponseBlob(Blob):
    proto = "FunctionResponseBlob"


class FunctionResponseFileData(FileData):
    proto = "FunctionResponseFileData"


class FunctionResponsePart(ProtoMessage):
    oneofs = dict.fromkeys(("inline_data", "file_data"), "data")
    inline_data: FunctionResponseBlob | None = None
    file_data: FunctionResponseFileData | None = None


class GeminiFunctionCall(ProtoMessage):
    id: str | None = None
    name: str = ""
    args: JsonObject | None = None


class FunctionResponse(ProtoMessage):
    id: str | None = None
    name: str = ""
    response: JsonObject | None = None
    parts: list[FunctionResponsePart] = []
    will_continue: bool | None = None
    scheduling: Scheduling | None = None


class ExecutableCode(ProtoMessage):
    id: str | None = None
    language: Language | None = None
    code: str = ""


class CodeExecutionResult(ProtoMessage):
    id: str | None = None
    outcome: Outcome | None = None
    output: str | None = None


_DATA = ("text", "inline_data", "function_call", "function_response", "file_data", "executable_code")


class Part(ProtoMessage):
    oneofs = dict.fromkeys((*_DATA, "code_execution_result", "tool_call", "tool_response"), "data")
    text: str | None = None
    inline_data: Blob | None = None
    function_call: GeminiFunctionCall | None = None
    function_response: FunctionResponse | None = None
    file_data: FileData | None = None
    executable_code: ExecutableCode | None = None
    code_execution_result: CodeExecutionResult | None = None
    tool_call: Free | None = None
    tool_response: Free | None = None
    thought: bool | None = None
    thought_signature: Bytes | None = None
    video_metadata: Free | None = None
    media_resolution: Free | None = None
    part_metadata: JsonObject | None = None
    audio_transcription: Free | None = None

    def has_data(self) -> bool:
        """Whether the ``data`` oneof is set; an empty text counts as unset, as Google counts it."""
        return bool(self.text) or any(getattr(self, name) is not None for name in self.oneofs if name != "text")


class Content(ProtoMessage):
    parts: list[Part] = []
    role: str | None = None


class FunctionDeclaration(ProtoMessage):
    name: str = ""
    description: str | None = None
    parameters: Schema | None = None
    parameters_json_schema: Any = None
    response: Schema | None = None
    response_json_schema: Any = None
    behavior: Behavior | None = None


class GeminiTool(ProtoMessage):
    function_declarations: list[FunctionDeclaration] = []
    google_search_retrieval: Free | None = None
    code_execution: Free | None = None
    google_search: Free | None = None
    computer_use: Free | None = None
    url_context: Free | None = None
    file_search: Free | None = None
    google_maps: Free | None = None
    mcp_servers: list[Free] = []


class FunctionCallingConfig(ProtoMessage):
    mode: Mode | None = None
    allowed_function_names: list[str] = []


class ToolConfig(ProtoMessage):
    function_calling_config: FunctionCallingConfig | None = None
    retrieval_config: Free | None = None
    include_server_side_tool_invocations: bool | None = None


class SafetySetting(ProtoMessage):
    category: HarmCategory | None = None
    threshold: Threshold | None = None


class ThinkingConfig(ProtoMessage):
    include_thoughts: bool | None = None
    thinking_budget: int | None = None
    thinking_level: ThinkingLevel | None = None


class GenerationConfig(ProtoMessage):
    candidate_count: int | None = None
    stop_sequences: list[str] = []
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_logprobs: bool | None = None
    logprobs: int | None = None
    enable_enhanced_civic_answers: bool | None = None
    response_mime_type: str | None = None
    response_schema: Schema | None = None
    response_json_schema: Any = None
    response_modalities: list[Modality] = []
    speech_config: Free | None = None
    thinking_config: ThinkingConfig | None = None
    image_config: Free | None = None
    media_resolution: MediaResolution | None = None
    audio_transcription_config: Free | None = None


class GenerateContentRequest(ProtoMessage):
    model: str | None = None
    contents: list[Content] = []
    system_instruction: Content | None = None
    tools: list[GeminiTool] = []
    tool_config: ToolConfig | None = None
    safety_settings: list[SafetySetting] = []
    generation_config: GenerationConfig | None = None
    cached_content: str | None = None
    service_tier: ServiceTier | None = None


# --- how each field reads: the Structs' own metadata, as the reader takes it ----------------------------


class ProtoField(NamedTuple):
    name: str  # proto name: paths use it
    wire: str  # camelCase: the key msgspec.convert reads
    kind: str  # message | object | any | enum | bytes | string | bool | int32 | float
    repeated: bool
    target: Any  # the Struct class (message), the ProtoEnum (enum) or the full proto name (object)
    oneof: str | None


_SCALAR_KINDS = {mi.StrType: "string", mi.BoolType: "bool", mi.IntType: "int32", mi.FloatType: "float"}


def _proto_field(cls: type[ProtoMessage], info: mi.Field) -> ProtoField:
    t = info.type
    if isinstance(t, mi.UnionType):
        t = next(u for u in t.types if not isinstance(u, mi.NoneType))
    repeated = isinstance(t, mi.ListType)
    if isinstance(t, mi.ListType):
        t = t.item_type
    extra: dict[str, Any] = {}
    if isinstance(t, mi.Metadata):
        extra, t = t.extra or {}, t.type
    kind, target = _SCALAR_KINDS.get(type(t), "any"), None
    if isinstance(t, mi.StructType):
        kind, target = "message", t.cls
    elif "object" in extra:
        kind, target = "object", extra["object"]
    elif "enum" in extra:
        kind, target = "enum", extra["enum"]
    elif "bytes" in extra:
        kind = "bytes"
    return ProtoField(info.name, info.encode_name, kind, repeated, target, cls.oneofs.get(info.name))


@functools.cache
def proto_fields(cls: type[ProtoMessage]) -> dict[str, ProtoField]:
    """A message's fields by each name Google reads: the JSON (camelCase) one and the proto one."""
    info = mi.type_info(cls)
    if not isinstance(info, mi.StructType):
        raise TypeError(f"{cls!r} is not a Struct")
    found = [_proto_field(cls, f) for f in info.fields]
    return {f.wire: f for f in found} | {f.name: f for f in found}
