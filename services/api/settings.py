"""API settings. Holds no provider credentials: which providers exist is learned from live workers."""

from typing import ClassVar

import msgspec

__all__ = ["ApiSettings"]


class ApiSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    env_names: ClassVar[dict[str, str]] = {"redis_url": "REDIS_URL"}

    host: str = "127.0.0.1"
    port: int = 8000
    #: HS256 secret for bearer JWTs (``conduit up`` provides a development one); or, for tokens an identity
    #: provider signs, a PEM public key (a file or the PEM itself) or a JWKS file
    jwt_secret: str = ""
    jwt_public_key: str = ""
    jwt_jwks: str = ""
    #: the one algorithm tokens are checked with (default: HS256 with a secret, RS256/ES256 by the key's type)
    jwt_algorithm: str = ""
    #: checked when set
    jwt_issuer: str = ""
    jwt_audience: str = ""
    #: the tier policy file (default deploy/tiers.toml; values overridable by CONDUIT_TIER_<TIER>_<FIELD>)
    tiers_path: str = ""
    #: a concurrent-stream lease runs out this long after its holder stopped renewing it (a dead API process)
    lease_ttl: float = 30.0
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Celery broker; defaults to ``redis_url``. Redis brokers get the fast path (one LPUSH per job)
    broker_url: str = ""
    catalog_path: str = ""
    #: how long a job may wait in the queue for a worker before the client gets an error
    queue_timeout: float = 30.0
    #: longest silence from a working job (workers send heartbeats every few seconds)
    idle_timeout: float = 30.0
    #: comment pings to streaming clients while nothing else is sent
    heartbeat_interval: float = 15.0
    #: a stream's HTTP status waits this long for the first token, so early failures keep their status
    commit_timeout: float = 5.0
    max_body_bytes: int = 4_000_000
    #: on SIGTERM, how long open streams may take to finish; then each ends with a retryable error event
    #: (its job runs on, for a resume with Last-Event-ID on another replica)
    shutdown_grace: float = 10.0
    #: live messages kept per stream whose client is not reading (beyond it, they are re-read from the log)
    relay_queue: int = 512
    #: browser origins that may call the API (CORS), comma-separated exact origins such as
    #: ``https://app.example.com,http://localhost:5173``, or ``*`` for any; none by default (no CORS headers)
    cors_origins: str = ""

    @property
    def broker(self) -> str:
        return self.broker_url or self.redis_url
