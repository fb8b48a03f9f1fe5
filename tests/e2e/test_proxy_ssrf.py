"""S-05, the SSRF matrix, end to end: client-named upstreams that point at this machine, its private networks or
a cloud metadata service, sent through both proxy endpoints of a real stack (an API, a worker, Redis).

TCP listeners on loopback record every connection they accept; every vector spells one of their addresses (or
another blocked range) and must get a 400 naming the egress rule, in the endpoint's own error shape, and no
listener may have seen a connection when the module ends, so the client's upstream key was never sent to a
refused host. A second stack allow-lists a listener on the API only, so the worker's own check refuses it, and
allow-lists a fake that answers with redirects, which the worker must not follow.
"""

import contextlib
import errno
import selectors
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import quote

import httpx
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.harness import auth
from tests.stack import Stack, own_stack

#: the client's own upstream key, in the path (OpenAI) or the x-goog-api-key header / key parameter (Gemini)
CLIENT_KEY = "sk-canary-ssrf-0123456789abcdef"
#: what a refusal must never repeat: put in user information, a query and a fragment
SECRET = "sk-canary-userinfo-9876543210"
#: what a listener answers a connection with, so a reply that reached one would show in the client's answer
REACHED = b"listener-reached"
CHAT = {"model": "my-own-model", "messages": [{"role": "user", "content": "hi"}]}
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
GEMINI_TASK = "/v1beta/models/gemini-2.5-flash:"

Endpoint = Literal["openai", "openai_stream", "gemini", "gemini_stream"]


class Listener:
    """A TCP port on loopback (``host``, and ``::1`` on the same port when ``v6``) that records every connection
    it accepts and answers it with a 200 whose body is ``REACHED``."""

    def __init__(self, name: str, host: str = "127.0.0.1", *, v6: bool = True) -> None:
        self.name = name
        self.accepted: list[str] = []
        self._lock = threading.Lock()
        self._sockets = self._bind(host, v6=v6)
        self.port: int = self._sockets[0].getsockname()[1]
        self._selector = selectors.DefaultSelector()
        for sock in self._sockets:
            self._selector.register(sock, selectors.EVENT_READ)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"listener-{name}", daemon=True)
        self._thread.start()

    @staticmethod
    def _bind(host: str, *, v6: bool) -> list[socket.socket]:
        for _ in range(20):
            first = socket.create_server((host, 0))
            if not v6:
                return [first]
            try:
                second = socket.create_server(("::1", first.getsockname()[1]), family=socket.AF_INET6)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:  # no IPv6 on this machine: nothing can connect over it either
                    return [first]
                first.close()  # that port is taken on ::1: try another
                continue
            return [first, second]
        raise RuntimeError(f"no port free on both {host} and ::1")

    def _serve(self) -> None:
        reply = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (len(REACHED), REACHED)
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                server: socket.socket = key.fileobj  # type: ignore[assignment]
                connection, peer = server.accept()
                with self._lock:
                    self.accepted.append(f"{peer[0]} port {peer[1]}")
                with contextlib.suppress(OSError), connection:
                    connection.sendall(reply)

    @property
    def connections(self) -> list[str]:
        with self._lock:
            return list(self.accepted)

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._selector.close()
        for sock in self._sockets:
            sock.close()


class Redirector(ThreadingHTTPServer):
    """An upstream on loopback that answers every request to ``/<status>/<listener>/...`` with ``status`` and a
    ``Location`` on that listener (the same path), recording what it was sent."""

    daemon_threads = True

    def __init__(self, listeners: dict[str, Listener]) -> None:
        self.listeners = listeners
        self.seen: list[tuple[str, dict[str, str]]] = []
        super().__init__(("127.0.0.1", 0), _Redirecting)
        self.port: int = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


class _Redirecting(BaseHTTPRequestHandler):
    server: Redirector

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        status, name, rest = self.path.removeprefix("/").split("/", 2)
        body = b'{"note": "moved"}'
        self.send_response(int(status))
        self.send_header("location", f"http://127.0.0.1:{self.server.listeners[name].port}/{rest}")
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def listeners() -> Iterator[dict[str, Listener]]:
    """The recording listeners, by name: every test of the module points at some of them, none may connect."""
    made = [
        Listener("loop"),  # the OpenAI path's vectors
        Listener("alt"),  # the Gemini path's vectors
        Listener("far", "127.255.255.254", v6=False),  # the other end of 127.0.0.0/8
        Listener("api_only"),  # allow-listed by the second stack's API, not by its worker
        Listener("redirected_allowed"),  # a redirect target allow-listed everywhere
        Listener("redirected_refused"),  # a redirect target allow-listed nowhere
    ]
    try:
        yield {listener.name: listener for listener in made}
    finally:
        for listener in made:
            listener.close()


