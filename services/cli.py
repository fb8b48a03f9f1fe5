"""The ``conduit`` command: ``up`` (the whole stack, for development), ``api``, ``worker``, ``token create``,
``keys create|list|revoke`` and ``usage``.

Settings come from the environment, read here once; a bad one stops the command with the variable's name.
The command's own state (the development secret, the record of a running ``conduit up``) is in the directory
``services.devstate`` describes; ``keys`` and ``usage`` say on stderr which Redis they use, and why.
"""

import argparse
import asyncio
import logging
import os
import sys
import time
from datetime import UTC, datetime

import msgspec

from services.batches_cli import add_batch_commands
from services.devstate import DevState, RedisChoice, StackStartingError, choose_redis, state_dir
from shared.catalog import CatalogError
from shared.config import SettingsError
from shared.tasks import QueueName

__all__ = ["main"]


def _state() -> DevState:
    return DevState(state_dir(os.environ))


def _cmd_token(args: argparse.Namespace) -> int:
    from services.api.auth.tokens import issue_token

    secret = os.environ.get("CONDUIT_JWT_SECRET", "").strip()
    if not secret:
        state = _state()
        secret = state.dev_secret(create=True) or ""
        print(
            f"conduit: CONDUIT_JWT_SECRET is not set; signed with the development secret in {state.secret_file}",
            file=sys.stderr,
        )
    print(issue_token(secret, args.user, args.tier, args.ttl))
    return 0


def redis_for(command: str) -> RedisChoice:
    """The Redis ``conduit keys`` / ``conduit usage`` use, announced on stderr with the reason."""
    choice = choose_redis(os.environ, _state())
    print(f"conduit {command}: using Redis {choice.url} ({choice.reason})", file=sys.stderr)
    return choice


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expiry(text: str, now: float) -> float:
    """``30d``, ``12h``, ``90m``, ``3600`` (seconds) or an ISO date/time (UTC) -> unix time."""
    text = text.strip()
    if text and text[-1] in _UNITS and text[:-1].isdigit():
        return now + int(text[:-1]) * _UNITS[text[-1]]
    if text.isdigit():
        return now + int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SettingsError(f"--expires: {text!r} is neither a duration (30d, 12h) nor an ISO date") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


async def _keys(args: argparse.Namespace) -> int:
    import redis.asyncio as aioredis

    from services.api.auth.keys import KeyStore
    from services.api.tiers import Limits

    client = aioredis.Redis.from_url(redis_for("keys").url, socket_timeout=5, socket_connect_timeout=5)
    store = KeyStore(client)
    try:
        if args.keys_command == "create":
            limits = Limits(
                requests_per_minute=args.rpm,
                tokens_per_minute=args.tpm,
                concurrent_streams=args.streams,
                max_tokens=args.max_tokens,
            )
            expires = parse_expiry(args.expires, time.time()) if args.expires else 0.0
            secret, record = await store.create(args.user, args.tier, args.name or "", expires, limits)
            print(f"conduit: key {record.id} for {record.user} ({record.tier}); shown once:", file=sys.stderr)
            print(secret)
        elif args.keys_command == "list":
            print(
                f"{'id':<21} {'user':<16} {'tier':<10} {'name':<16} {'created':<20} {'expires':<20} "
                f"{'last used':<20} {'state':<8}"
            )
            now = time.time()
            for key in await store.list(args.user):
                state = "revoked" if key.revoked else ("expired" if not key.usable(now) else "active")
                print(
                    f"{key.id:<21} {key.user:<16} {key.tier:<10} {key.name or '-':<16} {_when(key.created):<20} "
                    f"{_when(key.expires):<20} {_when(key.last_used):<20} {state:<8}"
                )
        else:
            revoked = await store.revoke(args.key_id)
            if revoked is None:
                print(f"conduit keys revoke: no key {args.key_id}", file=sys.stderr)
                return 1
            print(f"revoked {revoked.id} ({revoked.user})")
    finally:
        await client.aclose()
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    return asyncio.run(_keys(args))


async def _usage(args: argparse.Namespace) -> int:
    import redis.asyncio as aioredis

    from services.api.usage import read_usage

    client = aioredis.Redis.from_url(redis_for("usage").url, socket_timeout=5, socket_connect_timeout=5)
    try:
        report = await read_usage(client, args.user, args.days)
    finally:
        await client.aclose()
    print(f"{'date':<12} {'provider/model':<40} {'requests':>9} {'prompt':>10} {'completion':>11}")
    for day in report["days"]:
        for row in day["models"]:
            name = f"{row['provider']}/{row['model']}"
            print(
                f"{day['date']:<12} {name:<40} {row['requests']:>9} {row['prompt_tokens']:>10} "
                f"{row['completion_tokens']:>11}"
            )
    return 0


def _cmd_usage(args: argparse.Namespace) -> int:
    return asyncio.run(_usage(args))


