"""The egress policy for client-named upstream URLs (SSRF defence): pure, no sockets and no DNS."""

import ipaddress
from dataclasses import FrozenInstanceError

import pytest

from shared.egress import (
    EgressPolicy,
    EgressRefusedError,
    EgressRule,
    check_address,
    check_resolved,
    parse_upstream,
)

OPEN = EgressPolicy()
#: what a refusal message must never repeat: a password (userinfo) and a query string's key
SECRETS = ("secret", "sk-canary")
LOOPBACK_TEREDO = "2001:0:4136:e378:8000:63bf:80ff:fffe"  # server 65.54.227.120, client 127.0.0.1 (stored inverted)


def refused(case_id: str, raw: str, rule: EgressRule, detail: str = "") -> tuple[str, str, EgressRule, str]:
    return case_id, raw, rule, detail


REFUSED = [
    # the URL's shape and characters
    refused("too-long", "https://api.example.com/" + "a" * 2048, EgressRule.URL, "too_long"),
    refused("space-in-host", "https://exa mple.com/", EgressRule.URL, "character"),
    refused("tab-in-path", "https://api.example.com/\tv1", EgressRule.URL, "character"),
    refused("newline-in-host", "https://api.example.com\n.evil.com/", EgressRule.URL, "character"),
    refused("nul-in-host", "https://api.example.com\x00.evil.com/", EgressRule.URL, "character"),
    refused("del-in-host", "https://api.example.com\x7f/", EgressRule.URL, "character"),
    refused("zero-width-space", "https://exa\u200bmple.com/", EgressRule.URL, "character"),
    refused("no-break-space", "https://api.example.com\u00a0/", EgressRule.URL, "character"),
    refused("backslash-before-at", "https://evil.com\\@127.0.0.1/", EgressRule.URL, "backslash"),
    refused("backslashes-as-slashes", "https:\\\\127.0.0.1\\v1", EgressRule.URL, "backslash"),
    refused("query", "https://api.example.com/v1?key=sk-canary", EgressRule.URL, "query"),
    refused("empty-query", "https://api.example.com/v1?", EgressRule.URL, "query"),
    refused("fragment", "https://api.example.com/v1#sk-canary", EgressRule.URL, "fragment"),
    refused("dot-dot-segment", "https://api.example.com/v1/../admin", EgressRule.URL, "dot_segment"),
    refused("dot-segment", "https://api.example.com/./v1", EgressRule.URL, "dot_segment"),
    refused("encoded-dot-segment", "https://api.example.com/v1/%2E%2e/admin", EgressRule.URL, "dot_segment"),
    refused("no-slashes", "https:api.example.com/v1", EgressRule.URL, "shape"),
    refused("one-slash", "https:/api.example.com/v1", EgressRule.URL, "shape"),
    # schemes
    refused("file", "file:///etc/passwd", EgressRule.SCHEME, "unsupported"),
    refused("gopher", "gopher://127.0.0.1:6379/_INFO", EgressRule.SCHEME, "unsupported"),
    refused("ftp", "ftp://ftp.example.com/", EgressRule.SCHEME, "unsupported"),
    refused("data", "data:text/plain,hello", EgressRule.SCHEME, "unsupported"),
    refused("javascript", "javascript:alert(1)", EgressRule.SCHEME, "unsupported"),
    refused("dict", "dict://127.0.0.1:11211/stats", EgressRule.SCHEME, "unsupported"),
    refused("host-port-read-as-scheme", "localhost:8080/v1", EgressRule.SCHEME, "unsupported"),
    refused("scheme-relative", "//api.example.com/v1", EgressRule.SCHEME, "missing"),
    refused("no-scheme", "api.example.com/v1", EgressRule.SCHEME, "missing"),
    refused("ip-and-port-no-scheme", "127.0.0.1:8080", EgressRule.SCHEME, "missing"),
    refused("http-not-allowed", "http://api.example.com/v1", EgressRule.SCHEME, "http"),
    # user information
    refused("good-at-loopback", "https://good.com@127.0.0.1/", EgressRule.USERINFO),
    refused("user-password", "https://user:secret@api.example.com/v1", EgressRule.USERINFO),
    refused("password-only", "https://:secret@api.example.com/", EgressRule.USERINFO),
    refused("host-port-as-userinfo", "https://api.example.com:secret@127.0.0.1/", EgressRule.USERINFO),
    refused("encoded-at", "https://good.com%40127.0.0.1/", EgressRule.HOST, "character"),
    refused("full-width-at", "https://good.com\uff20127.0.0.1/", EgressRule.HOST, "character"),
    # hosts
    refused("empty-host", "https:///v1", EgressRule.HOST, "empty"),
    refused("empty-host-with-port", "https://:443/v1", EgressRule.HOST, "empty"),
    refused("only-a-dot", "https://./v1", EgressRule.HOST, "empty"),
    refused("bare-ipv6", "https://::1/", EgressRule.HOST, "empty"),
    refused("percent-left-after-decoding", "https://%2531%2532%2537.0.0.1/", EgressRule.HOST, "character"),
    refused("bad-percent-escape", "https://%zz.example.com/", EgressRule.HOST, "character"),
    refused("percent-escape-not-utf8", "https://%ff.example.com/", EgressRule.HOST, "idna"),
    refused("encoded-slash", "https://127.0.0.1%2F.evil.com/", EgressRule.HOST, "character"),
    refused("idn-label-too-long", "https://" + "\u00fc" * 70 + ".com/", EgressRule.HOST, "idna"),
    refused("idn-bidi-violation", "https://a\u05d0.com/", EgressRule.HOST, "idna"),
    refused("leading-hyphen", "https://-evil.com/", EgressRule.HOST, "label"),
    refused("label-too-long", "https://" + "a" * 64 + ".com/", EgressRule.HOST, "label"),
    refused("empty-label", "https://api..example.com/", EgressRule.HOST, "label"),
    refused("two-trailing-dots", "https://api.example.com../", EgressRule.HOST, "label"),
    refused("ipv4-five-parts", "https://1.2.3.4.5/", EgressRule.HOST, "ipv4"),
    refused("ipv4-byte-over-255", "https://256.0.0.1/", EgressRule.HOST, "ipv4"),
    refused("ipv4-bad-octal", "https://1.2.3.08/", EgressRule.HOST, "ipv4"),
    refused("ipv4-over-32-bits", "https://4294967296/", EgressRule.HOST, "ipv4"),
    refused("name-ending-in-number", "https://evil.com.1/", EgressRule.HOST, "ipv4"),
    refused("zone-id-encoded", "https://[fe80::1%25eth0]/", EgressRule.HOST, "zone_id"),
    refused("zone-id", "https://[fe80::1%eth0]/", EgressRule.HOST, "zone_id"),
    refused("ipv6-bad-digit", "https://[::g]/", EgressRule.HOST, "ipv6"),
    refused("ipv4-in-brackets", "https://[127.0.0.1]/", EgressRule.HOST, "ipv6"),
    refused("ipv6-unclosed", "https://[::1/", EgressRule.HOST, "ipv6"),
    refused("ipv6-trailing-garbage", "https://[::1]x/", EgressRule.HOST, "ipv6"),
    refused("ipv6-empty", "https://[]/", EgressRule.HOST, "ipv6"),
    # local names, refused before DNS
    refused("localhost", "https://localhost/", EgressRule.HOST, "local_name"),
    refused("localhost-upper", "https://LOCALHOST/", EgressRule.HOST, "local_name"),
    refused("localhost-mixed-case", "https://LocalHost:8080/", EgressRule.HOST, "local_name"),
    refused("localhost-trailing-dot", "https://localhost./", EgressRule.HOST, "local_name"),
    refused("localhost-encoded", "https://%6c%6f%63%61%6c%68%6f%73%74/", EgressRule.HOST, "local_name"),
    refused(
        "localhost-full-width",
        "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/",
        EgressRule.HOST,
        "local_name",
    ),
    refused("sub-localhost", "https://api.localhost/", EgressRule.HOST, "local_name"),
    refused("localhost-localdomain", "https://localhost.localdomain/", EgressRule.HOST, "local_name"),
    refused("mdns-local", "https://printer.local/", EgressRule.HOST, "local_name"),
    refused("gcp-metadata", "https://metadata.google.internal/", EgressRule.HOST, "local_name"),
    refused("internal-not-allowlisted", "https://vllm.internal/v1", EgressRule.HOST, "local_name"),
    refused("metadata", "https://metadata/", EgressRule.HOST, "local_name"),
    refused("aws-instance-data", "https://instance-data/", EgressRule.HOST, "local_name"),
    refused("single-label", "https://redis:6379/", EgressRule.HOST, "local_name"),
    refused("home-arpa", "https://router.home.arpa/", EgressRule.HOST, "local_name"),
    # ports
    refused("port-zero", "https://api.example.com:0/", EgressRule.PORT),
    refused("port-too-big", "https://api.example.com:65536/", EgressRule.PORT),
    refused("port-not-a-number", "https://api.example.com:https/", EgressRule.PORT),
    refused("port-empty", "https://api.example.com:/", EgressRule.PORT),
    refused("port-negative", "https://api.example.com:-1/", EgressRule.PORT),
    refused("port-twice", "https://api.example.com:80:80/", EgressRule.PORT),
    refused("port-arabic-digits", "https://api.example.com:\u0664\u0664\u0663/", EgressRule.PORT),
    refused("port-six-digits", "https://api.example.com:000443/", EgressRule.PORT),
    refused("ipv6-port-not-a-number", "https://[2001:4860::1]:x/", EgressRule.PORT),
    # every spelling of an IPv4 address
    refused("dotted", "https://127.0.0.1/", EgressRule.ADDRESS, "loopback"),
    refused("dotted-trailing-dot", "https://127.0.0.1./", EgressRule.ADDRESS, "loopback"),
    refused("short-two-parts", "https://127.1/", EgressRule.ADDRESS, "loopback"),
    refused("short-three-parts", "https://127.0.1/", EgressRule.ADDRESS, "loopback"),
    refused("decimal", "https://2130706433/", EgressRule.ADDRESS, "loopback"),
    refused("octal-dotted", "https://0177.0.0.1/", EgressRule.ADDRESS, "loopback"),
    refused("octal-single", "https://017700000001/", EgressRule.ADDRESS, "loopback"),
    refused("hex-dotted", "https://0x7f.0.0.1/", EgressRule.ADDRESS, "loopback"),
    refused("hex-single", "https://0x7f000001/", EgressRule.ADDRESS, "loopback"),
    refused("hex-upper", "https://0X7F.1/", EgressRule.ADDRESS, "loopback"),
    refused("mixed-bases", "https://0x7f.0.00.01/", EgressRule.ADDRESS, "loopback"),
    refused("mixed-short", "https://0177.0x1/", EgressRule.ADDRESS, "loopback"),
    refused("percent-encoded", "https://%31%32%37.0.0.1/", EgressRule.ADDRESS, "loopback"),
    refused("full-width-digits", "https://\uff11\uff12\uff17.0.0.1/", EgressRule.ADDRESS, "loopback"),
    refused("ideographic-dots", "https://127\u30020\u30020\u30021/", EgressRule.ADDRESS, "loopback"),
    refused("zero", "https://0/", EgressRule.ADDRESS, "unspecified"),
    refused("hex-zero", "https://0x/", EgressRule.ADDRESS, "unspecified"),
    refused("all-zeros", "https://0.0.0.0:8080/", EgressRule.ADDRESS, "unspecified"),
    refused("metadata-ip", "https://169.254.169.254/latest/meta-data", EgressRule.ADDRESS, "link_local"),
    refused("metadata-ip-decimal", "https://2852039166/", EgressRule.ADDRESS, "link_local"),
    refused("private-short", "https://10.1/", EgressRule.ADDRESS, "private"),
    refused("last-label-hex", "https://10.0.0.0x4/", EgressRule.ADDRESS, "private"),
    # every spelling of an IPv6 address, and the IPv4 addresses some of them carry
    refused("ipv6-loopback", "https://[::1]/", EgressRule.ADDRESS, "loopback"),
    refused("ipv6-loopback-long", "https://[0:0:0:0:0:0:0:1]:8080/", EgressRule.ADDRESS, "loopback"),
    refused("ipv6-unspecified", "https://[::]/", EgressRule.ADDRESS, "unspecified"),
    refused("ipv4-mapped-dotted", "https://[::ffff:127.0.0.1]/", EgressRule.ADDRESS, "loopback"),
    refused("ipv4-mapped-hex", "https://[::ffff:7f00:1]/", EgressRule.ADDRESS, "loopback"),
    refused("ipv4-mapped-upper", "https://[::FFFF:A9FE:A9FE]/", EgressRule.ADDRESS, "link_local"),
    refused("ipv4-mapped-public", "https://[::ffff:8.8.8.8]/", EgressRule.ADDRESS, "reserved"),
    refused("ipv4-compatible", "https://[::127.0.0.1]/", EgressRule.ADDRESS, "loopback"),
    refused("ipv4-compatible-public", "https://[::8.8.8.8]/", EgressRule.ADDRESS, "reserved"),
    refused("nat64", "https://[64:ff9b::7f00:1]/", EgressRule.ADDRESS, "loopback"),
    refused("nat64-dotted", "https://[64:ff9b::10.0.0.1]/", EgressRule.ADDRESS, "private"),
    refused("nat64-local-use", "https://[64:ff9b:1::a9fe:a9fe]/", EgressRule.ADDRESS, "link_local"),
    refused("nat64-local-use-public", "https://[64:ff9b:1::808:808]/", EgressRule.ADDRESS, "reserved"),
    refused("6to4", "https://[2002:7f00:1::]/", EgressRule.ADDRESS, "loopback"),
    refused("6to4-metadata", "https://[2002:a9fe:a9fe::1]/", EgressRule.ADDRESS, "link_local"),
    refused("6to4-public", "https://[2002:808:808::1]/", EgressRule.ADDRESS, "reserved"),
    refused("teredo-client", f"https://[{LOOPBACK_TEREDO}]/", EgressRule.ADDRESS, "loopback"),
    refused("teredo-server", "https://[2001:0:a00:1:8000:63bf:f7f7:f7f7]/", EgressRule.ADDRESS, "private"),
    refused("teredo-public", "https://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/", EgressRule.ADDRESS, "reserved"),
    refused("link-local", "https://[fe80::1]/", EgressRule.ADDRESS, "link_local"),
    refused("aws-metadata-v6", "https://[fd00:ec2::254]/", EgressRule.ADDRESS, "unique_local"),
    refused("site-local", "https://[fec0::1]/", EgressRule.ADDRESS, "site_local"),
    refused("multicast-v6", "https://[ff02::1]/", EgressRule.ADDRESS, "multicast"),
]


