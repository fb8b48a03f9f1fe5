"""``conduit batches list|show|watch|cancel``: a user's batches through the API, as the SDK sees them.

The API is ``--url`` (default: the running ``conduit up``'s, else http://127.0.0.1:8000) and the caller's
token ``--token`` (default: ``$CONDUIT_TOKEN``, else ``$TOKEN``). ``watch`` draws a progress bar with the
lines done, their rate and the time left, until the batch ends; its exit status says how it ended (0:
``completed``).
"""

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from services.devstate import DevState, state_dir

__all__ = ["add_batch_commands"]

ENDED = ("completed", "failed", "expired", "cancelled")
BAR = 30


def _api(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    url = args.url
    if not url:
        state = DevState(state_dir(os.environ))
        record = state.read_record() if state.stack_held() else None
        url = record.api_url if record is not None else "http://127.0.0.1:8000"
    token = args.token or os.environ.get("CONDUIT_TOKEN") or os.environ.get("TOKEN") or ""
    if not token:
        raise SystemExit("conduit batches: give a token (--token, or $CONDUIT_TOKEN or $TOKEN)")
    return url.rstrip("/"), {"authorization": f"Bearer {token}"}


def _call(args: argparse.Namespace, method: str, path: str, **params: Any) -> Any:
    url, headers = _api(args)
    try:
        response = httpx.request(method, f"{url}/v1/batches{path}", headers=headers, params=params, timeout=30)
    except httpx.HTTPError as exc:
        raise SystemExit(f"conduit batches: cannot reach the API at {url}: {exc}") from None
    body = response.json()
    if response.status_code != 200:  # noqa: PLR2004
        raise SystemExit(f"conduit batches: {response.status_code} {body.get('error', {}).get('message', body)}")
    return body


def _when(moment: int | None) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M") if moment else "-"


def _done(batch: dict[str, Any]) -> tuple[int, int]:
    counts = batch["request_counts"]
    return counts["completed"] + counts["failed"], counts["total"]


def progress(batch: dict[str, Any], elapsed: float, done_at_start: int) -> str:
    """One line: the bar, lines done of all, failed ones, the rate since watching began, and the time left."""
    done, total = _done(batch)
    filled = BAR * done // total if total else BAR
    rate = (done - done_at_start) / elapsed if elapsed > 0 else 0.0
    left = f"{(total - done) / rate:.0f} s left" if rate > 0 and done < total else "-"
    failed = batch["request_counts"]["failed"]
    return (
        f"{batch['id']} {batch['status']:<11} [{'#' * filled}{'.' * (BAR - filled)}] {done}/{total}"
        f"{f' ({failed} failed)' if failed else ''}  {rate:.1f} lines/s  {left}"
    )


def _list(args: argparse.Namespace) -> int:
    page = _call(args, "GET", "", limit=args.limit)
    print(f"{'id':<31} {'status':<11} {'done':>13} {'created':<17} {'output file':<30}")
    for batch in page["data"]:
        done, total = _done(batch)
        output = batch.get("output_file_id") or "-"
        created = _when(batch["created_at"])
        print(f"{batch['id']:<31} {batch['status']:<11} {f'{done}/{total}':>13} {created:<17} {output:<30}")
    return 0


def _show(args: argparse.Namespace) -> int:
    print(json.dumps(_call(args, "GET", f"/{args.batch_id}"), indent=2))
    return 0


def _cancel(args: argparse.Namespace) -> int:
    batch = _call(args, "POST", f"/{args.batch_id}/cancel")
    print(f"{batch['id']} {batch['status']}")
    return 0


def _watch(args: argparse.Namespace) -> int:
    started, tty = time.monotonic(), sys.stdout.isatty()
    batch = _call(args, "GET", f"/{args.batch_id}")
    first, _ = _done(batch)
    while True:
        line = progress(batch, time.monotonic() - started, first)
        print(f"\r{line}" if tty else line, end="" if tty else "\n", flush=True)
        if batch["status"] in ENDED:
            break
        time.sleep(args.every)
        batch = _call(args, "GET", f"/{args.batch_id}")
    if tty:
        print()
    for name in ("output_file_id", "error_file_id"):
        if batch.get(name):
            print(f"{name}: {batch[name]}")
    return 0 if batch["status"] == "completed" else 1


def add_batch_commands(commands: Any) -> None:
    """``conduit batches ...`` on the CLI's subparsers."""
    batches = commands.add_parser("batches", help="your batches, through the API: list, show, watch, cancel")
    batches.add_argument("--url", help="the API (default: the running `conduit up`'s, else http://127.0.0.1:8000)")
    batches.add_argument("--token", help="your token (default: $CONDUIT_TOKEN, else $TOKEN)")
    verbs = batches.add_subparsers(dest="batches_command", required=True)
    listing = verbs.add_parser("list", help="your batches, newest first")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(run=_list)
    for name, handler, text in (
        ("show", _show, "one batch, as the API answers it"),
        ("watch", _watch, "a progress bar with the time left, until the batch ends (exit 0: completed)"),
        ("cancel", _cancel, "stop handing out its lines; it ends cancelled with what was done"),
    ):
        verb = verbs.add_parser(name, help=text)
        verb.add_argument("batch_id")
        if name == "watch":
            verb.add_argument("--every", type=float, default=1.0, help="seconds between two looks")
        verb.set_defaults(run=handler)