@pytest.fixture(scope="module")
def control() -> Iterator[Listener]:
    """A listener the second stack allow-lists everywhere: what the others would have seen, had they been called."""
    listener = Listener("control")
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeUpstream]:
    """The stacks' provider fake (on loopback, allow-listed nowhere): some vectors name it, it must see nothing.
    Not called ``fake``: the shared autouse fixture would then reset its record before every test."""
    with FakeUpstream() as upstream:
        yield upstream


@dataclass
class Gateway:
    stack: Stack
    ports: dict[str, int]

    def send(self, endpoint: Endpoint, segment: str) -> httpx.Response:
        """A request naming the upstream ``segment`` (as it goes in the path) through ``endpoint``."""
        base = f"{self.stack.url}/api/v1/proxy/{segment}"
        if endpoint in ("openai", "openai_stream"):
            body = {**CHAT, "stream": endpoint == "openai_stream"}
            return httpx.post(f"{base}/{CLIENT_KEY}/chat/completions", json=body, headers=auth(), timeout=10)
        if endpoint == "gemini":
            headers = {**auth(), "x-goog-api-key": CLIENT_KEY}
            return httpx.post(f"{base}{GEMINI_TASK}generateContent", json=GEMINI_BODY, headers=headers, timeout=10)
        url = f"{base}{GEMINI_TASK}streamGenerateContent?alt=sse&key={CLIENT_KEY}"
        return httpx.post(url, json=GEMINI_BODY, headers=auth(), timeout=10)


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, listeners: dict[str, Listener], provider: FakeUpstream
) -> Iterator[Gateway]:
    """A stack with the default egress policy: https to public addresses only, nothing allow-listed."""
    with own_stack(tmp_path_factory.mktemp("ssrf"), provider) as stack:
        ports = {name: listener.port for name, listener in listeners.items()}
        yield Gateway(stack, {**ports, "fake": provider.port})


@pytest.fixture(scope="module")
def redirector(listeners: dict[str, Listener]) -> Iterator[Redirector]:
    server = Redirector(listeners)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def split(
    tmp_path_factory: pytest.TempPathFactory,
    listeners: dict[str, Listener],
    provider: FakeUpstream,
    redirector: Redirector,
    control: Listener,
) -> Iterator[Gateway]:
    """A stack whose API allow-lists the ``api_only`` listener and whose worker does not; both allow-list the
    redirector, the ``redirected_allowed`` listener and the control listener."""
    allowed = (redirector.port, listeners["redirected_allowed"].port, control.port)
    everywhere = ",".join(f"127.0.0.1:{port}" for port in allowed)
    api_env = {"CONDUIT_PROXY_ALLOW": f"{everywhere},127.0.0.1:{listeners['api_only'].port}"}
    worker_env = {"CONDUIT_PROXY_ALLOW": everywhere, "CONDUIT_RETRY_BASE_DELAY": "0.05"}
    with own_stack(tmp_path_factory.mktemp("ssrf-split"), provider, worker_env=worker_env, api_env=api_env) as stack:
        yield Gateway(stack, {**{name: listener.port for name, listener in listeners.items()}, "control": control.port})


@dataclass(frozen=True)
class Vector:
    """An upstream URL a client names. ``url`` is a template: ``{loop}``, ``{alt}``, ``{far}``, ``{fake}`` are the
    ports of those listeners (and of the provider fake). ``raw``: the path segment as the client wrote it (its own
    percent-encoding); otherwise the URL is percent-encoded into one segment. ``rule``: how the refusal's
    ``(rule: ...)`` begins; empty for a request that never reaches the proxy route (any 4xx will do)."""

    id: str
    url: str
    rule: str
    raw: bool = False

    def segment(self, ports: dict[str, int]) -> str:
        url = self.url.format(**ports)
        return url if self.raw else quote(url, safe="")


