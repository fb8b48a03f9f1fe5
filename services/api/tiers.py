"""The tier policy: whether a tier may generate, and its limits.

The default policy ships inside the package, next to this module (``services/api/tiers.toml``, also reached as
``deploy/tiers.toml`` in a checkout); ``CONDUIT_TIERS_PATH`` names another file.

Every value can be overridden from the environment as ``CONDUIT_TIER_<TIER>_<FIELD>``; a bad file or value
stops the API at start-up with the file's or the variable's name. A key made with limits of its own
(``conduit keys create --rpm …``) overrides its tier's, field by field.
"""

from collections.abc import Mapping
from pathlib import Path

import msgspec

from services.api.auth.tokens import TIERS
from shared.config import SettingsError

__all__ = ["DEFAULT_TIERS_PATH", "Limits", "TierPolicy", "load_tiers"]

#: package data, so an installed wheel has it too
DEFAULT_TIERS_PATH = Path(__file__).resolve().with_name("tiers.toml")


class Limits(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """Limits of one principal; 0 = unlimited. In a key's record, None = its tier's."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent_streams: int | None = None
    max_tokens: int | None = None

    def over(self, base: "Limits") -> "Limits":
        """These limits, each one missing taken from ``base``."""
        fields = msgspec.structs.asdict(self)
        defaults = msgspec.structs.asdict(base)
        return Limits(**{name: defaults[name] if value is None else value for name, value in fields.items()})


class TierPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    generation: bool = True
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    concurrent_streams: int = 0
    max_tokens: int = 0

    @property
    def limits(self) -> Limits:
        return Limits(
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            concurrent_streams=self.concurrent_streams,
            max_tokens=self.max_tokens,
        )


class _File(msgspec.Struct, forbid_unknown_fields=True):
    tiers: dict[str, TierPolicy]


def _override(name: str, policy: TierPolicy, environ: Mapping[str, str]) -> TierPolicy:
    raw = msgspec.structs.asdict(policy)
    for field in raw:
        variable = f"CONDUIT_TIER_{name.upper()}_{field.upper()}"
        value = environ.get(variable, "").strip()
        if not value:
            continue
        try:
            raw[field] = msgspec.convert(value, type(raw[field]), strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"{variable}: {exc}") from exc
        if isinstance(raw[field], int) and not isinstance(raw[field], bool) and raw[field] < 0:
            raise SettingsError(f"{variable}: must be 0 (unlimited) or more")
    return TierPolicy(**raw)


def load_tiers(path: Path, environ: Mapping[str, str]) -> dict[str, TierPolicy]:
    """The policy of every tier; ``SettingsError`` naming the file or variable when something is wrong."""
    try:
        tiers = msgspec.toml.decode(path.read_bytes(), type=_File).tiers
    except (OSError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SettingsError(f"tier policy {path}: {exc}") from exc
    missing = [tier for tier in TIERS if tier not in tiers]
    unknown = [tier for tier in tiers if tier not in TIERS]
    if missing or unknown:
        raise SettingsError(f"tier policy {path}: tiers must be exactly {', '.join(TIERS)}")
    for name, policy in tiers.items():
        if min(policy.requests_per_minute, policy.tokens_per_minute, policy.concurrent_streams, policy.max_tokens) < 0:
            raise SettingsError(f"tier policy {path}: limits of {name!r} must be 0 (unlimited) or more")
    return {name: _override(name, policy, environ) for name, policy in tiers.items()}
