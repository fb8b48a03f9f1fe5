"""The settings the API and the workers both read, and must set alike: where the files are (the API writes
them, the batch workers read them), and the proxy endpoints' key sealing and egress policy (the API checks an
upstream, the worker checks it again and connects). ``ApiSettings`` and ``WorkerSettings`` extend it."""

from typing import Literal

import msgspec

__all__ = ["SharedSettings"]


class SharedSettings(msgspec.Struct, frozen=True, kw_only=True):
    #: where uploaded files are kept (default: ``files/`` in the state directory, beside ``make up``'s Redis
    #: data); the API replicas and the batch workers must all see the same one
    files_dir: str = ""
    #: S3-compatible object storage for the files instead (AWS S3, MinIO, R2): its bucket (empty: ``files_dir``),
    #: a key prefix, the endpoint URL (empty: ``https://s3.{region}.amazonaws.com``), the region, and ``path``
    #: (``{endpoint}/{bucket}/{key}``) or ``virtual`` (``https://{bucket}.{host}/{key}``) addressing. The
    #: credentials are the standard ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and (temporary ones)
    #: ``AWS_SESSION_TOKEN`` variables, needed when a bucket is set
    files_s3_bucket: str = ""
    files_s3_prefix: str = ""
    files_s3_endpoint: str = ""
    files_s3_region: str = "us-east-1"
    files_s3_addressing: str = "path"
    #: proxy endpoints (``/api/v1/proxy/...``): the key the API and the workers share to seal a client's
    #: upstream key for its trip through Redis (32+ characters; ``make up`` makes one; unset: the proxy
    #: endpoints answer 503)
    sealing_key: str = ""
    #: which upstreams a client may name: https only unless ``proxy_allow_http``; never an address in a
    #: private, loopback, link-local or other non-public range, unless its host matches ``proxy_allow``
    #: (comma-separated ``host``, ``*.domain``, IP, CIDR, each with an optional ``:port``), which also allows
    #: plain http for it; ``proxy_deny`` (the same patterns) always wins. The same on the API and the workers
    proxy_allow_http: bool = False
    proxy_allow: str = ""
    proxy_deny: str = ""
    #: log lines as text (the default) or one JSON object per line (``services.telemetry.logs``)
    log_format: Literal["text", "json"] = "text"
