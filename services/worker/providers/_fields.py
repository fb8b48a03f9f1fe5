"""Which of a job's request fields a provider without OpenAI's wire format can take.

An OpenAI-compatible upstream gets every field a client sent. Anthropic and Gemini get each field their
adapter maps (a documented equivalent); any other field the client set is refused with a 400 naming the
field and the provider, never dropped. A field left at OpenAI's default (``n: 1``, ``logprobs: false``,
``store: false``, ...) asks for nothing and is accepted. The catalog's ``drop_params`` of a provider (data
an operator writes) may name OpenAI fields to drop for it instead.
"""

from typing import Any

from shared.errors import ErrorCode, InvalidRequestError
from shared.jobs import SamplingParams

__all__ = ["OPENAI_DEFAULTS", "check_fields", "search_location", "set_fields", "unsupported"]

#: values that ask for OpenAI's default behaviour: accepted by every provider
OPENAI_DEFAULTS: dict[str, Any] = {
    "n": 1,
    "logprobs": False,
    "top_logprobs": 0,
    "parallel_tool_calls": True,
    "store": False,
    "modalities": ["text"],
    "service_tier": "auto",
    "logit_bias": {},
    "metadata": {},
    "response_format": {"type": "text"},
    "echo": False,
    "best_of": 1,
    "internet": False,
    "citations": True,  # without internet it asks for nothing; with it, it is internet's default
    "raw": False,
}

#: the typed fields of SamplingParams, which carry OpenAI's names (``max_tokens`` covers max_completion_tokens)
_TYPED = tuple(name for name in SamplingParams.__struct_fields__ if name != "extra")
_UNSET: dict[str, Any] = {"stop": [], "tools": []}


def set_fields(params: SamplingParams) -> dict[str, Any]:
    """Every field the client set, typed and extra, by OpenAI name, except those at OpenAI's defaults."""
    fields = {name: getattr(params, name) for name in _TYPED}
    fields = {name: value for name, value in fields.items() if value is not None and value != _UNSET.get(name)}
    fields.update(params.extra)
    return {
        name: value for name, value in fields.items() if name not in OPENAI_DEFAULTS or OPENAI_DEFAULTS[name] != value
    }


def unsupported(field: str, provider: str, why: str = "") -> InvalidRequestError:
    detail = f": {why}" if why else ""
    return InvalidRequestError(
        f"'{field}' is not supported by provider {provider}{detail}. Leave it out, or use a model of a provider "
        f"that supports it.",
        code=ErrorCode.UNSUPPORTED_PARAMETER,
        param=field,
    )


def check_fields(params: SamplingParams, provider: str, mapped: frozenset[str], dropped: list[str]) -> None:
    """Refuse the first field the client set that the adapter does not map (``mapped``) or the catalog drops."""
    for field in set_fields(params):
        if field not in mapped and field not in dropped:
            raise unsupported(field, provider)


def search_location(params: SamplingParams, provider: str, located: bool) -> dict[str, str]:
    """OpenAI's ``web_search_options`` for a provider whose own search stands in for OpenAI's: the approximate
    ``user_location`` (its ``city``, ``region``, ``country``, ``timezone``) where the provider's search takes one
    (``located``), and ``search_context_size`` at OpenAI's default (``medium``) only: no other provider has it."""
    options = params.extra.get("web_search_options")
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise InvalidRequestError("'web_search_options' must be an object", param="web_search_options")
    if options.get("search_context_size", "medium") != "medium":
        raise unsupported("web_search_options.search_context_size", provider, "only medium, its default")
    location = options.get("user_location")
    if location is None:
        return {}
    if not located:
        raise unsupported("web_search_options.user_location", provider, "its search takes no location")
    approximate = location.get("approximate") if isinstance(location, dict) else None
    if not isinstance(approximate, dict) or location.get("type") != "approximate":
        message = '\'web_search_options.user_location\' must be {"type": "approximate", "approximate": {...}}'
        raise InvalidRequestError(message, param="web_search_options.user_location")
    fields = ("city", "region", "country", "timezone")
    return {name: approximate[name] for name in fields if isinstance(approximate.get(name), str)}
