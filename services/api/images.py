"""Which image URLs a request may carry: ``https`` and ``http`` URLs (the provider fetches them) and
``data:image/<type>;base64,...`` URLs of at most ``max_image_bytes``, decoded. Anything else (``file:``,
``ftp:``, ``gopher:``, a bare path) is refused with a 400 naming the field, before any upstream sees it."""

import re
from urllib.parse import urlsplit

from shared.errors import InvalidRequestError

__all__ = ["check_image_url"]

_DATA = re.compile(r"data:image/[a-z0-9.+-]+(?:;[a-z0-9._-]+=[^;,]*)*;base64,", re.IGNORECASE)
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_WEB = ("https", "http")


def _refuse(param: str, why: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid '{param}': {why}. An image URL must be an https or http URL, or a "
        "data:image/<type>;base64,<data> URL.",
        param=param,
    )


def _check_data(url: str, max_bytes: int, param: str) -> None:
    prefix = _DATA.match(url)
    if prefix is None:
        raise _refuse(param, "a data URL must hold a base64-encoded image (data:image/<type>;base64,...)")
    payload = url[prefix.end() :]
    size = len(payload) * 3 // 4 - payload[-2:].count("=")
    if size > max_bytes:
        raise _refuse(param, f"the image is {size} bytes; at most {max_bytes} are accepted in a data URL")
    if not payload or len(payload) % 4 or _BASE64.fullmatch(payload) is None:
        raise _refuse(param, "the data URL's image is not valid base64")


def check_image_url(url: str, max_bytes: int, param: str) -> None:
    """Raise ``InvalidRequestError`` (naming ``param``) unless ``url`` is an image URL we pass on."""
    scheme = url.partition(":")[0].lower() if ":" in url else ""
    if scheme == "data":
        _check_data(url, max_bytes, param)
        return
    if scheme not in _WEB:
        shown = f"the scheme '{scheme[:20]}'" if scheme else "a URL without a scheme"
        raise _refuse(param, f"{shown} is not accepted")
    if _CONTROL.search(url):
        raise _refuse(param, "the URL contains spaces or control characters")
    try:
        host = urlsplit(url).hostname
    except ValueError as exc:
        raise _refuse(param, "the URL is malformed") from exc
    if not host:
        raise _refuse(param, "the URL has no host")