@pytest.mark.parametrize(("raw", "rule", "detail"), [pytest.param(*case, id=case_id) for case_id, *case in REFUSED])
def test_parse_upstream_refuses(raw: str, rule: EgressRule, detail: str) -> None:
    with pytest.raises(EgressRefusedError) as caught:
        parse_upstream(raw, OPEN)
    error = caught.value
    assert (error.rule, error.detail) == (rule, detail)
    assert error.message.endswith(f"(rule: {rule}/{detail})" if detail else f"(rule: {rule})")
    assert str(error) == error.message
    assert not any(secret in error.message for secret in SECRETS)


def test_refused_vectors_are_many_and_distinct() -> None:
    raws = [raw for _, raw, _, _ in REFUSED]
    assert len(raws) >= 60
    assert len(set(raws)) == len(raws)


def test_refusal_message_names_the_range() -> None:
    with pytest.raises(EgressRefusedError) as caught:
        parse_upstream("https://0x7f.1/v1", OPEN)
    assert caught.value.message == (
        "the upstream URL's address 127.0.0.1 is loopback, which the gateway does not call (rule: address/loopback)"
    )


def test_refusal_message_names_the_carried_address() -> None:
    with pytest.raises(EgressRefusedError, match=r"\(Teredo client 127\.0\.0\.1\) is loopback"):
        parse_upstream(f"https://[{LOOPBACK_TEREDO}]/", OPEN)