def _vectors(port: str) -> list[Vector]:
    """The matrix, every loopback spelling on the listener ``port`` names."""
    p = "{" + port + "}"
    v = Vector
    return [
        # loopback, in every spelling of 127.0.0.1 and ::1
        v("http", f"http://127.0.0.1:{p}/v1", "scheme/http"),
        v("https", f"https://127.0.0.1:{p}/v1", "address/loopback"),
        v("decimal", f"https://2130706433:{p}", "address/loopback"),
        v("hex-short", f"https://0x7f.1:{p}", "address/loopback"),
        v("hex-upper", f"https://0X7F.1:{p}", "address/loopback"),
        v("hex-whole", f"https://0x7f000001:{p}", "address/loopback"),
        v("hex-dotted", f"https://0x7f.0x0.0x0.0x1:{p}", "address/loopback"),
        v("octal", f"https://0177.0.0.1:{p}", "address/loopback"),
        v("octal-whole", f"https://017700000001:{p}", "address/loopback"),
        v("short", f"https://127.1:{p}", "address/loopback"),
        v("trailing-dot", f"https://127.0.0.1.:{p}", "address/loopback"),
        v("ipv6", f"https://[::1]:{p}", "address/loopback"),
        v("ipv6-long", f"https://[0:0:0:0:0:0:0:1]:{p}", "address/loopback"),
        v("ipv6-http", f"http://[::1]:{p}", "scheme/http"),
        v("v4-mapped", f"https://[::ffff:127.0.0.1]:{p}", "address/loopback"),
        v("v4-mapped-hex", f"https://[::ffff:7f00:1]:{p}", "address/loopback"),
        v("v4-compatible", f"https://[::127.0.0.1]:{p}", "address/loopback"),
        v("nat64", f"https://[64:ff9b::7f00:1]:{p}", "address/loopback"),
        v("6to4", f"https://[2002:7f00:1::]:{p}", "address/loopback"),
        v("teredo", f"https://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{p}", "address/loopback"),
        v("ipv6-zone", f"https://[::1%25lo]:{p}", "host/zone_id"),
        # names of this machine
        v("localhost", f"https://localhost:{p}", "host/local_name"),
        v("localhost-upper-dot", f"https://LOCALHOST.:{p}", "host/local_name"),
        v("localhost-sub", f"https://api.localhost:{p}", "host/local_name"),
        v("localhost-localdomain", f"https://localhost.localdomain:{p}", "host/local_name"),
        v("ip6-localhost", f"https://ip6-localhost:{p}", "host/local_name"),
        v("etc-hosts-single-label", f"https://vm:{p}", "host/local_name"),  # 127.0.0.1 in /etc/hosts
        v("localhost-encoded", f"https://%6c%6f%63%61%6c%68%6f%73%74:{p}", "host/local_name"),
        # percent-encoding, IDNA and Unicode that fold to loopback
        v("percent-encoded", f"https://%31%32%37.0.0.1:{p}", "address/loopback"),
        v("percent-encoded-twice", f"https://%2531%2532%2537.0.0.1:{p}", "host/character"),
        v("encoded-dot", f"https://127.0.0.1%2e:{p}", "address/loopback"),
        v("full-width-digits", f"https://\uff11\uff12\uff17.0.0.1:{p}", "address/loopback"),
        v("full-width-hex", f"https://\uff10\uff58\uff17\uff46.1:{p}", "address/loopback"),
        v("ideographic-dots", f"https://127\u30020\u30020\u30021:{p}", "address/loopback"),
        v("math-bold-digits", f"https://\U0001d7cf\U0001d7d0\U0001d7d5.0.0.1:{p}", "address/loopback"),
        v("superscript-digits", f"https://\u00b9\u00b2\u2077.0.0.1:{p}", "address/loopback"),
        v("arabic-indic-digits", f"https://\u0661\u0662\u0667.0.0.1:{p}", "host/ipv4"),
        v("cyrillic-localhost", f"https://loc\u0430lhost:{p}", "host/local_name"),
        # user information and other authority confusion
        v("userinfo-good-at-loopback", f"https://good.example.com@127.0.0.1:{p}", "userinfo"),
        v("userinfo-password", f"https://user:{SECRET}@127.0.0.1:{p}", "userinfo"),
        v("encoded-slash-before-at", "https://127.0.0.1%2F@good.example.com", "userinfo"),
        v("encoded-slash-port-before-at", f"https://127.0.0.1:{p}%2F@good.example.com", "userinfo"),
        v("encoded-slash-in-host", "https://127.0.0.1%2F.good.example.com", "host/character"),
        v("encoded-at", f"https://good.example.com%40127.0.0.1:{p}", "host/character"),
        v("raw-slash-before-at", f"https:%2F%2F127.0.0.1:{p}%2F@good.example.com", "address/loopback", raw=True),
        v("raw-colon-encoded-twice", f"https%3A%2F%2F127.0.0.1%253A{p}", "host/character", raw=True),
        v("port-leading-zero", f"https://127.0.0.1:0{p}", "port"),
        v("port-twice", f"https://127.0.0.1:{p}:{p}", "port"),
        # unspecified: 0.0.0.0 reaches this machine
        v("zero", f"https://0:{p}", "address/unspecified"),
        v("zero-dotted", f"https://0.0.0.0:{p}", "address/unspecified"),
        v("ipv6-unspecified", f"https://[::]:{p}", "address/unspecified"),
        # the other end of 127.0.0.0/8 (a listener of its own)
        v("loopback-far", "https://127.255.255.254:{far}", "address/loopback"),
        v("loopback-far-decimal", "https://2147483646:{far}", "address/loopback"),
        v("loopback-far-v4-mapped", "https://[::ffff:127.255.255.254]:{far}", "address/loopback"),
        # the stack's own provider fake
        v("provider-fake-http", "http://127.0.0.1:{fake}/v1", "scheme/http"),
        v("provider-fake-https", "https://127.0.0.1:{fake}/v1", "address/loopback"),
        # cloud metadata
        v("metadata-ip", "https://169.254.169.254", "address/link_local"),
        v("metadata-ip-path", "https://169.254.169.254/latest/meta-data", "address/link_local"),
        v("metadata-aws-ipv6", "https://[fd00:ec2::254]", "address/unique_local"),
        v("metadata-google", "https://metadata.google.internal", "host/local_name"),
        v("metadata-single-label", "https://metadata", "host/local_name"),
        # private and special ranges
        v("private-10", "https://10.0.0.1", "address/private"),
        v("private-172", "https://172.16.0.1", "address/private"),
        v("private-192", "https://192.168.1.1", "address/private"),
        v("shared-100-64", "https://100.64.0.1", "address/shared"),
        v("link-local-v6-zone", "https://[fe80::1%25eth0]", "host/zone_id"),
        v("link-local-v6", "https://[fe80::1]", "address/link_local"),
        v("unique-local", "https://[fc00::1]", "address/unique_local"),
        v("multicast", "https://224.0.0.1", "address/multicast"),
        v("broadcast", "https://255.255.255.255", "address/broadcast"),
        v("benchmark", "https://198.18.0.1", "address/benchmark"),
        v("documentation", "https://192.0.2.1", "address/documentation"),
        v("reserved-240", "https://240.0.0.1", "address/reserved"),
        # schemes
        v("file", "file:///etc/passwd", "scheme/unsupported"),
        v("gopher", f"gopher://127.0.0.1:{p}/_INFO", "scheme/unsupported"),
        v("ftp", f"ftp://127.0.0.1:{p}/", "scheme/unsupported"),
        v("dict", f"dict://127.0.0.1:{p}/", "scheme/unsupported"),
        v("scheme-upper-gopher", f"GOPHER://127.0.0.1:{p}/", "scheme/unsupported"),
        v("scheme-relative", f"//127.0.0.1:{p}", "scheme/missing"),
        v("no-scheme", f"127.0.0.1:{p}", "scheme/missing"),
        # the URL's shape and characters
        v("long", f"https://127.0.0.1:{p}/" + "a" * 3000, "url/too_long"),
        v("query", f"https://127.0.0.1:{p}/v1?x=1", "url/query"),
        v("query-secret", f"https://api.example.com/v1?key={SECRET}", "url/query"),
        v("fragment-secret", f"https://api.example.com/v1#{SECRET}", "url/fragment"),
        v("dot-segments", f"https://127.0.0.1:{p}/v1/../../admin", "url/dot_segment"),
        v("backslash-before-at", f"https://good.example.com\\@127.0.0.1:{p}", "url/backslash"),
        v("backslashes-as-slashes", f"https:\\\\127.0.0.1:{p}\\v1", "url/backslash"),
        v("space-in-host", f"https://127.0.0.1 :{p}", "url/character"),
        v("leading-space", f" https://127.0.0.1:{p}", "url/character"),
        v("tab", f"https://127.0.0.1\t:{p}", "url/character"),
        v("newline-before-at", f"https://good.example.com\n@127.0.0.1:{p}", "url/character"),
        v("crlf", f"https://127.0.0.1:{p}\r\nx-injected: 1", "url/character"),
        v("nul", f"https://127.0.0.1:{p}\x00.good.example.com", "url/character"),
        v("zero-width-space", f"https://127.0.0.1\u200b:{p}", "url/character"),
        v("encoded-tab-in-host", f"https://127.0.0.1%09:{p}", "host/character"),
        # not one path segment: never reaches the proxy route
        v("not-encoded", f"https://127.0.0.1:{p}/v1", "", raw=True),
        v("empty", "", ""),
    ]


