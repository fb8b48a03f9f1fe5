"""A Lua script's calls on a connection of their own, grouped: the calls made while a round trip is in flight
go out together in the next one (EVALSHA after EVALSHA in one write; the worker's ``RedisSink`` does the same
with its flushes), so a burst costs a few round trips, not one each. An idle caller sends at once, itself: no
pool checkout, no pipeline object, no task to wait a turn of the loop for. The API's admissions and the
worker's job claims both go this way (this module belongs to neither, so both may import it).

With ``resend``, a call whose connection broke is sent once more on a new one (the script must allow running
twice: the claim does; the admission, which charges counters, does not, and fails with the connection).
"""

import asyncio
import contextlib
import hashlib
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import AbstractConnection

__all__ = ["ScriptCalls", "exchange", "own_connection"]


class ScriptCalls:
    def __init__(
        self, client: "aioredis.Redis", script: str, *, resend: bool = False, default_timeout: float = 10.0
    ) -> None:
        self._client = client
        self._resend = resend
        self._script = script
        self._sha = hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
        self._waiting: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._connection: AbstractConnection | None = None
        self._timeout = client.connection_pool.connection_kwargs.get("socket_timeout") or default_timeout

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((("EVALSHA", self._sha, len(keys), *keys, *args), done))
        if not self._busy:
            self._busy = True
            try:
                await self._send_batch()
            finally:
                if self._waiting:  # what came meanwhile goes out from a task of its own
                    self._task = asyncio.create_task(self._drain(), name="redis-script-calls")
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
            results = await self._execute([command for command, _ in batch])
        except BaseException as exc:  # Redis unreachable (or the sender cancelled): every caller learns it
            failure = exc if isinstance(exc, Exception) else redis.exceptions.ConnectionError("call interrupted")
            for _, done in batch:
                if not done.done():
                    done.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, done), result in zip(batch, results, strict=True):
            if done.done():
                continue
            if isinstance(result, Exception):
                done.set_exception(result)
            else:
                done.set_result(result)

    async def _execute(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        try:
            results = await self._round_trip(commands)
        except (ConnectionError, TimeoutError, OSError, redis.exceptions.ConnectionError):
            if not self._resend:
                raise
            results = await self._round_trip(commands)  # once more, on a new connection
        missing = [i for i, result in enumerate(results) if isinstance(result, redis.exceptions.NoScriptError)]
        if missing:  # a new (or restarted) Redis
            await self._round_trip([("SCRIPT", "LOAD", self._script)])
            again = await self._round_trip([commands[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return results

    async def _round_trip(self, commands: list[tuple[Any, ...]]) -> list[Any]:
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