def test_refused_error_is_a_value_error() -> None:
    assert issubclass(EgressRefusedError, ValueError)


ADDRESSES = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link_local"),
    ("100.64.0.1", "shared"),
    ("100.127.255.254", "shared"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("198.18.0.1", "benchmark"),
    ("198.19.255.255", "benchmark"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.1", "documentation"),
    ("203.0.113.1", "documentation"),
    ("240.0.0.1", "reserved"),
    ("192.0.0.8", "reserved"),
    ("192.88.99.1", "reserved"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link_local"),
    ("febf::1", "link_local"),
    ("fc00::1", "unique_local"),
    ("fd00:ec2::254", "unique_local"),
    ("fec0::1", "site_local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2001:2::1", "benchmark"),
    ("100::1", "reserved"),
    ("2001:10::1", "reserved"),
    ("5f00::1", "reserved"),
    ("::ffff:10.0.0.1", "private"),
    ("64:ff9b::a9fe:a9fe", "link_local"),
    ("2002:c0a8:101::", "private"),
]


@pytest.mark.parametrize(("address", "detail"), ADDRESSES, ids=[address for address, _ in ADDRESSES])
def test_check_address_names_the_range(address: str, detail: str) -> None:
    with pytest.raises(EgressRefusedError) as caught:
        check_address(ipaddress.ip_address(address))
    assert (caught.value.rule, caught.value.detail) == (EgressRule.ADDRESS, detail)
    assert f"(rule: address/{detail})" in caught.value.message


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "2606:4700:4700::1111", "64:ff9b::808:808"]
)
def test_check_address_passes_global_addresses(address: str) -> None:
    check_address(ipaddress.ip_address(address))


