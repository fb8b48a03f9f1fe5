"""``GuardedTransport`` (the worker's transport for client-named upstreams) in process, against real loopback
sockets: a stub resolver plays DNS, and every TCP connection the transport opens is recorded.

The client is built as the worker builds it (``UpstreamClient`` over a ``GuardedTransport``, no environment
proxies, no redirects). The recorder lets loopback connections through and refuses any other address as an
unreachable network would, so no test leaves this machine; it also shows that the transport connects to the
address it checked, never to a name another lookup could answer differently.
"""

import asyncio
import contextlib
import errno
import ipaddress
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from services.worker.egress import GuardedTransport
from services.worker.http_client import UpstreamClient
from shared.egress import EgressPolicy
from shared.errors import ErrorCode, GatewayError

pytestmark = pytest.mark.anyio

PUBLIC = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
DEFAULT = EgressPolicy()
Address = tuple[str, int]


class Server:
    """A tiny HTTP/1.1 server on 127.0.0.1 in the test's event loop: records every connection and request head,
    and answers each request with ``status``, ``headers`` and ``body`` (then closes the connection)."""

    def __init__(self, body: bytes = b"ok", *, status: str = "200 OK", headers: tuple[str, ...] = ()) -> None:
        self.body, self.status, self.headers = body, status, headers
        self.connections = 0
        self.heads: list[str] = []
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            self.heads.append(head)
            fields = dict(line.split(":", 1) for line in head.lower().split("\r\n")[1:] if ":" in line)
            await reader.readexactly(int(fields.get("content-length", 0)))
            lines = [f"HTTP/1.1 {self.status}", f"content-length: {len(self.body)}", "connection: close", *self.headers]
            writer.write("\r\n".join(lines).encode() + b"\r\n\r\n" + self.body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(*servers: Server) -> AsyncIterator[None]:
    started = []
    try:
        for server in servers:
            started.append(await asyncio.start_server(server._serve, "127.0.0.1", 0))
            server.port = started[-1].sockets[0].getsockname()[1]
        yield
    finally:
        for running in started:
            running.close()
            await running.wait_closed()


class Resolver:
    """A stub DNS: the n-th lookup gets the n-th answer (the last one from then on); records each question."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = answers
        self.asked: list[Address] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return self.answers[min(len(self.asked), len(self.answers)) - 1]


@contextlib.contextmanager
def recorded_connects() -> Iterator[list[Address]]:
    """Every (address, port) the running loop is asked to connect to; only loopback addresses are connected."""
    loop = asyncio.get_running_loop()
    real = loop.create_connection
    seen: list[Address] = []

    async def create_connection(factory: Any, host: str, port: int, **kwargs: Any) -> Any:
        seen.append((host, port))
        if not ipaddress.ip_address(host).is_loopback:  # a name here (not an address) fails the test too
            raise OSError(errno.ENETUNREACH, "the tests do not leave this machine")
        return await real(factory, host, port, **kwargs)

    loop.create_connection = create_connection  # type: ignore[method-assign,assignment]
    try:
        yield seen
    finally:
        del loop.create_connection


def guarded(policy: EgressPolicy, resolve: Resolver, *, max_bytes: int = 1_000_000) -> UpstreamClient:
    """The worker's client for client-named upstreams (``services.worker.runtime``), with a stub resolver."""
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8, keepalive_expiry=30)
    return UpstreamClient(
        timeout=httpx.Timeout(2.0),
        transport=GuardedTransport(limits, policy, max_bytes=max_bytes, resolve=resolve),
        trust_env=False,
        follow_redirects=False,
    )


async def _refused(client: httpx.AsyncClient, url: str) -> GatewayError:
    with pytest.raises(GatewayError) as refused:
        await client.get(url)
    assert refused.value.code == ErrorCode.UPSTREAM_NOT_ALLOWED, refused.value.message
    assert refused.value.param == "proxyUrl"
    return refused.value


async def test_dns_rebinding_the_second_answer_is_checked_and_refused() -> None:
    server = Server()
    async with serving(server):
        resolver = Resolver([PUBLIC], ["127.0.0.1"])
        url = f"https://rebind.example.com:{server.port}/v1/models"
        with recorded_connects() as connects:
            async with guarded(DEFAULT, resolver) as client:
                with pytest.raises(httpx.ConnectError):  # checked, allowed, connected to that address: unreachable
                    await client.get(url)
                error = await _refused(client, url)
    assert "(rule: address/loopback)" in error.message and "rebind.example.com" in error.message
    assert resolver.asked == [("rebind.example.com", server.port)] * 2  # one lookup per connection, none between
    assert connects == [(PUBLIC, server.port)]
    assert server.connections == 0


