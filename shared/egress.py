"""Which upstream URLs a client may name, and which addresses the gateway may then connect to (SSRF defence).

Pure policy, no I/O or DNS. ``parse_upstream`` turns a client-named base URL (percent-decoded once by the route)
into a canonical ``Upstream`` or raises ``EgressRefusedError``; hosts are read as the WHATWG URL standard reads them,
so every spelling of an address is caught (``2130706433``, ``0x7f.1``, ``%31%32%37.0.0.1``, ``[::ffff:7f00:1]``).
The worker's transport calls ``check_resolved`` on every address ``getaddrinfo`` returns and connects to a checked
address only, so DNS rebinding meets the same check. ``EgressPolicy`` adds the operator's ``deny`` patterns, which
always win, and ``allow`` patterns (an internal vLLM, the tests' loopback fakes), which skip the name and address
checks and permit http.

A host name, after percent-decoding and IDNA (the stdlib's IDNA 2003 codec, which folds full-width digits and dots as
browsers do), is dot-separated labels of ``a-z 0-9 - _`` (1 to 63, no ``-`` at either end). ``_`` is accepted as
WHATWG and httpx accept it (Docker Compose service names use it); no spelling of a name changes the address connected
to. Names that only resolve locally (``localhost``, ``*.local``, ``*.internal``, any single label such as ``redis``)
are refused before DNS. Messages may name the host, never the user information, query, port text or raw URL.
"""

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Self
from urllib.parse import quote, unquote

from shared.egress_ranges import IPAddress, classify, embedded_ipv4, ends_in_number, parse_ipv4

__all__ = [
    "DEFAULT_PORTS",
    "MAX_URL_LENGTH",
    "EgressPolicy",
    "EgressRefusedError",
    "EgressRule",
    "Upstream",
    "check_address",
    "check_resolved",
    "parse_upstream",
]

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"https": 443, "http": 80}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_PORT = re.compile(r"[0-9]{1,5}")
_MAX_PORT, _MAX_NAME_LENGTH, _MAX_SHOWN = 65535, 253, 80
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_CHARS = re.compile(r"[a-z0-9_.-]+")
_HOST_NAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}")
_PATH_SAFE = "/!$&'()*+,;=:@%"  # RFC 3986 pchar besides the unreserved ones (which quote() keeps), and escapes
_STRAY_PERCENT = re.compile("%(?![0-9A-Fa-f]{2})")
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "metadata.google.internal", "ip6-localhost"})
_LOCAL_SUFFIXES = (".localhost", ".local", ".home.arpa", ".internal")  # never delegated in public DNS


class EgressRule(StrEnum):
    """The stable names of refusals; ``EgressRefusedError.detail`` narrows some (``address/loopback``)."""

    URL = "url"  # too long, whitespace/control characters, backslash, not scheme://, query, fragment, dot segment
    SCHEME = "scheme"  # not http(s), none, or http where the policy wants https
    USERINFO = "userinfo"  # user:password@ in the authority
    HOST = "host"  # empty, malformed, not IDNA-encodable, a bad IPv4/IPv6 literal, a zone id, a local name
    PORT = "port"  # not a number in 1..65535
    DENYLIST = "denylist"  # matches a deny pattern of the operator
    NOT_ALLOWLISTED = "not_allowlisted"  # the policy is allow-list only, and the host is not on it
    ADDRESS = "address"  # an address (literal, embedded or resolved) that is not global unicast


class EgressRefusedError(ValueError):
    """The gateway will not call this upstream. ``message`` ends in ``(rule: <rule>[/<detail>])``."""

    def __init__(self, rule: EgressRule, reason: str, detail: str = "") -> None:
        self.rule = rule
        self.detail = detail
        self.message = f"{reason} (rule: {rule}{'/' if detail else ''}{detail})"
        super().__init__(self.message)


def _shown(text: str) -> str:
    return repr(text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "...")