def accepted(
    case_id: str, raw: str, base_url: str, policy: EgressPolicy = OPEN, *, allowlisted: bool = False
) -> object:
    return pytest.param(raw, policy, base_url, allowlisted, id=case_id)


ACCEPTED = [
    accepted("openai", "https://api.openai.com/v1", "https://api.openai.com/v1"),
    accepted("gemini", "https://generativelanguage.googleapis.com", "https://generativelanguage.googleapis.com"),
    accepted("trailing-slash", "https://api.openai.com/v1/", "https://api.openai.com/v1"),
    accepted("trailing-slashes", "https://api.openai.com/v1///", "https://api.openai.com/v1"),
    accepted("root-slash", "https://api.openai.com/", "https://api.openai.com"),
    accepted("upper-case", "HTTPS://API.OpenAI.COM/v1", "https://api.openai.com/v1"),
    accepted("trailing-dot", "https://api.openai.com./v1", "https://api.openai.com/v1"),
    accepted("explicit-port", "https://api.example.com:8443/v1", "https://api.example.com:8443/v1"),
    accepted("default-port", "https://api.example.com:443/v1", "https://api.example.com/v1"),
    accepted("port-leading-zero", "https://api.example.com:0443/v1", "https://api.example.com/v1"),
    accepted("public-ipv4", "https://8.8.8.8/v1", "https://8.8.8.8/v1"),
    accepted("public-ipv4-hex", "https://0x8080808/v1", "https://8.8.8.8/v1"),
    accepted("last-label-hex", "https://1.2.3.0x4/", "https://1.2.3.4"),
    accepted("public-ipv6", "https://[2001:4860:4860::8888]:8443/v1/", "https://[2001:4860:4860::8888]:8443/v1"),
    accepted("ipv6-long-form", "https://[2606:4700:4700:0:0:0:0:1111]/", "https://[2606:4700:4700::1111]"),
    accepted("nat64-public", "https://[64:ff9b::808:808]/", "https://[64:ff9b::808:808]"),
    accepted("idn-to-punycode", "https://b\u00fccher.example/v1", "https://xn--bcher-kva.example/v1"),
    accepted("idn-upper-case", "https://\u00dcBER.example/", "https://xn--ber-goa.example"),
    accepted("underscore", "https://my_service.example.com/v1", "https://my_service.example.com/v1"),
    accepted("ip-shaped-name", "https://127.0.0.1.nip.io/v1", "https://127.0.0.1.nip.io/v1"),
    accepted("path-encoded", "https://api.example.com/a%20b/50%/\u00fc", "https://api.example.com/a%20b/50%25/%C3%BC"),
    accepted(
        "path-keeps-colon-and-at",
        "https://api.example.com/v1/models/gemini:stream@x",
        "https://api.example.com/v1/models/gemini:stream@x",
    ),
    accepted(
        "http-when-allowed", "http://api.example.com/v1", "http://api.example.com/v1", EgressPolicy(allow_http=True)
    ),
    accepted(
        "allowlisted-loopback-with-port",
        "http://127.0.0.1:8080/v1",
        "http://127.0.0.1:8080/v1",
        EgressPolicy(allow=("127.0.0.1:8080",)),
        allowlisted=True,
    ),
    accepted(
        "allowlisted-loopback-any-port",
        "http://127.0.0.1:39017/",
        "http://127.0.0.1:39017",
        EgressPolicy(allow=("127.0.0.1",)),
        allowlisted=True,
    ),
    accepted(
        "allowlisted-loopback-other-spelling",
        "http://0x7f.1:8080/v1",
        "http://127.0.0.1:8080/v1",
        EgressPolicy(allow=("2130706433:8080",)),
        allowlisted=True,
    ),
    accepted(
        "allowlisted-vllm",
        "http://vllm.internal:8000/v1",
        "http://vllm.internal:8000/v1",
        EgressPolicy(allow=("vllm.internal",)),
        allowlisted=True,
    ),
    accepted(
        "allowlisted-localhost",
        "http://LocalHost.:8080",
        "http://localhost:8080",
        EgressPolicy(allow=("localhost:8080",)),
        allowlisted=True,
    ),
    accepted(
        "allowlisted-ipv6-loopback",
        "http://[::1]:9000/v1",
        "http://[::1]:9000/v1",
        EgressPolicy(allow=("[::1]",)),
        allowlisted=True,
    ),
    accepted(
        "allowlisted-wildcard",
        "https://llm.corp/v1",
        "https://llm.corp/v1",
        EgressPolicy(allow=("*.corp:443",)),
        allowlisted=True,
    ),
    accepted(
        "allowlisted-cidr",
        "http://10.1.2.3:8000/v1",
        "http://10.1.2.3:8000/v1",
        EgressPolicy(allow=("10.1.0.0/16",)),
        allowlisted=True,
    ),
]


