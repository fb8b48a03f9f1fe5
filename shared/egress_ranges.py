"""IPv4 spellings and the address ranges the gateway never calls for a client (the address half of ``shared.egress``).

``parse_ipv4`` reads a host as the WHATWG URL standard's IPv4 parser does (browsers do, and so does the C library's
``inet_aton`` behind ``getaddrinfo``): 1 to 4 dot-separated numbers, each decimal, ``0x`` hex or ``0``-prefixed octal,
the last one filling the remaining bytes, so ``127.1``, ``0x7f.1``, ``017700000001`` and ``2130706433`` are all
127.0.0.1. A host whose last label is such a number is an IPv4 address or nothing (``ends_in_number``):
``1.2.3.0x4`` is an address, ``127.0.0.1.nip.io`` a name.

The tables follow the IANA special-purpose address registries (RFC 6890 and its successors). They are explicit, with
``not ip.is_global`` only as the final catch-all, because ``ipaddress`` changed its answer between patch releases:
Python 3.11.7 calls ``64:ff9b:1::/48``, ``2002::/16`` and ``5f00::/16`` global. An IPv6 address that carries an
IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo server and client) is judged by that IPv4 address
first, so ``::ffff:127.0.0.1`` is refused as loopback rather than as some IPv6 range.
"""

import ipaddress
import re
from typing import NamedTuple

