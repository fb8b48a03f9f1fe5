"""What the API and the workers both read from their settings for the proxy endpoints: the egress policy and
the sealer of clients' upstream keys, each refused at start with a ``SettingsError`` naming the variable."""

from typing import Protocol

from services.sealing import MIN_SECRET, Sealer
from shared.config import SettingsError
from shared.egress import EgressPolicy

__all__ = ["ProxySettings", "proxy_policy", "proxy_sealer"]


class ProxySettings(Protocol):
    @property
    def sealing_key(self) -> str: ...

    @property
    def proxy_allow_http(self) -> bool: ...

    @property
    def proxy_allow(self) -> str: ...

    @property
    def proxy_deny(self) -> str: ...


def proxy_policy(settings: ProxySettings) -> EgressPolicy:
    try:
        return EgressPolicy.from_settings(settings.proxy_allow_http, settings.proxy_allow, settings.proxy_deny)
    except ValueError as exc:
        raise SettingsError(f"CONDUIT_PROXY_ALLOW / CONDUIT_PROXY_DENY: {exc}") from None


def proxy_sealer(settings: ProxySettings) -> Sealer | None:
    """``None`` when no sealing key is set (the proxy endpoints are then unavailable)."""
    if not settings.sealing_key:
        return None
    if len(settings.sealing_key) < MIN_SECRET:
        raise SettingsError(f"CONDUIT_SEALING_KEY: at least {MIN_SECRET} characters")
    return Sealer(settings.sealing_key)