@dataclass(frozen=True, slots=True)
class _Pattern:
    name: str = ""  # an exact host name, or a suffix (".example.com") when ``wildcard``
    wildcard: bool = False
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None

    def matches(self, host: str, port: int, ip: IPAddress | None, *, carried: bool = False) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.network is None:
            return host.endswith(self.name) if self.wildcard else host == self.name
        if ip is None:
            return False
        if carried and isinstance(ip, ipaddress.IPv6Address):
            return any(address in self.network for address in [ip, *(inner for _, inner in embedded_ipv4(ip))])
        return ip in self.network


def _parse_pattern(text: str) -> _Pattern:
    try:
        if "/" in text:  # a CIDR: 10.1.0.0/16, 10.1.0.0/16:8000, fd00::/8, [fd00::]/8:8000
            address, _, rest = text.partition("/")
            prefix, colon, port_text = rest.partition(":")
            network = ipaddress.ip_network(f"{address.removeprefix('[').removesuffix(']')}/{prefix}")
            return _Pattern(network=network, port=_read_port(port_text) if colon else None)
        if text.count(":") > 1 and not text.startswith("["):
            raise ValueError("write an IPv6 address in brackets: [::1] or [::1]:8080")
        wildcard = text.startswith("*.")
        host, port, ip = _read_authority(text.removeprefix("*."))
        if wildcard and ip is not None:
            raise ValueError("a wildcard is allowed only as a leading '*.' before a host name")
    except ValueError as exc:
        raise ValueError(f"egress pattern {_shown(text)} is malformed: {exc}") from exc
    if ip is not None:
        return _Pattern(network=ipaddress.ip_network(ip), port=port)
    return _Pattern(name=f".{host}" if wildcard else host, wildcard=wildcard, port=port)