@pytest.mark.parametrize(("raw", "policy", "base_url", "allowlisted"), ACCEPTED)
def test_parse_upstream_accepts(raw: str, policy: EgressPolicy, base_url: str, allowlisted: bool) -> None:
    upstream = parse_upstream(raw, policy)
    assert upstream.base_url == base_url
    assert upstream.allowlisted is allowlisted
    assert parse_upstream(upstream.base_url, policy) == upstream  # canonical: parsing it again changes nothing


def test_upstream_parts_for_a_name() -> None:
    upstream = parse_upstream("https://API.Example.com:8443/v1/", OPEN)
    assert (upstream.scheme, upstream.host, upstream.port, upstream.path) == ("https", "api.example.com", 8443, "/v1")
    assert upstream.ip is None
    assert upstream.origin == "api.example.com:8443"


def test_upstream_parts_for_an_ipv6_literal() -> None:
    upstream = parse_upstream("https://[2001:4860:4860:0::8888]/", OPEN)
    assert upstream.host == "2001:4860:4860::8888"
    assert upstream.ip == ipaddress.IPv6Address("2001:4860:4860::8888")
    assert (upstream.port, upstream.path, upstream.origin) == (443, "", "[2001:4860:4860::8888]")


def test_upstream_parts_for_a_spelled_ipv4_literal() -> None:
    upstream = parse_upstream("http://0x7f.1:8080", EgressPolicy(allow=("127.0.0.1",)))
    assert (upstream.host, upstream.ip, upstream.origin) == (
        "127.0.0.1",
        ipaddress.IPv4Address("127.0.0.1"),
        "127.0.0.1:8080",
    )


