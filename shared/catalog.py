"""The model catalog and model-name resolution.

The default catalog ships inside the package, next to this module (``shared/providers.toml``, also reached as
``deploy/providers.toml`` in a checkout); ``CONDUIT_CATALOG_PATH`` names another file.

Adding an OpenAI-compatible provider is one ``[providers.NAME]`` table with ``kind = "openai_compat"``;
a model alias is one ``[[models]]`` row. Bare model names not in the catalog go by prefix. ``[fallbacks]``
maps a resolved ``provider/model`` (or ``provider/*``) to the models to try, in order, when it fails before
its first token.
"""

from pathlib import Path
from typing import Literal

import msgspec

from shared.errors import ErrorCode, InvalidRequestError

__all__ = [
    "DEFAULT_CATALOG_PATH",
    "Catalog",
    "CatalogError",
    "ModelRoute",
    "ProviderSpec",
    "load_catalog",
    "resolve_model",
]

#: package data, so an installed wheel has it too (pip always unpacks wheels, so this is a real file)
DEFAULT_CATALOG_PATH = Path(__file__).resolve().with_name("providers.toml")

ProviderKind = Literal["openai_compat", "anthropic", "gemini", "echo"]


class CatalogError(ValueError):
    """The catalog file is missing or malformed; the message names the file."""


class ProviderSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One upstream: which adapter speaks to it, its default base URL and default model.

    ``api_key_env`` / ``base_url_env`` name the variables the worker reads for it; ``drop_params``
    lists request fields this upstream rejects (quirks are data, not subclasses).
    """

    kind: ProviderKind
    base_url: str = ""
    api_key_env: str = ""
    base_url_env: str = ""
    default_model: str
    drop_params: list[str] = []
    #: openai_compat only: the request field for the output cap (older compatible servers want max_tokens)
    max_tokens_field: str = "max_completion_tokens"


class ModelRoute(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A model users may name: ``id`` (what clients send) -> ``provider`` and the upstream ``model``."""

    id: str
    provider: str
    model: str = ""
    created: int = 0

    @property
    def upstream_model(self) -> str:
        return self.model or self.id


class Catalog(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    providers: dict[str, ProviderSpec]
    models: list[ModelRoute] = []
    #: bare-name prefixes -> provider, tried in order (longest first is the author's job)
    prefixes: dict[str, str] = {}
    #: ``provider/model`` or ``provider/*`` -> model names to fall back to, in order
    fallbacks: dict[str, list[str]] = {}

    def route(self, model_id: str) -> ModelRoute | None:
        return next((route for route in self.models if route.id == model_id), None)

    def listed_name(self, route: ModelRoute) -> str:
        """The name clients are shown for a catalog model: ``provider/id``, valid whatever the prefixes say."""
        return f"{route.provider}/{route.id}"

    def created(self, requested: str) -> int:
        """The catalog's ``created`` time of a model named by its id or ``provider/id`` (0 when not listed)."""
        route = self.route(requested)
        if route is None:
            provider, _, rest = requested.partition("/")
            route = self.route(rest)
            if route is not None and route.provider != provider:
                route = None
        return route.created if route is not None else 0

    def fallbacks_for(self, provider: str, model: str) -> list[tuple[str, str]]:
        """The (provider, model) pairs to try after ``provider``/``model``, in order, without itself."""
        names = self.fallbacks.get(f"{provider}/{model}", self.fallbacks.get(f"{provider}/*", []))
        chain: list[tuple[str, str]] = []
        for name in names:
            pair = resolve_model(self, name)
            if pair != (provider, model) and pair not in chain:
                chain.append(pair)
        return chain


def load_catalog(path: Path = DEFAULT_CATALOG_PATH) -> Catalog:
    """Decode and check the catalog; any error names the file (fail fast at start-up)."""
    try:
        catalog = msgspec.toml.decode(path.read_bytes(), type=Catalog)
    except (OSError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise CatalogError(f"model catalog {path}: {exc}") from exc
    for route in catalog.models:
        if route.provider not in catalog.providers:
            raise CatalogError(f"model catalog {path}: model {route.id!r} names unknown provider {route.provider!r}")
    for prefix, provider in catalog.prefixes.items():
        if provider not in catalog.providers:
            raise CatalogError(f"model catalog {path}: prefix {prefix!r} names unknown provider {provider!r}")
    for source, names in catalog.fallbacks.items():
        if source.partition("/")[0] not in catalog.providers or "/" not in source:
            raise CatalogError(
                f"model catalog {path}: fallbacks key {source!r} is not `provider/model` (or `provider/*`)"
            )
        for name in names:
            try:
                resolve_model(catalog, name)
            except InvalidRequestError as exc:
                raise CatalogError(f"model catalog {path}: fallback {name!r} of {source!r}: {exc.message}") from exc
    return catalog


def _by_prefix(catalog: Catalog, model: str) -> str | None:
    for prefix, provider in catalog.prefixes.items():
        if prefix.endswith("*"):  # "o*": the letter o followed by a digit (o1, o3-mini, o4-mini)
            stem = prefix[:-1]
            if model.startswith(stem) and model[len(stem) : len(stem) + 1].isdigit():
                return provider
        elif model.startswith(prefix) or model == prefix.rstrip("-"):
            return provider
    return None


def resolve_model(catalog: Catalog, requested: str, default_provider: str | None = None) -> tuple[str, str]:
    """``provider/model``, a catalog id, or a bare name by prefix -> (provider, upstream model).

    An empty ``requested`` means the default model of ``default_provider``.
    """
    requested = requested.strip()
    if not requested:
        if default_provider is None or default_provider not in catalog.providers:
            raise InvalidRequestError("a model is required", param="model")
        return default_provider, catalog.providers[default_provider].default_model
    route = catalog.route(requested)
    if route is not None:
        return route.provider, route.upstream_model
    provider, slash, rest = requested.partition("/")
    if slash and provider in catalog.providers:
        if not rest:
            return provider, catalog.providers[provider].default_model
        route = catalog.route(rest)  # `provider/<catalog id>`, the name GET /v1/models lists
        if route is not None and route.provider == provider:
            return provider, route.upstream_model
        return provider, rest
    found = _by_prefix(catalog, requested)
    if found is not None:
        return found, requested
    raise InvalidRequestError(
        f"The model `{requested}` does not exist. Use `provider/model` (providers: "
        f"{', '.join(sorted(catalog.providers))}) or a model listed by GET /v1/models.",
        code=ErrorCode.MODEL_NOT_FOUND,
        param="model",
    )
