"""Redis calls on a connection of their own, grouped: the calls made while a round trip is in flight go out
together in the next one (all their commands in one write; the worker's ``RedisSink`` does the same with its
flushes), so a burst costs a few round trips, not one each. An idle caller sends at once, itself: no pool
checkout, no pipeline object, no task to wait a turn of the loop for, no response callbacks (replies come as
Redis sends them: a hash as a flat list). The API's admissions and chat reads and the worker's job claims all
go this way (this module belongs to neither side, so both may import it).

A call is a list of commands, whose replies come back in order (an error reply in its place, not raised).
``EVALSHA`` of a script given to ``GroupedCalls(scripts=...)`` works on a Redis that does not know the script
yet (new, restarted, flushed): the call is sent again, whole, after loading it. With ``resend``, a call whose
connection broke (not one that timed out) is sent once more on a new one (every command must allow running
twice: the claim does; the admission, which charges counters, does not, and fails with the connection). A
round trip that timed out fails the calls that waited behind it too: they waited as long, for the same Redis.
"""

import asyncio
import contextlib
import hashlib
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import AbstractConnection

__all__ = ["GroupedCalls", "ScriptCalls", "exchange", "own_connection", "raised", "script_sha"]

Command = tuple[Any, ...]


def script_sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1


class GroupedCalls:
    def __init__(
        self,
        client: "aioredis.Redis",
        *,
        scripts: Iterable[str] = (),
        resend: bool = False,
        default_timeout: float = 10.0,
    ) -> None:
        self._client = client
        self._resend = resend
        self._scripts = {script_sha(script): script for script in scripts}
        self._waiting: list[tuple[list[Command], asyncio.Future[list[Any]]]] = []
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._connection: AbstractConnection | None = None
        self._timeout = client.connection_pool.connection_kwargs.get("socket_timeout") or default_timeout

    async def __call__(self, commands: list[Command]) -> list[Any]:
        """The replies to ``commands``, sent in one write with whatever else is waiting."""
        done: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((commands, done))
        if not self._busy:
            self._busy = True
            try:
                await self._send_batch()
            finally:
                if self._waiting:  # what came meanwhile goes out from a task of its own
                    self._task = asyncio.create_task(self._drain(), name="redis-grouped-calls")
                else:
                    self._busy = False
        return await done

    async def _drain(self) -> None:
        try:
            while self._waiting:
                await self._send_batch()
        finally:
            self._busy = False

    async def _send_batch(self) -> None:
        batch, self._waiting = self._waiting, []
        try:
            replies = await self._execute([commands for commands, _ in batch])
        except BaseException as exc:  # Redis unreachable (or the sender cancelled): every caller learns it
            failure = _redis_error(exc)
            if isinstance(failure, redis.exceptions.TimeoutError):  # those waiting behind it waited as long
                batch, self._waiting = [*batch, *self._waiting], []
            for _, done in batch:
                if not done.done():
                    done.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, done), result in zip(batch, replies, strict=True):
            if not done.done():
                done.set_result(result)

    async def _execute(self, calls: list[list[Command]]) -> list[list[Any]]:
        flat = [command for commands in calls for command in commands]
        try:
            results = await self._round_trip(flat)
        except TimeoutError:  # a silent Redis (frozen, or too busy): asking again would only double the wait
            raise
        except (ConnectionError, OSError, redis.exceptions.ConnectionError):
            if not self._resend:
                raise
            results = await self._round_trip(flat)  # once more, on a new connection
        replies, start = [], 0
        for commands in calls:
            replies.append(results[start : start + len(commands)])
            start += len(commands)
        unknown = [i for i, call in enumerate(replies) if any(_no_script(r) for r in call)]
        if unknown and self._scripts:  # a new (or restarted) Redis: load the scripts, send those calls again
            await self._round_trip([("SCRIPT", "LOAD", script) for script in self._scripts.values()])
            again = await self._round_trip([command for i in unknown for command in calls[i]])
            start = 0
            for i in unknown:
                replies[i] = again[start : start + len(calls[i])]
                start += len(calls[i])
        return replies

    async def _round_trip(self, commands: list[Command]) -> list[Any]:
        """All ``commands`` in one write, then their replies (an error reply in its place)."""
        connection = self._connection
        if connection is None:
            connection = self._connection = own_connection(self._client)
        try:
            async with asyncio.timeout(self._timeout):
                return await exchange(connection, commands)
        except BaseException:  # replies left unread would answer the next batch: start afresh
            await self.aclose()
            raise

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect()


def raised(replies: list[Any]) -> list[Any]:
    """A call's replies, its first error reply raised."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _redis_error(exc: BaseException) -> Exception:
    """What callers see of a failed round trip: redis-py's exceptions, as from its own calls (the API maps
    them to a 503)."""
    if isinstance(exc, redis.exceptions.RedisError):
        return exc
    failure: Exception
    if isinstance(exc, TimeoutError):
        failure = redis.exceptions.TimeoutError("Redis did not answer in time")
    elif isinstance(exc, ConnectionError | OSError):
        failure = redis.exceptions.ConnectionError(f"Redis unreachable: {exc}")
    elif isinstance(exc, Exception):
        return exc
    else:
        failure = redis.exceptions.ConnectionError("call interrupted")
    failure.__cause__ = exc
    return failure


def _no_script(reply: Any) -> bool:
    return isinstance(reply, redis.exceptions.NoScriptError)


class ScriptCalls:
    """Calls of one Lua script (``EVALSHA``), grouped (``GroupedCalls``); an error reply is raised."""

    def __init__(
        self, client: "aioredis.Redis", script: str, *, resend: bool = False, default_timeout: float = 10.0
    ) -> None:
        self._sha = script_sha(script)
        self._calls = GroupedCalls(client, scripts=[script], resend=resend, default_timeout=default_timeout)

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        (reply,) = await self._calls([("EVALSHA", self._sha, len(keys), *keys, *args)])
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def aclose(self) -> None:
        await self._calls.aclose()


def own_connection(client: "aioredis.Redis") -> AbstractConnection:
    """A connection outside the client's pool, with no socket timeout of its own: redis-py would run each write
    as a separate task (wait_for); the caller puts a whole round trip under one deadline instead."""
    pool = client.connection_pool
    connection: AbstractConnection = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
    return connection


async def exchange(connection: AbstractConnection, commands: list[tuple[Any, ...]]) -> list[Any]:
    """All ``commands`` in one write, then their replies in order, an error reply returned in its place (not
    raised: the other commands' replies must still be read). A caller that fails midway must drop the
    connection: replies left unread would answer its next commands."""
    await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
    return [await _reply(connection) for _ in commands]


async def _reply(connection: AbstractConnection) -> Any:
    try:
        return await connection.read_response()
    except redis.exceptions.ResponseError as exc:
        return exc