OPENAI_VECTORS = _vectors("loop")
#: the Gemini path's share of the matrix (on its own listener)
GEMINI_IDS = (
    "http", "https", "decimal", "hex-short", "octal", "short", "ipv6", "v4-mapped", "nat64", "6to4", "localhost",
    "etc-hosts-single-label", "percent-encoded", "full-width-digits", "userinfo-good-at-loopback",
    "userinfo-password", "encoded-slash-before-at", "zero-dotted", "provider-fake-http", "metadata-ip",
    "metadata-aws-ipv6", "metadata-google", "private-10", "link-local-v6-zone", "file", "gopher", "scheme-relative",
    "long", "query-secret", "backslash-before-at", "newline-before-at", "not-encoded",
)  # fmt: skip
GEMINI_VECTORS = [vector for vector in _vectors("alt") if vector.id in GEMINI_IDS]
#: streamed requests are refused before a stream opens: a few of each
STREAM_IDS = ("https", "decimal", "v4-mapped", "localhost", "userinfo-password", "metadata-ip", "file", "long")

CASES = [
    *(pytest.param("openai", vector, id=f"openai-{vector.id}") for vector in OPENAI_VECTORS),
    *(pytest.param("openai_stream", v, id=f"openai-stream-{v.id}") for v in OPENAI_VECTORS if v.id in STREAM_IDS),
    *(pytest.param("gemini", vector, id=f"gemini-{vector.id}") for vector in GEMINI_VECTORS),
    *(pytest.param("gemini_stream", v, id=f"gemini-stream-{v.id}") for v in GEMINI_VECTORS if v.id in STREAM_IDS),
]
REFUSED = [case for case in CASES if case.values[1].rule]  # type: ignore[union-attr]
UNROUTED = [case for case in CASES if not case.values[1].rule]  # type: ignore[union-attr]


