"""``file_store(settings, environ)``: the ``FileStore`` a deployment configured, for the API and the batch workers
alike: S3-compatible object storage when ``CONDUIT_FILES_S3_BUCKET`` is set, else a local directory.

``check_file_store`` finds what ``file_store`` would refuse without making anything, for an entry point to fail
before it starts serving."""

from collections.abc import Mapping
from typing import Any

from services.devstate import files_dir
from services.shared_settings import SharedSettings
from services.stores.files import FileStore
from services.stores.local_files import LocalFileStore
from services.stores.s3_bucket import check_endpoint
from services.stores.s3_files import S3FileStore
from shared.config import SettingsError

__all__ = ["check_file_store", "close_file_store", "file_store"]


def _credential(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name}: needed with CONDUIT_FILES_S3_BUCKET set (the file store's S3 credentials)")
    return value


def _s3_arguments(settings: SharedSettings, environ: Mapping[str, str]) -> dict[str, Any]:
    """``S3FileStore``'s keyword arguments (the secret among them: never to be logged)."""
    addressing = settings.files_s3_addressing.strip() or "path"
    if addressing not in {"path", "virtual"}:
        raise SettingsError(f"CONDUIT_FILES_S3_ADDRESSING: path or virtual, not {addressing!r}")
    region = settings.files_s3_region.strip() or "us-east-1"
    endpoint = settings.files_s3_endpoint.strip() or f"https://s3.{region}.amazonaws.com"
    try:
        check_endpoint(endpoint)
    except ValueError as exc:
        raise SettingsError(f"CONDUIT_FILES_S3_ENDPOINT: {exc}") from None
    return {
        "bucket": settings.files_s3_bucket.strip(),
        "prefix": settings.files_s3_prefix,
        "endpoint": endpoint,
        "region": region,
        "addressing": addressing,
        "access_key_id": _credential(environ, "AWS_ACCESS_KEY_ID"),
        "secret_access_key": _credential(environ, "AWS_SECRET_ACCESS_KEY"),
        "session_token": environ.get("AWS_SESSION_TOKEN", "").strip() or None,
    }


def check_file_store(settings: SharedSettings, environ: Mapping[str, str]) -> None:
    """``SettingsError`` naming the variable if ``file_store`` would refuse these settings."""
    if settings.files_s3_bucket.strip():
        _s3_arguments(settings, environ)


def file_store(settings: SharedSettings, environ: Mapping[str, str]) -> FileStore:
    """The S3 store when a bucket is set (credentials from ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and,
    for temporary ones, ``AWS_SESSION_TOKEN``), else the directory store; ``SettingsError`` naming a missing
    or malformed variable. Close it with ``close_file_store``."""
    if not settings.files_s3_bucket.strip():
        return LocalFileStore(files_dir(settings.files_dir, environ))
    return S3FileStore(None, **_s3_arguments(settings, environ))


async def close_file_store(store: FileStore) -> None:
    """Release what the store holds (the S3 store's HTTP client); nothing for a directory."""
    if isinstance(store, S3FileStore):
        await store.aclose()