@dataclass(frozen=True)
class EgressPolicy:
    """The operator's egress settings. Patterns are ``host[:port]``: ``vllm.internal``, ``*.example.com``
    (subdomains only), ``127.0.0.1`` (any spelling), ``[::1]``, or a CIDR ``10.1.0.0/16``; hosts compare after the
    normalisation ``parse_upstream`` applies. A malformed pattern raises ValueError when the policy is built."""

    allow_http: bool = False  # plain http to any host; allow-listed hosts may use it regardless
    allow: tuple[str, ...] = ()  # skip the local-name and address checks (and permit http) for these
    deny: tuple[str, ...] = ()  # refused always, also when a name resolves into a denied CIDR
    allowlist_only: bool = False  # refuse every host that ``allow`` does not match
    _allow: tuple[_Pattern, ...] = field(init=False, repr=False, compare=False)
    _deny: tuple[_Pattern, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allow", tuple(map(_parse_pattern, self.allow)))
        object.__setattr__(self, "_deny", tuple(map(_parse_pattern, self.deny)))

    @classmethod
    def from_settings(cls, allow_http: bool, allow: str, deny: str, *, allowlist_only: bool = False) -> Self:
        """A policy from comma-separated pattern lists (settings strings); ValueError on a malformed pattern."""
        allowed, denied = (tuple(filter(None, map(str.strip, text.split(",")))) for text in (allow, deny))
        return cls(allow_http, allowed, denied, allowlist_only)

    def allows(self, host: str, port: int, ip: IPAddress | None = None) -> bool:
        """Whether an allow pattern matches (an address pattern: ``ip`` itself, not an IPv4 address it carries)."""
        return any(pattern.matches(host, port, ip) for pattern in self._allow)

    def denies(self, host: str, port: int, ip: IPAddress | None = None) -> bool:
        """Whether a deny pattern matches (an address pattern: ``ip`` or any IPv4 address it carries)."""
        return any(pattern.matches(host, port, ip, carried=True) for pattern in self._deny)


@dataclass(frozen=True, slots=True)
class Upstream:
    """A checked upstream base URL, in canonical parts. Serialise ``base_url`` (and parse it again) to pass it on."""

    scheme: str  # "https" or "http"
    host: str  # lower case ASCII (punycode), no trailing dot; an IP address in canonical form, IPv6 without brackets
    port: int  # explicit, or the scheme's default
    path: str  # the base path, percent-encoded, without a trailing slash: "/v1", or "" for none
    ip: IPAddress | None  # the address when ``host`` is an IP literal
    allowlisted: bool  # an allow pattern matched: the address checks were skipped

    @property
    def origin(self) -> str:
        """``host`` or ``host:port`` (the port only when not the default), IPv6 in brackets: for display and usage."""
        host = f"[{self.host}]" if isinstance(self.ip, ipaddress.IPv6Address) else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The canonical URL, rebuilt from the parts: ``https://api.example.com/v1``."""
        return f"{self.scheme}://{self.origin}{self.path}"


def _split_url(raw: str) -> tuple[str, str, str]:
    """``raw`` as (scheme, authority, encoded base path), refusing what a base URL never has."""
    if len(raw) > MAX_URL_LENGTH:
        raise EgressRefusedError(EgressRule.URL, f"the upstream URL is longer than {MAX_URL_LENGTH}", "too_long")
    if any(char.isspace() or not char.isprintable() for char in raw):
        raise EgressRefusedError(EgressRule.URL, "the upstream URL holds whitespace or control characters", "character")
    if "\\" in raw:
        raise EgressRefusedError(EgressRule.URL, "the upstream URL holds a backslash", "backslash")
    scheme = _SCHEME.match(raw)
    if scheme is None:
        raise EgressRefusedError(EgressRule.SCHEME, "the upstream URL has no scheme (https://...)", "missing")
    if scheme[1].lower() not in DEFAULT_PORTS:
        raise EgressRefusedError(EgressRule.SCHEME, "the upstream URL's scheme is not http or https", "unsupported")
    parts = re.fullmatch(r"//([^/?#]*)(.*)", raw[scheme.end() :], re.DOTALL)
    if parts is None:
        raise EgressRefusedError(EgressRule.URL, "the upstream URL is not scheme://host[:port][/path]", "shape")
    authority, tail = parts.groups()
    if "#" in tail:
        raise EgressRefusedError(EgressRule.URL, "the upstream URL has a fragment (#...)", "fragment")
    if "?" in tail:
        raise EgressRefusedError(EgressRule.URL, "the upstream base URL has a query string (?...)", "query")
    if any(segment.lower().replace("%2e", ".") in {".", ".."} for segment in tail.split("/")):
        raise EgressRefusedError(EgressRule.URL, "the upstream URL's path has a '.' or '..' segment", "dot_segment")
    path = quote(_STRAY_PERCENT.sub("%25", tail.rstrip("/")), safe=_PATH_SAFE)  # keeps %XX, as WHATWG does
    return scheme[1].lower(), authority, path


def _read_port(text: str) -> int:
    if _PORT.fullmatch(text) is None or not 1 <= int(text) <= _MAX_PORT:  # not shown: it may be a password
        raise EgressRefusedError(EgressRule.PORT, f"the port is not a number in 1..{_MAX_PORT}")
    return int(text)


def _read_authority(authority: str) -> tuple[str, int | None, IPAddress | None]:
    """``host[:port]`` as (normalised host, port or None, IP address or None)."""
    if "@" in authority:
        raise EgressRefusedError(EgressRule.USERINFO, "the upstream URL holds user information (before '@')")
    if authority.startswith("["):
        inside, bracket, after = authority[1:].partition("]")
        if not bracket or after[:1] not in {"", ":"}:
            raise EgressRefusedError(EgressRule.HOST, "the IPv6 address is not in [brackets]", "ipv6")
        host, ip = _read_ipv6(inside)
        return host, _read_port(after[1:]) if after else None, ip
    host_text, colon, port_text = authority.partition(":")
    host, ip4 = _read_host(host_text)
    return host, _read_port(port_text) if colon else None, ip4


def _read_ipv6(text: str) -> tuple[str, ipaddress.IPv6Address]:
    if "%" in text:
        raise EgressRefusedError(EgressRule.HOST, "the IPv6 address has a zone id (%...)", "zone_id")
    try:
        ip = ipaddress.IPv6Address(text)
    except ValueError:
        raise EgressRefusedError(EgressRule.HOST, f"{_shown(text)} is not an IPv6 address", "ipv6") from None
    return ip.compressed, ip


def _read_host(text: str) -> tuple[str, ipaddress.IPv4Address | None]:
    """A host that is not in brackets, as (normalised name or IPv4 address, the IPv4 address or None)."""
    try:
        host = unquote(text, errors="strict")
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise EgressRefusedError(EgressRule.HOST, f"the host {_shown(text)} is not valid IDNA", "idna") from None
    host = host.lower().removesuffix(".")  # one trailing dot, as in DNS
    if not host:
        raise EgressRefusedError(EgressRule.HOST, "the URL has no host", "empty")
    if _HOST_CHARS.fullmatch(host) is None:
        raise EgressRefusedError(EgressRule.HOST, f"the host {_shown(host)} holds a forbidden character", "character")
    if ends_in_number(host):  # WHATWG: then it is an IPv4 address, or no host at all
        if (ip := parse_ipv4(host)) is None:
            raise EgressRefusedError(EgressRule.HOST, f"the host {_shown(host)} is not a valid IPv4 address", "ipv4")
        return str(ip), ip
    if len(host) > _MAX_NAME_LENGTH or _HOST_NAME.fullmatch(host) is None:
        raise EgressRefusedError(EgressRule.HOST, f"the host {_shown(host)} has a malformed label", "label")
    return host, None


def _check_name(host: str) -> None:
    if host in _LOCAL_NAMES or host.endswith(_LOCAL_SUFFIXES) or "." not in host:
        raise EgressRefusedError(EgressRule.HOST, f"the host {_shown(host)} names the local network", "local_name")


def check_address(ip: IPAddress, *, host: str | None = None) -> None:
    """Refuse (``address/<range>``) an address that is not global unicast, or that carries such an IPv4 address.

    ``host``: the name ``ip`` was resolved from; the message then names the host and the range, not the address."""
    if (finding := classify(ip)) is None:
        return
    carried = f" ({finding.via} {finding.address})" if finding.via else ""
    subject = f"the upstream URL's address {ip}{carried}" if host is None else f"an address of {_shown(host)}"
    reason = f"{subject} is {finding.range.description}, which the gateway does not call"
    raise EgressRefusedError(EgressRule.ADDRESS, reason, finding.range.name)


def parse_upstream(raw: str, policy: EgressPolicy) -> Upstream:
    """Check a client-named upstream base URL (percent-decoded once) against ``policy`` and return its canonical parts.

    Raises:
        EgressRefusedError: the URL is malformed, or names a host or address the gateway must not call.
    """
    scheme, authority, path = _split_url(raw)
    host, explicit_port, ip = _read_authority(authority)
    port = DEFAULT_PORTS[scheme] if explicit_port is None else explicit_port
    if policy.denies(host, port, ip):
        raise EgressRefusedError(EgressRule.DENYLIST, f"the host {_shown(host)} is on the gateway's deny list")
    allowlisted = policy.allows(host, port, ip)
    if not allowlisted:
        if policy.allowlist_only:
            raise EgressRefusedError(EgressRule.NOT_ALLOWLISTED, f"the host {_shown(host)} is not on the allow list")
        if scheme == "http" and not policy.allow_http:
            raise EgressRefusedError(EgressRule.SCHEME, "the gateway calls upstreams over https only", "http")
        if ip is None:
            _check_name(host)
        else:
            check_address(ip)
    return Upstream(scheme, host, port, path, ip, allowlisted)


def check_resolved(upstream: Upstream, ip: IPAddress, policy: EgressPolicy) -> None:
    """Check an address ``upstream.host`` resolved to, before connecting to it (and only to it): deny patterns
    first (a CIDR refuses a name resolving into it); allow-listed upstreams and addresses pass; then check_address."""
    if policy.denies(upstream.host, upstream.port, ip):
        raise EgressRefusedError(EgressRule.DENYLIST, f"an address of {_shown(upstream.host)} is on the deny list")
    if upstream.allowlisted or policy.allows(upstream.host, upstream.port, ip):
        return
    check_address(ip, host=None if upstream.ip is not None else upstream.host)