def _leaks(answer: httpx.Response) -> list[str]:
    """What of the client's secrets (or a listener's answer) the gateway's answer repeats."""
    return [found for found in (CLIENT_KEY, SECRET, REACHED.decode()) if found in answer.text]


def _error(endpoint: Endpoint, answer: httpx.Response) -> dict[str, Any]:
    """The error in the endpoint's own shape: OpenAI's four keys, or Google's three."""
    error: dict[str, Any] = answer.json()["error"]
    if endpoint.startswith("openai"):
        assert set(error) == {"message", "type", "param", "code"}, error
    else:
        assert set(error) == {"code", "message", "status"}, error
        assert error["code"] == answer.status_code
    return error


@pytest.mark.parametrize(("endpoint", "vector"), REFUSED)
def test_a_blocked_upstream_is_a_400_naming_the_rule(gateway: Gateway, endpoint: Endpoint, vector: Vector) -> None:
    answer = gateway.send(endpoint, vector.segment(gateway.ports))
    assert answer.status_code == 400, answer.text
    error = _error(endpoint, answer)
    if endpoint.startswith("openai"):
        assert error["code"] == "upstream_not_allowed" and error["param"] == "proxyUrl", error
        assert error["type"] == "invalid_request_error", error
    else:
        assert error["status"] == "INVALID_ARGUMENT", error
    assert f"(rule: {vector.rule}" in error["message"], error
    assert _leaks(answer) == []


@pytest.mark.parametrize(("endpoint", "vector"), UNROUTED)
def test_an_upstream_not_in_one_path_segment_is_a_4xx(gateway: Gateway, endpoint: Endpoint, vector: Vector) -> None:
    answer = gateway.send(endpoint, vector.segment(gateway.ports))
    assert 400 <= answer.status_code < 500, answer.text
    assert _leaks(answer) == []