def _cmd_api(args: argparse.Namespace) -> int:
    from services.api.app import create_app
    from services.api.serve import serve
    from services.api.settings import ApiSettings
    from services.telemetry.logs import configure_logging
    from services.telemetry.traces import configure_tracing
    from shared.config import load_settings

    settings = load_settings(ApiSettings, os.environ)
    configure_logging(settings.log_format, logging.WARNING if args.quiet else logging.INFO)
    configure_tracing("conduit-api", os.environ)
    serve(create_app(settings, os.environ), settings, quiet=args.quiet)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from services.telemetry.logs import configure_logging
    from services.worker.celery_app import POOL, create_celery, load_from_environ

    queues = [name.strip() for name in args.queues.split(",") if name.strip()]
    known = [queue.value for queue in QueueName]
    if not queues or not set(queues) <= set(known):
        print(f"conduit worker: --queues takes {' and/or '.join(known)}, comma-separated", file=sys.stderr)
        raise SystemExit(2)
    settings, catalog = load_from_environ(dict(os.environ))
    settings = msgspec.structs.replace(settings, queues=tuple(queues))
    if queues == [QueueName.BATCH.value] and settings.batch_nice:
        os.nice(settings.batch_nice)  # batch lines wait for interactive work, not the other way round
    configure_logging(settings.log_format, logging.WARNING if args.quiet else logging.INFO)  # Celery's start too
    app = create_celery(settings, catalog)
    argv = [
        *(["--quiet"] if settings.log_format == "json" else []),  # no banner: every line is a JSON object
        "worker",
        f"--pool={POOL}",
        "--concurrency=1",
        f"--queues={','.join(queues)}",
        f"--hostname={settings.worker_name.replace(':', '-')}@%h",
        f"--loglevel={'WARNING' if args.quiet else 'INFO'}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    app.worker_main(argv)  # runs until the worker stops, then exits the process


def _cmd_up(args: argparse.Namespace) -> int:
    from services.stack import run_stack

    return run_stack(_state(), quiet=args.quiet)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conduit", description="Conduit, an LLM gateway.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up",
        help="run Redis (embedded if needed), a worker and the API in the foreground (one per state directory)",
    )
    up.add_argument("--quiet", action="store_true", help="only warnings from the services")
    up.set_defaults(run=_cmd_up)
    api = commands.add_parser("api", help="run the API server (needs CONDUIT_JWT_SECRET)")
    api.add_argument("--quiet", action="store_true")
    api.set_defaults(run=_cmd_api)
    worker = commands.add_parser("worker", help="run a Celery worker")
    worker.add_argument("--quiet", action="store_true")
    worker.add_argument(
        "--queues",
        default="interactive",
        help="the queues it serves: interactive (generation, the default), batch (batch lines), or both",
    )
    worker.set_defaults(run=_cmd_worker)
    token = commands.add_parser("token", help="bearer tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="print a signed JWT (and nothing else) on stdout")
    create.add_argument("--user", required=True, help="the user id (the `sub` claim)")
    create.add_argument("--tier", required=True, choices=["free", "pro", "enterprise"])
    create.add_argument("--ttl", type=int, default=86400, help="seconds until it expires (default 86400)")
    create.set_defaults(run=_cmd_token)
    keys = commands.add_parser("keys", help="API keys (sk-conduit-...), stored in Redis by their SHA-256 only")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    make = keys_commands.add_parser("create", help="print a new key (shown once) on stdout")
    make.add_argument("--user", required=True)
    make.add_argument("--tier", required=True, choices=["free", "pro", "enterprise"])
    make.add_argument("--name", help="a label for it")
    make.add_argument("--expires", help="30d, 12h, 90m, seconds, or an ISO date (UTC); default never")
    make.add_argument("--rpm", type=int, help="its own requests per minute (default: the tier's; 0 = unlimited)")
    make.add_argument("--tpm", type=int, help="its own tokens per minute")
    make.add_argument("--streams", type=int, help="its own concurrent streams")
    make.add_argument("--max-tokens", type=int, help="its own max_tokens cap")
    make.set_defaults(run=_cmd_keys)
    listing = keys_commands.add_parser(
        "list", help="every key (or one user's), without secrets; revoked and expired ones for 30 days"
    )
    listing.add_argument("--user")
    listing.set_defaults(run=_cmd_keys)
    revoke = keys_commands.add_parser(
        "revoke", help="refuse a key from now on, on every API replica (listed 30 more days, then removed)"
    )
    revoke.add_argument("key_id")
    revoke.set_defaults(run=_cmd_keys)
    usage = commands.add_parser("usage", help="a user's usage per day, provider and model")
    usage.add_argument("--user", required=True)
    usage.add_argument("--days", type=int, default=7)
    usage.set_defaults(run=_cmd_usage)
    add_batch_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except (SettingsError, CatalogError, StackStartingError) as exc:
        print(f"conduit {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
