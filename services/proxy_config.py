"""What the API and the workers both read from their settings for the proxy endpoints: the egress policy and
the sealer of clients' upstream keys, each refused at start with a ``SettingsError`` naming the variable."""

from services.sealing import MIN_SECRET, Sealer
from services.shared_settings import SharedSettings
from shared.config import SettingsError
from shared.egress import EgressPolicy

__all__ = ["proxy_policy", "proxy_sealer"]


def proxy_policy(settings: SharedSettings) -> EgressPolicy:
    try:
        return EgressPolicy.from_settings(settings.proxy_allow_http, settings.proxy_allow, settings.proxy_deny)
    except ValueError as exc:
        raise SettingsError(f"CONDUIT_PROXY_ALLOW / CONDUIT_PROXY_DENY: {exc}") from None


def proxy_sealer(settings: SharedSettings) -> Sealer | None:
    """``None`` when no sealing key is set (the proxy endpoints are then unavailable)."""
    if not settings.sealing_key:
        return None
    if len(settings.sealing_key) < MIN_SECRET:
        raise SettingsError(f"CONDUIT_SEALING_KEY: at least {MIN_SECRET} characters")
    return Sealer(settings.sealing_key)
