"""Slow and silent clients (slowloris) against the real API process: their connections are closed within the
read deadlines, and normal traffic keeps its latency meanwhile; connections beyond the cap are refused at once.
"""

import asyncio
import contextlib
import json
import resource
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.harness import ApiProcess, auth
from tests.stack import Stack, own_stack

pytestmark = pytest.mark.anyio

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0
KEEP_ALIVE_TIMEOUT = 1.0
LIMITS = {
    "CONDUIT_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
    "CONDUIT_BODY_TIMEOUT": str(BODY_TIMEOUT),
    "CONDUIT_KEEP_ALIVE_TIMEOUT": str(KEEP_ALIVE_TIMEOUT),
}
SILENT, HEADER_TRICKLE, BODY_TRICKLE = 1000, 125, 125
SLACK = 1.5  # a closed connection is seen this long after its deadline at most (2 cores, 1,250 sockets)
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Stack]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"1,250 attacking sockets need a file-descriptor limit of {wanted}; the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < wanted:  # this process holds every attacking socket
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )
    logs: Path = tmp_path_factory.mktemp("slow-clients")
    with own_stack(logs, fake, api_env=LIMITS) as private:
        yield private


async def _closed_after(reader: asyncio.StreamReader, limit: float, start: float) -> tuple[float, bytes]:
    """Seconds from ``start`` until the server closed the connection (inf if it did not within ``limit``), and
    what it sent."""
    received = b""
    try:
        async with asyncio.timeout(limit):
            while chunk := await reader.read(4096):
                received += chunk
    except TimeoutError:
        return float("inf"), received
    except ConnectionError:
        pass
    return time.monotonic() - start, received


async def _silent(port: int, limit: float) -> tuple[float, bytes]:
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await _closed_after(reader, limit, start)
    finally:
        writer.close()


async def _trickle(port: int, head: bytes, trickle: bytes, limit: float) -> tuple[float, bytes]:
    """Send ``head`` at once, then ``trickle`` a byte every 0.25 s; seconds from the connect to the close."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def drip() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in trickle:
                await asyncio.sleep(0.25)
                writer.write(bytes([byte]))
                await writer.drain()

    writer.write(head)
    dripping = asyncio.create_task(drip())
    try:
        return await _closed_after(reader, limit, start)
    finally:
        dripping.cancel()
        writer.close()


async def _normal(client: httpx.AsyncClient, url: str, until: float) -> list[tuple[float, int]]:
    """Requests one after another until ``until``: (latency, status) each."""
    results = []
    while time.monotonic() < until:
        start = time.monotonic()
        response = await client.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth(user="steady"))
        results.append((time.monotonic() - start, response.status_code))
    return results


async def _traffic(url: str, seconds: float, lanes: int = 4) -> list[tuple[float, int]]:
    async with httpx.AsyncClient(timeout=10) as client:
        until = time.monotonic() + seconds
        lanes_done = await asyncio.gather(*(_normal(client, url, until) for _ in range(lanes)))
    return [result for lane in lanes_done for result in lane]


def _p(latencies: list[float], q: int) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[q - 1]


@pytest.mark.timeout(60)
async def test_silent_and_trickling_connections_are_closed_while_normal_traffic_keeps_its_latency(
    stack: Stack,
) -> None:
    port = stack.api.port
    before = await _traffic(stack.url, 2.0)
    start_ok = len(before)
    limit = BODY_TIMEOUT + SLACK + 3  # beyond it a connection counts as never closed
    header_head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: conduit\r\n"
    body = json.dumps(CHAT).encode()
    body_head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: conduit\r\ncontent-type: application/json\r\n"
        f"authorization: {auth()['authorization']}\r\ncontent-length: {len(body) + 100}\r\n\r\n"
    ).encode()
    silent = [asyncio.create_task(_silent(port, limit)) for _ in range(SILENT)]
    headers = [
        asyncio.create_task(_trickle(port, header_head, b"x-slow: " + b"a" * 100, limit)) for _ in range(HEADER_TRICKLE)
    ]
    bodies = [asyncio.create_task(_trickle(port, body_head, body + b" " * 100, limit)) for _ in range(BODY_TRICKLE)]
    await asyncio.sleep(0.5)  # every attacker is connected
    during = await _traffic(stack.url, HEADER_TIMEOUT + 1.0)
    silent_done = await asyncio.gather(*silent)
    headers_done = await asyncio.gather(*headers)
    bodies_done = await asyncio.gather(*bodies)

    assert {status for _, status in before + during} == {200}
    base, attacked = [t for t, _ in before], [t for t, _ in during]
    figures = (
        f"before: {start_ok} requests, p50 {_p(base, 50) * 1000:.0f} ms, p99 {_p(base, 99) * 1000:.0f} ms; "
        f"during: {len(attacked)} requests, p50 {_p(attacked, 50) * 1000:.0f} ms, "
        f"p99 {_p(attacked, 99) * 1000:.0f} ms"
    )
    print(figures)
    assert _p(attacked, 99) < 1.0, figures
    assert len(attacked) >= 20, figures
    closed_silent = max(t for t, _ in silent_done)
    closed_headers = max(t for t, _ in headers_done)
    closed_bodies = max(t for t, _ in bodies_done)
    print(f"closed after at most: silent {closed_silent:.2f} s, headers {closed_headers:.2f} s, ", end="")
    print(f"body {closed_bodies:.2f} s")
    assert min(t for t, _ in silent_done + headers_done) > HEADER_TIMEOUT * 0.9  # closed by the deadline, not before
    assert min(t for t, _ in bodies_done) > BODY_TIMEOUT * 0.9
    assert closed_silent < HEADER_TIMEOUT + SLACK
    assert all(sent == b"" for _, sent in silent_done)  # nothing asked, nothing answered
    assert closed_headers < HEADER_TIMEOUT + SLACK
    assert all(b" 408 " in sent and b"request_timeout" in sent for _, sent in headers_done)
    assert closed_bodies < BODY_TIMEOUT + SLACK
    assert all(sent.startswith(b"HTTP/1.1 408 ") for _, sent in bodies_done)


async def test_an_idle_keep_alive_connection_is_closed(stack: Stack) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.api.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nhost: conduit\r\n\r\n")
    try:
        await reader.readuntil(b"\r\n\r\n")
        closed, _ = await _closed_after(reader, KEEP_ALIVE_TIMEOUT + 5, time.monotonic())
    finally:
        writer.close()
    assert closed < KEEP_ALIVE_TIMEOUT + SLACK


async def test_connections_beyond_the_cap_are_refused_at_once_and_served_again_after(stack: Stack) -> None:
    capped = ApiProcess(stack.api.log.parent, stack.redis.url, {**LIMITS, "CONDUIT_MAX_CONNECTIONS": "50"})
    try:
        capped.wait_ready()
        held = [await asyncio.open_connection("127.0.0.1", capped.port) for _ in range(50)]
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(timeout=10) as client:
            start = time.monotonic()
            refused = await client.get(f"{capped.base_url}/v1/models", headers=auth())
            took = time.monotonic() - start
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == "unavailable"
            assert took < 0.5
            for _, writer in held:
                writer.close()
            await asyncio.sleep(0.3)
            assert (await client.get(f"{capped.base_url}/v1/models", headers=auth())).status_code == 200
    finally:
        capped.stop()
