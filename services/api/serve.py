"""Serving the app with uvicorn, with a graceful stop that never cuts a stream short without a terminal frame.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections and waits for the open ones; Conduit's relays
get ``shutdown_grace`` seconds to finish (``Drain``), then each open stream ends with a retryable error
event and its job runs on, so the client can resume it elsewhere. Uvicorn's own timeout comes after that,
so it never has to cut a response in the middle.
"""

from typing import Any

import uvicorn
from litestar import Litestar

from services.api.relay.events import Drain
from services.api.settings import ApiSettings

__all__ = ["serve"]


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: Drain, grace: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._grace = grace

    def handle_exit(self, sig: int, frame: Any) -> None:
        self._drain.begin(self._grace)
        super().handle_exit(sig, frame)


def serve(app: Litestar, settings: ApiSettings, *, quiet: bool = False) -> None:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level="warning" if quiet else "info",
        access_log=not quiet,
        timeout_graceful_shutdown=int(settings.shutdown_grace) + 5,
        server_header=False,
    )
    _Server(config, app.state.drain, settings.shutdown_grace).run()