def test_upstream_is_frozen() -> None:
    upstream = parse_upstream("https://api.openai.com/v1", OPEN)
    with pytest.raises(FrozenInstanceError):
        upstream.host = "127.0.0.1"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "allow", "rule"),
    [
        pytest.param("http://127.0.0.1:9090/", ("127.0.0.1:8080",), EgressRule.SCHEME, id="other-port-http"),
        pytest.param("https://127.0.0.1:9090/", ("127.0.0.1:8080",), EgressRule.ADDRESS, id="other-port-https"),
        pytest.param("https://[::ffff:127.0.0.1]/", ("127.0.0.1",), EgressRule.ADDRESS, id="mapped-not-the-allowed-v4"),
        pytest.param("https://localhost/", ("127.0.0.1",), EgressRule.HOST, id="name-not-the-allowed-address"),
        pytest.param("https://corp/", ("*.corp",), EgressRule.HOST, id="wildcard-is-subdomains-only"),
        pytest.param("https://evilcorp/", ("*.corp",), EgressRule.HOST, id="wildcard-needs-a-dot"),
        pytest.param("https://10.2.0.1/", ("10.1.0.0/16",), EgressRule.ADDRESS, id="outside-the-allowed-cidr"),
    ],
)
def test_allow_patterns_match_exactly(raw: str, allow: tuple[str, ...], rule: EgressRule) -> None:
    with pytest.raises(EgressRefusedError) as caught:
        parse_upstream(raw, EgressPolicy(allow=allow))
    assert caught.value.rule == rule