@pytest.mark.parametrize(
    "addresses",
    [
        pytest.param([PUBLIC, "127.0.0.1"], id="public-then-loopback"),
        pytest.param(["127.0.0.1", PUBLIC], id="loopback-then-public"),
        pytest.param([PUBLIC_V6, "::1"], id="public-v6-then-loopback-v6"),
        pytest.param([PUBLIC, "::ffff:127.0.0.1"], id="public-then-v4-mapped-loopback"),
        pytest.param([PUBLIC, "169.254.169.254"], id="public-then-metadata"),
        pytest.param([PUBLIC, "10.0.0.1"], id="public-then-private"),
        pytest.param([PUBLIC_V6, "fe80::1%eth0"], id="public-then-link-local-with-zone"),
        pytest.param([PUBLIC, "0.0.0.0"], id="public-then-unspecified"),
    ],
)
async def test_a_name_with_a_public_and_a_blocked_address_is_refused(addresses: list[str]) -> None:
    server = Server()
    async with serving(server):
        with recorded_connects() as connects:
            async with guarded(DEFAULT, Resolver(addresses)) as client:
                error = await _refused(client, f"https://mixed.example.com:{server.port}/v1")
    assert "(rule: address/" in error.message
    assert connects == []
    assert server.connections == 0


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(EgressPolicy(allow=("name.test",)), id="name"),
        pytest.param(EgressPolicy(allow=("*.test",)), id="wildcard"),
        pytest.param(EgressPolicy(allow_http=True, allow=("127.0.0.0/8",)), id="cidr"),
    ],
)
async def test_an_allow_listed_name_connects_to_the_address_it_resolved_to(policy: EgressPolicy) -> None:
    server = Server(b'{"data": []}', headers=("content-type: application/json",))
    async with serving(server):
        resolver = Resolver(["127.0.0.1"])
        with recorded_connects() as connects:
            async with guarded(policy, resolver) as client:
                response = await client.get(f"http://name.test:{server.port}/v1/models")
    assert (response.status_code, response.json()) == (200, {"data": []})
    assert connects == [("127.0.0.1", server.port)]
    assert server.connections == 1 and f"host: name.test:{server.port}" in server.heads[0].lower()


async def test_an_allow_list_entry_with_another_port_does_not_allow_this_one() -> None:
    server = Server()
    async with serving(server):
        policy = EgressPolicy(allow=(f"name.test:{server.port + 1}",))
        with recorded_connects() as connects:
            async with guarded(policy, Resolver(["127.0.0.1"])) as client:
                error = await _refused(client, f"http://name.test:{server.port}/v1")
    assert "(rule: scheme/http)" in error.message
    assert connects == [] and server.connections == 0


@pytest.mark.parametrize(
    ("policy", "address"),
    [
        pytest.param(EgressPolicy(allow=("name.test",), deny=("127.0.0.0/8",)), "127.0.0.1", id="deny-wins-over-allow"),
        pytest.param(EgressPolicy(deny=("93.184.215.0/24",)), PUBLIC, id="a-public-range"),
        pytest.param(EgressPolicy(deny=("93.184.215.0/24",)), f"::ffff:{PUBLIC}", id="carried-in-v4-mapped"),
    ],
)
async def test_a_deny_cidr_refuses_a_name_that_resolves_into_it(policy: EgressPolicy, address: str) -> None:
    server = Server()
    async with serving(server):
        with recorded_connects() as connects:
            async with guarded(policy, Resolver([address])) as client:
                error = await _refused(client, f"https://name.test:{server.port}/v1")
    assert "(rule: denylist)" in error.message
    assert connects == [] and server.connections == 0


@pytest.mark.parametrize("url", ["https://127.0.0.1:{port}/v1", "https://[::1]:{port}/v1", "http://127.1:{port}/v1"])
async def test_an_address_in_the_url_is_checked_without_a_lookup(url: str) -> None:
    server = Server()
    async with serving(server):
        resolver = Resolver(["127.0.0.1"])
        with recorded_connects() as connects:
            async with guarded(DEFAULT, resolver) as client:
                await _refused(client, url.format(port=server.port))
    assert resolver.asked == [] and connects == [] and server.connections == 0


async def test_a_name_that_resolves_to_nothing_is_a_connect_error() -> None:
    with recorded_connects() as connects:
        async with guarded(DEFAULT, Resolver([])) as client:
            with pytest.raises(httpx.ConnectError, match="resolves to no address"):
                await client.get("https://nowhere.example.com/v1")
    assert connects == []


@pytest.mark.parametrize(
    ("size", "cap"),
    [
        pytest.param(64 * 1024, 10_000, id="larger"),
        pytest.param(2 * 1024 * 1024, 1_000_000, id="larger-than-the-transport-buffer"),
    ],
)
async def test_an_answer_larger_than_max_bytes_ends_with_an_error(size: int, cap: int) -> None:
    server = Server(b"x" * size)
    async with serving(server):
        policy = EgressPolicy(allow=("name.test",))
        async with guarded(policy, Resolver(["127.0.0.1"]), max_bytes=cap) as client:
            with pytest.raises(GatewayError, match=f"larger than {cap} bytes") as whole:
                await client.get(f"http://name.test:{server.port}/v1")
            request = client.build_request("GET", f"http://name.test:{server.port}/v1")
            response = await client.send(request, stream=True)
            received = 0
            with pytest.raises(GatewayError, match=f"larger than {cap} bytes"):
                async for chunk in response.aiter_raw():
                    received += len(chunk)
            await response.aclose()
    assert whole.value.code == ErrorCode.UPSTREAM_ERROR
    assert received <= cap


async def test_an_answer_of_exactly_max_bytes_is_read_whole() -> None:
    server = Server(b"x" * 10_000)
    policy = EgressPolicy(allow=("name.test",))
    async with serving(server), guarded(policy, Resolver(["127.0.0.1"]), max_bytes=10_000) as client:
        response = await client.get(f"http://name.test:{server.port}/v1")
    assert len(response.content) == 10_000


async def test_a_redirect_is_returned_not_followed() -> None:
    target = Server(b"the target's content")
    async with serving(target):
        redirect = Server(b"", status="302 Found", headers=(f"location: http://name.test:{target.port}/v1",))
        async with serving(redirect):
            policy = EgressPolicy(allow=("name.test",))
            async with guarded(policy, Resolver(["127.0.0.1"])) as client:
                response = await client.post(f"http://name.test:{redirect.port}/v1", json={})
    assert response.status_code == 302 and response.content == b""
    assert redirect.connections == 1 and target.connections == 0
