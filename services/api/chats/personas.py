"""Personas: named system prompts with optional defaults, read from a TOML file.

The default file ships inside the package, next to this module (``personas.toml``, also reached as
``deploy/personas.toml`` in a checkout); ``CONDUIT_PERSONAS_PATH`` names another file::

    default = "maya"

    [personas.maya]
    description = "A warm, concise general assistant"   # one line
    system = "You are Maya, ..."                        # the system prompt
    temperature = 0.7                                   # optional, 0..2
    provider = "openai"                                 # optional: this provider's default model
    model = "openai/gpt-4o-mini"                        # optional: decides the provider

A missing or malformed file stops the API at start-up with a ``PersonasError`` naming the file and the field.
"""

import re
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from shared.catalog import Catalog, resolve_model
from shared.config import SettingsError
from shared.errors import InvalidRequestError

__all__ = [
    "DEFAULT_PERSONAS_PATH",
    "Persona",
    "Personas",
    "PersonasError",
    "check_personas",
    "load_personas",
    "persona_object",
]

#: package data, so an installed wheel has it too
DEFAULT_PERSONAS_PATH = Path(__file__).resolve().with_name("personas.toml")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class PersonasError(SettingsError):
    """The personas file is missing or malformed; the message names the file and the field."""


class _Entry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[personas.<name>]`` table as written in the file."""

    description: str
    system: str
    provider: str = ""
    model: str = ""
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None


class _File(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    default: str
    #: converted one by one, so that an error names its persona (msgspec shows a dict key as ``[...]``)
    personas: dict[str, dict[str, object]]


class Persona(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A named system prompt; ``provider``/``model``/``temperature`` are its defaults (empty/None: the gateway's)."""

    name: str
    description: str
    system: str
    provider: str = ""
    model: str = ""
    temperature: float | None = None


class Personas(msgspec.Struct, frozen=True, kw_only=True):
    """Every persona by name, and the one used when a request names none."""

    default: str
    by_name: dict[str, Persona]

    def names(self) -> list[str]:
        """The persona names, sorted."""
        return sorted(self.by_name)

    def get(self, name: str | None) -> Persona:
        """The persona ``name`` (the default for None or ""); a 400 naming the known ones for an unknown name."""
        persona = self.by_name.get(name or self.default)
        if persona is None:
            known = ", ".join(self.names())
            raise InvalidRequestError(f"Unknown persona {name!r}; the personas are: {known}", param="persona")
        return persona


def _check(path: Path, name: str, fields: dict[str, object]) -> Persona:
    where = f"personas file {path}: persona {name!r}"
    if not _NAME.match(name):
        raise PersonasError(f"personas file {path}: persona name {name!r} must match {_NAME.pattern}")
    try:
        entry = msgspec.convert(fields, _Entry)
    except msgspec.ValidationError as exc:
        raise PersonasError(f"{where}: {str(exc).replace('`$', f'`$.personas.{name}')}") from exc
    description, system = entry.description.strip(), entry.system.strip()
    if not description:
        raise PersonasError(f"{where}: `description` must not be empty")
    if "\n" in description:
        raise PersonasError(f"{where}: `description` must be one line")
    if not system:
        raise PersonasError(f"{where}: `system` (the system prompt) must not be empty")
    if entry.provider.strip() != entry.provider or (entry.provider and not _NAME.match(entry.provider)):
        raise PersonasError(f"{where}: `provider` {entry.provider!r} is not a provider name")
    if entry.model.strip() != entry.model:
        raise PersonasError(f"{where}: `model` {entry.model!r} has surrounding whitespace")
    return Persona(
        name=name,
        description=description,
        system=system,
        provider=entry.provider,
        model=entry.model,
        temperature=entry.temperature,
    )


def load_personas(path: Path) -> Personas:
    """Decode and check the personas file; any error is a ``PersonasError`` naming the file (fail fast at start-up)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PersonasError(f"personas file {path}: cannot be read: {exc.strerror or exc}") from exc
    try:
        data = msgspec.toml.decode(raw, type=_File)
    except msgspec.ValidationError as exc:
        raise PersonasError(f"personas file {path}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise PersonasError(f"personas file {path}: not valid TOML: {exc}") from exc
    by_name = {name: _check(path, name, entry) for name, entry in data.personas.items()}
    if not by_name:
        raise PersonasError(f"personas file {path}: `personas` must have at least one [personas.<name>] table")
    if data.default not in by_name:
        known = ", ".join(sorted(by_name))
        raise PersonasError(f"personas file {path}: `default` {data.default!r} is not one of its personas ({known})")
    return Personas(default=data.default, by_name=by_name)


def persona_object(persona: Persona, default: bool) -> dict[str, object]:
    """A persona as ``GET /api/v1/personas`` lists it; unset options are left out.

    The system prompt is included: it is what the persona is told, not a secret.
    """
    body: dict[str, object] = {"name": persona.name, "description": persona.description, "system": persona.system}
    if persona.provider:
        body["provider"] = persona.provider
    if persona.model:
        body["model"] = persona.model
    if persona.temperature is not None:
        body["temperature"] = persona.temperature
    body["default"] = default
    return body


def check_personas(personas: Personas, catalog: Catalog, path: Path) -> None:
    """Every persona's ``provider`` is one of the catalog's and its ``model`` resolves (else ``PersonasError``)."""
    for persona in personas.by_name.values():
        if persona.provider and persona.provider not in catalog.providers:
            known = ", ".join(sorted(catalog.providers))
            raise PersonasError(
                f"personas file {path}: persona {persona.name!r} names provider {persona.provider!r}, not one of the "
                f"catalog's ({known})"
            )
        if persona.model:
            try:
                resolve_model(catalog, persona.model)
            except InvalidRequestError as exc:
                raise PersonasError(f"personas file {path}: persona {persona.name!r}: {exc.message}") from None
