"""Settings from the environment, read once at a process's entry point.

A settings type is a frozen ``msgspec.Struct``. Each field ``name`` reads ``{prefix}{NAME}`` unless the
type's ``env_names`` class variable maps it to a conventional name (``REDIS_URL``); a nested Struct field
reads ``{prefix}{NAME}_`` + its own fields. Values are coerced from strings; an empty value means unset.
A bad value raises ``SettingsError`` whose message starts with the variable's name.
"""

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

__all__ = ["SettingsError", "env_name_map", "load_settings", "redacted"]

T = TypeVar("T", bound=msgspec.Struct)

_SECRET_WORDS = ("key", "secret", "token", "password")
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]+@")


class SettingsError(ValueError):
    """A setting from the environment is missing or malformed."""


def _struct_fields(settings_type: type[msgspec.Struct]) -> list[tuple[str, Any]]:
    info = msgspec.inspect.type_info(settings_type)
    if not isinstance(info, msgspec.inspect.StructType):
        raise TypeError(f"{settings_type!r} is not a msgspec Struct")
    return [(field.name, field.type) for field in info.fields]


def _env_names(settings_type: type[msgspec.Struct]) -> dict[str, str]:
    names: dict[str, str] | None = getattr(settings_type, "env_names", None)
    return dict(names or {})


def env_name_map(settings_type: type[msgspec.Struct], prefix: str) -> dict[str, str]:
    """Dotted field path -> environment variable, for every leaf field (used in messages and docs)."""
    result: dict[str, str] = {}
    overrides = _env_names(settings_type)
    for name, type_info in _struct_fields(settings_type):
        if isinstance(type_info, msgspec.inspect.StructType):
            nested = env_name_map(type_info.cls, f"{prefix}{name.upper()}_")
            result.update({f"{name}.{path}": env for path, env in nested.items()})
        else:
            result[name] = overrides.get(name, f"{prefix}{name.upper()}")
    return result


def _gather(settings_type: type[msgspec.Struct], environ: Mapping[str, str], prefix: str) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    overrides = _env_names(settings_type)
    for name, type_info in _struct_fields(settings_type):
        if isinstance(type_info, msgspec.inspect.StructType):
            nested = _gather(type_info.cls, environ, f"{prefix}{name.upper()}_")
            if nested:
                raw[name] = nested
            continue
        value = environ.get(overrides.get(name, f"{prefix}{name.upper()}"), "")
        if value.strip():
            raw[name] = value.strip()
    return raw


def load_settings(settings_type: type[T], environ: Mapping[str, str], prefix: str = "CONDUIT_") -> T:
    """Build ``settings_type`` from ``environ``; raise ``SettingsError`` naming the bad variable."""
    raw = _gather(settings_type, environ, prefix)
    try:
        return msgspec.convert(raw, settings_type, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        names = env_name_map(settings_type, prefix)
        for path, env in sorted(names.items(), key=lambda item: -len(item[0])):
            if f"`$.{path}`" in text:
                raise SettingsError(f"{env}: {text.split(' - at ', maxsplit=1)[0]}") from exc
        raise SettingsError(f"settings: {text}") from exc


def redacted(settings: msgspec.Struct) -> dict[str, Any]:
    """The settings as a dict, every secret-looking field masked: the only form fit for a log line."""

    def mask(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return {key: mask(item, f"{path}.{key}") for key, item in value.items()}
        if value and any(word in path.lower() for word in _SECRET_WORDS):
            return "***"
        if isinstance(value, str):
            return _URL_PASSWORD.sub(r"\1***@", value)
        return value

    result: dict[str, Any] = mask(msgspec.to_builtins(settings), "")
    return result
