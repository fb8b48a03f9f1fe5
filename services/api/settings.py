"""API settings. Holds no provider credentials: which providers exist is learned from live workers."""

from typing import ClassVar

from services.shared_settings import SharedSettings

__all__ = ["ApiSettings"]


class ApiSettings(SharedSettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
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
    #: a worker whose presence heartbeat (every 0.5 s) is older than this is dead: its streams end
    #: ``worker_lost`` and their stream leases are freed at once
    worker_timeout: float = 3.0
    #: a job that left its queue and was not started within this many seconds (its worker died holding it)
    #: is sent again; the worker that starts a job first claims it, so none runs twice
    requeue_after: float = 2.0
    #: comment pings to streaming clients while nothing else is sent
    heartbeat_interval: float = 15.0
    #: a stream's HTTP status waits this long for the first token, so early failures keep their status
    commit_timeout: float = 5.0
    max_body_bytes: int = 4_000_000
    #: a request's line and headers must arrive within this many seconds of its connection opening (or of the
    #: previous response on it); a connection that sent nothing by then is closed, a partial request gets 408
    header_timeout: float = 10.0
    #: a request's whole body must arrive within this many seconds of its headers (408, then the connection
    #: closes): max_body_bytes in 60 s asks for at least ~67 kB/s of a client sending the largest body
    body_timeout: float = 60.0
    #: an idle keep-alive connection is closed after this many seconds (keep it above a load balancer's own
    #: idle timeout when one sits in front)
    keep_alive_timeout: float = 5.0
    #: open connections per API process (SSE streams included); beyond, a new one is answered 503 and closed.
    #: Lowered, with a warning, to fit the process's file-descriptor limit (whose soft value is raised first)
    max_connections: int = 4096
    #: arrays and objects may nest this deep in a request body, in any field (a tool's JSON Schema of 20 levels
    #: takes about 45); deeper is a 400, as the worker could not decode the job
    max_json_depth: int = 64
    #: the largest image a ``data:`` URL may carry, decoded (``https``/``http`` image URLs are fetched upstream)
    max_image_bytes: int = 20_000_000
    #: the request line (method, path and query) and all header lines together: longer is a 431 (a 414 for the
    #: request line alone), answered before the app sees the request
    max_header_bytes: int = 65_536
    #: on SIGTERM, how long open streams may take to finish; then each ends with a retryable error event
    #: (its job runs on, for a resume with Last-Event-ID on another replica)
    shutdown_grace: float = 10.0
    #: live messages kept per stream whose client is not reading (beyond it, they are re-read from the log)
    relay_queue: int = 512
    #: browser origins that may call the API (CORS), comma-separated exact origins such as
    #: ``https://app.example.com,http://localhost:5173``, or ``*`` for any; none by default (no CORS headers)
    cors_origins: str = ""
    #: the bearer token ``GET /metrics`` asks for (empty: it is open, for a scraper on a private network)
    metrics_token: str = ""
    #: the personas file (default deploy/personas.toml)
    personas_path: str = ""
    #: chats one user may keep; messages one chat may hold; bytes (UTF-8) of one message a client sends
    chat_max_chats: int = 50_000
    chat_max_messages: int = 2_000
    chat_max_message_bytes: int = 200_000
    #: longest a chat stays taken by a generation whose end was never reported (its worker and the queue lost
    #: it); a generation whose job is known to have ended frees the chat at once
    chat_turn_timeout: float = 900.0
    #: the largest file an upload may carry, and the request lines a batch input may hold (OpenAI's caps)
    file_max_bytes: int = 200_000_000
    batch_max_lines: int = 50_000
    #: seconds a batch input is kept when its upload names no expiry (OpenAI's 30 days; 0: until deleted)
    batch_file_expiry: int = 2_592_000
    #: a batch that no batch worker holds (its runner died, or its message was lost) is handed out again at most
    #: this often (a runner's hold runs out CONDUIT_BATCH_HOLD after it died)
    batch_resend_after: float = 10.0

    @property
    def broker(self) -> str:
        return self.broker_url or self.redis_url