@pytest.mark.parametrize(
    ("raw", "deny"),
    [
        pytest.param("http://127.0.0.1:8080/", "127.0.0.1", id="same-address"),
        pytest.param("http://2130706433:8080/", "127.0.0.1:8080", id="address-other-spelling"),
        pytest.param("http://[::ffff:127.0.0.1]:8080/", "127.0.0.0/8", id="cidr-carried-address"),
        pytest.param("http://vllm.internal:8000/", "VLLM.internal.", id="name-normalised"),
        pytest.param("http://a.vllm.internal:8000/", "*.vllm.internal", id="wildcard"),
    ],
)
def test_deny_beats_allow(raw: str, deny: str) -> None:
    policy = EgressPolicy(allow=("127.0.0.1", "[::ffff:127.0.0.1]", "vllm.internal", "*.vllm.internal"), deny=(deny,))
    with pytest.raises(EgressRefusedError) as caught:
        parse_upstream(raw, policy)
    assert caught.value.rule == EgressRule.DENYLIST
    assert caught.value.message.endswith("(rule: denylist)")


def test_deny_refuses_a_public_host() -> None:
    policy = EgressPolicy(deny=("*.example.com", "8.8.8.0/24", "api.example.org:8443"))
    for raw in ("https://api.example.com/", "https://0x8080808/", "https://api.example.org:8443/"):
        with pytest.raises(EgressRefusedError, match=r"rule: denylist"):
            parse_upstream(raw, policy)
    assert parse_upstream("https://example.com/", policy).host == "example.com"  # the wildcard is subdomains only
    assert parse_upstream("https://api.example.org/", policy).port == 443  # the pattern's port only


def test_allowlist_only_refuses_other_hosts() -> None:
    policy = EgressPolicy(allow=("api.openai.com",), allowlist_only=True)
    assert parse_upstream("https://api.openai.com/v1", policy).allowlisted
    with pytest.raises(EgressRefusedError) as caught:
        parse_upstream("https://api.example.com/v1", policy)
    assert caught.value.rule == EgressRule.NOT_ALLOWLISTED
    assert caught.value.message.endswith("(rule: not_allowlisted)")


def test_check_resolved_applies_a_cidr_deny_to_a_name() -> None:
    policy = EgressPolicy(allow=("vllm.internal",), deny=("10.0.0.0/8",))
    upstream = parse_upstream("https://vllm.internal/v1", policy)
    check_resolved(upstream, ipaddress.ip_address("192.168.1.5"), policy)  # allow-listed: no address check
    for resolved in ("10.1.2.3", "::ffff:10.1.2.3", "64:ff9b::a01:203"):
        with pytest.raises(EgressRefusedError) as caught:
            check_resolved(upstream, ipaddress.ip_address(resolved), policy)
        assert caught.value.rule == EgressRule.DENYLIST
        assert resolved not in caught.value.message


