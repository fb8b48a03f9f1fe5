"""The ``conduit`` command: ``up`` (the whole stack, for development), ``api``, ``worker``, ``token create``.

Settings come from the environment, read here once; a bad one stops the command with the variable's name.
"""

import argparse
import logging
import os
import secrets
import sys
from pathlib import Path

from shared.catalog import CatalogError
from shared.config import SettingsError

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
DEV_DIR = ROOT / ".conduit"
DEV_SECRET = DEV_DIR / "dev-secret"


def dev_secret(create: bool) -> str | None:
    """The development JWT secret kept in the checkout (ignored by git), made on first use."""
    if DEV_SECRET.exists():
        return DEV_SECRET.read_text().strip()
    if not create:
        return None
    DEV_DIR.mkdir(exist_ok=True)
    DEV_SECRET.write_text(secrets.token_urlsafe(48) + "\n")
    DEV_SECRET.chmod(0o600)
    return DEV_SECRET.read_text().strip()


def _cmd_token(args: argparse.Namespace) -> int:
    from services.api.auth.tokens import issue_token

    secret = os.environ.get("CONDUIT_JWT_SECRET", "").strip()
    if not secret:
        secret = dev_secret(create=True) or ""
        print(
            f"conduit: CONDUIT_JWT_SECRET is not set; signed with the development secret in {DEV_SECRET}",
            file=sys.stderr,
        )
    print(issue_token(secret, args.user, args.tier, args.ttl))
    return 0


def _cmd_api(args: argparse.Namespace) -> int:
    from services.api.app import create_app
    from services.api.serve import serve
    from services.api.settings import ApiSettings
    from shared.config import load_settings

    settings = load_settings(ApiSettings, os.environ)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(create_app(settings), settings, quiet=args.quiet)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from services.worker.celery_app import POOL, create_celery, load_from_environ

    settings, catalog = load_from_environ(dict(os.environ))
    app = create_celery(settings, catalog)
    argv = [
        "worker",
        f"--pool={POOL}",
        "--concurrency=1",
        "--queues=interactive",
        f"--hostname={settings.worker_name.replace(':', '-')}@%h",
        f"--loglevel={'WARNING' if args.quiet else 'INFO'}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    app.worker_main(argv)  # runs until the worker stops, then exits the process


def _cmd_up(args: argparse.Namespace) -> int:
    from services.stack import run_stack

    return run_stack(quiet=args.quiet)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conduit", description="Conduit, an LLM gateway.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run Redis (embedded if needed), a worker and the API in the foreground")
    up.add_argument("--quiet", action="store_true", help="only warnings from the services")
    up.set_defaults(run=_cmd_up)
    api = commands.add_parser("api", help="run the API server (needs CONDUIT_JWT_SECRET)")
    api.add_argument("--quiet", action="store_true")
    api.set_defaults(run=_cmd_api)
    worker = commands.add_parser("worker", help="run a Celery worker")
    worker.add_argument("--quiet", action="store_true")
    worker.set_defaults(run=_cmd_worker)
    token = commands.add_parser("token", help="bearer tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="print a signed JWT (and nothing else) on stdout")
    create.add_argument("--user", required=True, help="the user id (the `sub` claim)")
    create.add_argument("--tier", required=True, choices=["free", "pro", "enterprise"])
    create.add_argument("--ttl", type=int, default=86400, help="seconds until it expires (default 86400)")
    create.set_defaults(run=_cmd_token)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except (SettingsError, CatalogError) as exc:
        print(f"conduit {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
