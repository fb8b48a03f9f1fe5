"""An SSE test client for fault tests: many streams at once, each recorded frame by frame with its times.

``watch`` opens one stream and records ``Seen``: every ``(id, data)`` frame, when the first content and
the terminal frame came, the error object if the stream ended with one, and whether it ended at all.
``Seen.check`` asserts what every stream must satisfy whatever was injected: ids strictly increasing,
exactly one terminal (``[DONE]`` last, at most one error frame, right before it).
"""

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Seen", "openai_text", "watch"]


@dataclass
class Seen:
    status: int = 0
    job_id: str = ""
    frames: list[tuple[str, str]] = field(default_factory=list)
    opened: float = 0.0
    first_content: float | None = None
    ended: float | None = None  # when the terminal frame (or the end of the body) came
    closed_by_us: float | None = None  # when the test closed the connection itself
    transport_error: str | None = None

    @property
    def error(self) -> dict[str, Any] | None:
        for _, data in self.frames:
            if data.startswith('{"error"'):
                error: dict[str, Any] = json.loads(data)["error"]
                return error
        return None

    @property
    def done(self) -> bool:
        return bool(self.frames) and self.frames[-1][1] == "[DONE]"

    def check(self) -> None:
        """Ids strictly increasing (no duplicate, nothing out of order); one terminal frame, last. Only the
        gateway's own terminal frames (an error it made, and the ``[DONE]`` after it) carry no id."""
        numbered = [ident for ident, _ in self.frames if ident]
        unnumbered = [data for ident, data in self.frames if not ident]
        assert not unnumbered or [data for _, data in self.frames[-len(unnumbered) :]] == unnumbered, (
            f"a frame without an id before the end: {self.frames}"
        )
        keys = [tuple(int(part) for part in (ident + ".0").split(".")[:2]) for ident in numbered]
        assert keys == sorted(set(keys)), f"frame ids out of order or repeated: {numbered}"
        assert self.done, f"the stream ended without [DONE] ({self.transport_error or 'no error'})"
        assert [data for _, data in self.frames].count("[DONE]") == 1
        errors = [i for i, (_, data) in enumerate(self.frames) if data.startswith('{"error"')]
        assert errors in ([], [len(self.frames) - 2]), "an error frame that is not the terminal one"


def openai_text(seen: Seen) -> str:
    chunks = [json.loads(data) for _, data in seen.frames if data.startswith('{"id"')]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


async def watch(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
    stop: Callable[[Seen], bool] | None = None,
    leave_after: float | None = None,
    timeout: float = 30.0,
) -> Seen:
    """One stream; ``stop(seen)`` is asked after each frame, and True makes the client hang up there;
    ``leave_after`` seconds makes it hang up then, whatever it is waiting for (the response head included)."""
    seen = Seen(opened=time.monotonic())
    try:
        async with asyncio.timeout(leave_after):
            await _read(client, method, url, json_body, headers, stop, timeout, seen)
    except TimeoutError:
        seen.closed_by_us = time.monotonic()
    return seen


async def _read(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    json_body: Any,
    headers: dict[str, str] | None,
    stop: Callable[[Seen], bool] | None,
    timeout: float,
    seen: Seen,
) -> None:
    fields: dict[str, str] = {}
    try:
        async with asyncio.timeout(timeout):
            async with client.stream(method, url, json=json_body, headers=headers) as response:
                seen.status, seen.job_id = response.status_code, response.headers.get("x-conduit-job-id", "")
                if stop is not None and stop(seen):
                    seen.closed_by_us = time.monotonic()
                    return
                async for line in response.aiter_lines():
                    if line:
                        if not line.startswith(":") and ": " in line:
                            name, value = line.split(": ", 1)
                            fields[name] = value
                        continue
                    if "data" not in fields:
                        continue
                    frame = (fields.get("id", ""), fields["data"])
                    fields = {}
                    seen.frames.append(frame)
                    if seen.first_content is None and '"content":"' in frame[1] and '"content":""' not in frame[1]:
                        seen.first_content = time.monotonic()
                    if frame[1] == "[DONE]":
                        seen.ended = time.monotonic()
                    if stop is not None and stop(seen):
                        seen.closed_by_us = time.monotonic()
                        return
    except httpx.HTTPError as exc:
        seen.transport_error = f"{type(exc).__name__}: {exc}"
    seen.ended = seen.ended or time.monotonic()
