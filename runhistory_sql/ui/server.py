"""Serving the dashboard with uvicorn: bind, print the address, open a browser, stop on Ctrl-C."""
from __future__ import annotations

import os
import socket
import sys
import threading
import time
import webbrowser
from typing import Callable

import uvicorn
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ..errors import InvalidArgumentError
from .app import create_app


def address(host: str, port: int, token: str | None) -> str:
    """The URL to open: the bound host (this machine's name for a wildcard bind), with the token."""
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def has_display() -> bool:
    """Whether a browser can be shown: always on macOS and Windows, with X or Wayland elsewhere."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one).

    :raises InvalidArgumentError: the address is taken or cannot be bound
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InvalidArgumentError(f"Cannot listen on {host}:{port}: {e.strerror}. Choose another with --host / --port.") from e
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    url: str | None, *, host: str = "127.0.0.1", port: int = 8686, token: str | None = None,
    open_browser: bool = True, query_timeout: float = 5.0, say: Callable[[str], None] = print,
) -> None:
    """Serve the dashboard until Ctrl-C (or SIGTERM), then return.

    :param token: required of every request when given (see :mod:`.auth`)
    :param open_browser: open the address in a browser once the server answers (when there is a display)
    :param say: where the address goes (a line per message)
    """
    app = create_app(url, token=token, query_timeout=query_timeout)
    if token is None and host in ("127.0.0.1", "localhost"):
        # without a token, only requests addressed to this machine's own name: a web page that
        # rebinds its DNS name to 127.0.0.1 gets 400, not the runs
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])
    sock = bind(host, port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    where = address(host, sock.getsockname()[1], token)
    say(f"runhistory-sql ui: {where}")
    say("Press Ctrl-C to stop.")
    if open_browser and has_display():
        threading.Thread(target=_open_when_started, args=(server, where), daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def _open_when_started(server: uvicorn.Server, where: str) -> None:
    for _ in range(100):
        if server.started:
            webbrowser.open(where)
            return
        time.sleep(0.05)