__all__ = [
    "IPAddress",
    "IPV4_RANGES",
    "IPV6_RANGES",
    "Finding",
    "Range",
    "classify",
    "embedded_ipv4",
    "ends_in_number",
    "parse_ipv4",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_HEX, _OCTAL, _DECIMAL = 16, 8, 10
_DIGITS = {_DECIMAL: re.compile("[0-9]+"), _OCTAL: re.compile("[0-7]+"), _HEX: re.compile("[0-9a-fA-F]+")}
_BYTE = 256
_BYTES_OF_IPV4 = (24, 16, 8, 0)  # the shift of each byte, most significant first


def _ipv4_number(text: str) -> int | None:
    """One number of a WHATWG IPv4 address (``0x`` alone is 0), or None."""
    if text[:2] in {"0x", "0X"}:
        digits, base = text[2:], _HEX
        if not digits:
            return 0
    elif len(text) > 1 and text.startswith("0"):
        digits, base = text[1:], _OCTAL
    else:
        digits, base = text, _DECIMAL
    return int(digits, base) if _DIGITS[base].fullmatch(digits) else None


def ends_in_number(host: str) -> bool:
    """Whether the last label of ``host`` (no trailing dot) is all digits or a WHATWG IPv4 number."""
    last = host.rpartition(".")[2]
    return (last.isascii() and last.isdigit()) or _ipv4_number(last) is not None


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``host`` (no trailing dot) read by the WHATWG IPv4 parser, or None when it is not an IPv4 address."""
    numbers: list[int] = []
    for label in host.split("."):
        if (number := _ipv4_number(label)) is None:
            return None
        numbers.append(number)
    *head, last = numbers
    if len(numbers) > len(_BYTES_OF_IPV4) or any(number >= _BYTE for number in head):
        return None
    if last >= _BYTE ** (len(_BYTES_OF_IPV4) + 1 - len(numbers)):
        return None
    return ipaddress.IPv4Address(sum(number << _BYTES_OF_IPV4[index] for index, number in enumerate(head)) + last)


class Range(NamedTuple):
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    name: str  # stable, the detail of the refusal's rule: "loopback" in "address/loopback"
    description: str  # for people, after "is": "loopback", "private (10.0.0.0/8)"


class Finding(NamedTuple):
    """Why an address is refused: the range it (or the IPv4 address it carries) lies in."""

    range: Range
    address: IPAddress  # the address found in ``range``: the checked one, or the IPv4 address it carries
    via: str = ""  # how the checked address carries ``address``: "IPv4-mapped", "Teredo client", ... or ""


def _table(*rows: tuple[str, str, str]) -> tuple[Range, ...]:
    return tuple(Range(ipaddress.ip_network(network), name, description) for network, name, description in rows)


IPV4_RANGES = _table(
    ("0.0.0.0/8", "unspecified", 'unspecified ("this network", 0.0.0.0/8)'),
    ("10.0.0.0/8", "private", "private (10.0.0.0/8)"),
    ("100.64.0.0/10", "shared", "carrier-grade NAT shared space (100.64.0.0/10)"),
    ("127.0.0.0/8", "loopback", "loopback"),
    ("169.254.0.0/16", "link_local", "link-local (169.254.0.0/16, where cloud metadata services answer)"),
    ("172.16.0.0/12", "private", "private (172.16.0.0/12)"),
    ("192.0.0.0/24", "reserved", "reserved for IETF protocol assignments (192.0.0.0/24)"),
    ("192.0.2.0/24", "documentation", "reserved for documentation (192.0.2.0/24)"),
    ("192.88.99.0/24", "reserved", "the retired 6to4 relay anycast range (192.88.99.0/24)"),
    ("192.168.0.0/16", "private", "private (192.168.0.0/16)"),
    ("198.18.0.0/15", "benchmark", "reserved for benchmarking (198.18.0.0/15)"),
    ("198.51.100.0/24", "documentation", "reserved for documentation (198.51.100.0/24)"),
    ("203.0.113.0/24", "documentation", "reserved for documentation (203.0.113.0/24)"),
    ("224.0.0.0/4", "multicast", "multicast (224.0.0.0/4)"),
    ("255.255.255.255/32", "broadcast", "the limited broadcast address"),  # before 240/4, which holds it
    ("240.0.0.0/4", "reserved", "reserved for future use (240.0.0.0/4)"),
)
IPV6_RANGES = _table(
    ("::/128", "unspecified", "unspecified (::)"),
    ("::1/128", "loopback", "loopback"),
    ("::ffff:0:0/96", "reserved", "IPv4-mapped (::ffff:0:0/96)"),
    ("::/96", "reserved", "IPv4-compatible (::/96, deprecated)"),
    ("64:ff9b:1::/48", "reserved", "local-use NAT64 (64:ff9b:1::/48)"),
    ("100::/64", "reserved", "the discard-only prefix (100::/64)"),
    ("2001::/32", "reserved", "Teredo (2001::/32)"),
    ("2001:2::/48", "benchmark", "reserved for benchmarking (2001:2::/48)"),
    ("2001::/23", "reserved", "reserved for IETF protocol assignments (2001::/23)"),
    ("2001:db8::/32", "documentation", "reserved for documentation (2001:db8::/32)"),
    ("2002::/16", "reserved", "6to4 (2002::/16, deprecated)"),
    ("3fff::/20", "documentation", "reserved for documentation (3fff::/20)"),
    ("5f00::/16", "reserved", "SRv6 segment identifiers (5f00::/16)"),
    ("fc00::/7", "unique_local", "unique-local (fc00::/7, where AWS's fd00:ec2::254 metadata service answers)"),
    ("fe80::/10", "link_local", "link-local (fe80::/10)"),
    ("fec0::/10", "site_local", "site-local (fec0::/10, deprecated)"),
    ("ff00::/8", "multicast", "multicast (ff00::/8)"),
)
_NOT_GLOBAL = Range(ipaddress.ip_network("::/0"), "reserved", "not globally reachable")  # network unused
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses ``ip`` carries, each with how it carries it (an empty list for most addresses).

    NAT64 addresses are read with the /96 layout (RFC 6052), the only one of the well-known prefix."""
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        found.append(("IPv4-mapped", ip.ipv4_mapped))
    if ip in _COMPATIBLE and int(ip) > 1:  # :: and ::1 are not IPv4-compatible addresses
        found.append(("IPv4-compatible", low32))
    if any(ip in prefix for prefix in _NAT64):
        found.append(("NAT64", low32))
    if ip.sixtofour is not None:
        found.append(("6to4", ip.sixtofour))
    if ip.teredo is not None:  # the client address is stored inverted; ``teredo`` undoes that
        server, client = ip.teredo
        found += [("Teredo server", server), ("Teredo client", client)]
    return found


def _lookup(ip: IPAddress) -> Range | None:
    for row in IPV4_RANGES if isinstance(ip, ipaddress.IPv4Address) else IPV6_RANGES:
        if ip in row.network:
            return row
    return None if ip.is_global else _NOT_GLOBAL


def classify(ip: IPAddress) -> Finding | None:
    """Why the gateway must not call ``ip``, or None when ``ip`` is a global unicast address it may call."""
    if isinstance(ip, ipaddress.IPv6Address):
        for via, inner in embedded_ipv4(ip):
            if (row := _lookup(inner)) is not None:
                return Finding(row, inner, via)
    row = _lookup(ip)
    return None if row is None else Finding(row, ip)