def test_check_resolved_refuses_a_name_resolving_to_loopback() -> None:
    upstream = parse_upstream("https://rebind.example.com/v1", OPEN)
    check_resolved(upstream, ipaddress.ip_address("8.8.8.8"), OPEN)
    with pytest.raises(EgressRefusedError) as caught:
        check_resolved(upstream, ipaddress.ip_address("127.0.0.1"), OPEN)
    assert (caught.value.rule, caught.value.detail) == (EgressRule.ADDRESS, "loopback")
    assert "rebind.example.com" in caught.value.message
    assert "127.0.0.1" not in caught.value.message  # the client does not learn what our resolver answered


def test_check_resolved_lets_an_allowed_cidr_through() -> None:
    policy = EgressPolicy(allow=("10.1.0.0/16:8000",))
    upstream = parse_upstream("https://llm.example.com:8000/v1", policy)
    assert not upstream.allowlisted
    check_resolved(upstream, ipaddress.ip_address("10.1.2.3"), policy)
    with pytest.raises(EgressRefusedError, match=r"rule: address/private"):
        check_resolved(upstream, ipaddress.ip_address("10.2.0.1"), policy)


def test_from_settings_parses_comma_separated_patterns() -> None:
    policy = EgressPolicy.from_settings(True, " 127.0.0.1:8080, *.corp ,,[::1], 10.0.0.0/8:443, fd00::/8 ", "")
    assert policy == EgressPolicy(
        allow_http=True, allow=("127.0.0.1:8080", "*.corp", "[::1]", "10.0.0.0/8:443", "fd00::/8"), deny=()
    )
    assert policy.allows("127.0.0.1", 8080, ipaddress.ip_address("127.0.0.1"))
    assert not policy.allows("127.0.0.1", 8081, ipaddress.ip_address("127.0.0.1"))
    assert policy.allows("llm.corp", 443)
    assert policy.allows("10.9.9.9", 443, ipaddress.ip_address("10.9.9.9"))
    assert policy.allows("fd00::1", 80, ipaddress.ip_address("fd00::1"))
    assert EgressPolicy.from_settings(False, "", " ").allow == ()


def test_from_settings_reads_deny_and_allowlist_only() -> None:
    policy = EgressPolicy.from_settings(False, "api.openai.com", "169.254.0.0/16, *.example.com", allowlist_only=True)
    assert policy.deny == ("169.254.0.0/16", "*.example.com")
    assert policy.allowlist_only
    assert policy.denies("a.example.com", 443)
    assert policy.denies("x.example.org", 443, ipaddress.ip_address("169.254.169.254"))


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param("*", id="bare-wildcard"),
        pytest.param("*.", id="wildcard-without-name"),
        pytest.param("a.*.com", id="wildcard-inside"),
        pytest.param("*.127.0.0.1", id="wildcard-address"),
        pytest.param("10.0.0.1/8", id="cidr-host-bits"),
        pytest.param("10.0.0.0/33", id="cidr-prefix-too-long"),
        pytest.param("10.0.0.0/8:0", id="cidr-port-zero"),
        pytest.param("::1", id="ipv6-without-brackets"),
        pytest.param("[::1", id="ipv6-unclosed"),
        pytest.param("a b.com", id="space"),
        pytest.param("host:99999", id="port-too-big"),
        pytest.param("host:", id="port-empty"),
        pytest.param("user@host", id="userinfo"),
        pytest.param("256.1.1.1", id="bad-ipv4"),
    ],
)
def test_from_settings_refuses_a_malformed_pattern(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"egress pattern .* is malformed"):
        EgressPolicy.from_settings(False, f"api.openai.com, {pattern}", "")
    with pytest.raises(ValueError, match=r"egress pattern .* is malformed"):
        EgressPolicy(deny=(pattern,))