@pytest.mark.parametrize("endpoint", ["openai", "gemini"])
def test_an_allowed_listener_is_reached_the_control(split: Gateway, control: Listener, endpoint: Endpoint) -> None:
    """The control: the same request to a listener both the API and the worker allow-list reaches it, so the
    listeners' empty records below mean that nothing connected, not that nothing could have."""
    before = len(control.connections)
    answer = split.send(endpoint, quote(f"http://127.0.0.1:{control.port}/v1", safe=""))
    assert answer.status_code >= 400, answer.text  # its answer is no LLM's
    assert len(control.connections) > before


@pytest.mark.parametrize(
    ("endpoint", "url", "rule"),
    [
        pytest.param("openai", "https://127.0.0.1:{api_only}/v1", "address/loopback", id="openai-https"),
        pytest.param("openai", "http://127.0.0.1:{api_only}/v1", "scheme/http", id="openai-http"),
        pytest.param("openai", "https://[::ffff:127.0.0.1]:{api_only}/v1", "address/loopback", id="openai-v4-mapped"),
        pytest.param("openai_stream", "https://127.0.0.1:{api_only}/v1", "address/loopback", id="openai-stream-https"),
        pytest.param("gemini", "https://127.0.0.1:{api_only}", "address/loopback", id="gemini-https"),
        pytest.param("gemini_stream", "http://127.0.0.1:{api_only}", "scheme/http", id="gemini-stream-http"),
    ],
)
def test_the_worker_refuses_an_upstream_only_the_api_allows(
    split: Gateway, listeners: dict[str, Listener], endpoint: Endpoint, url: str, rule: str
) -> None:
    answer = split.send(endpoint, quote(url.format(**split.ports), safe=""))
    assert answer.status_code == 400, answer.text
    error = _error(endpoint, answer)
    assert f"(rule: {rule}" in error["message"], error
    if endpoint.startswith("openai"):
        assert error["code"] == "upstream_not_allowed" and error["param"] == "proxyUrl", error
    else:
        assert error["status"] == "INVALID_ARGUMENT", error
    assert _leaks(answer) == []
    assert listeners["api_only"].connections == []


RedirectSeen = tuple[httpx.Response, list[tuple[str, dict[str, str]]]]


def _redirected(split: Gateway, redirector: Redirector, endpoint: Endpoint, status: int, target: str) -> RedirectSeen:
    """Send through the redirector, answering ``status`` towards ``target``; what came back and what it saw."""
    before = len(redirector.seen)
    answer = split.send(endpoint, quote(f"http://127.0.0.1:{redirector.port}/{status}/{target}/v1", safe=""))
    return answer, redirector.seen[before:]


@pytest.mark.parametrize(
    ("endpoint", "status", "target"),
    [
        ("openai", 302, "redirected_refused"),
        ("openai", 307, "redirected_allowed"),
        ("openai_stream", 308, "redirected_allowed"),
        ("gemini", 301, "redirected_refused"),
        ("gemini", 302, "redirected_allowed"),
        ("gemini_stream", 307, "redirected_allowed"),
    ],
)
def test_a_redirect_is_not_followed_even_to_an_allowed_host(
    split: Gateway,
    redirector: Redirector,
    listeners: dict[str, Listener],
    endpoint: Endpoint,
    status: int,
    target: str,
) -> None:
    answer, sent = _redirected(split, redirector, endpoint, status, target)
    assert answer.status_code >= 400, answer.text
    _error(endpoint, answer)
    assert _leaks(answer) == []
    assert sent, "the redirecting upstream was not called"
    # the redirecting upstream is the one the client named: it got the client's key; the target got nothing
    keys = {headers.get("authorization") or headers.get("x-goog-api-key") for _, headers in sent}
    assert keys == {f"Bearer {CLIENT_KEY}" if endpoint.startswith("openai") else CLIENT_KEY}
    assert listeners[target].connections == []


@pytest.mark.parametrize("endpoint", ["openai", "gemini"])
def test_a_redirect_is_one_upstream_error_not_retried(
    split: Gateway, redirector: Redirector, endpoint: Endpoint
) -> None:
    answer, sent = _redirected(split, redirector, endpoint, 302, "redirected_refused")
    assert len(sent) == 1, [path for path, _ in sent]
    assert answer.status_code == 502, answer.text
    assert "HTTP 302" in _error(endpoint, answer)["message"]


def test_no_listener_saw_a_connection(listeners: dict[str, Listener], provider: FakeUpstream) -> None:
    """Last in the module: every test above pointed at these listeners (or the provider fake); none connected, so
    no client key went to any of them."""
    assert {name: listener.connections for name, listener in listeners.items() if listener.connections} == {}
    assert provider.requests == []
