"""A real dashboard server for the tests: uvicorn on a free port, in a thread of the test
process, and plain HTTP requests to it (urllib)."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any, Iterator
from contextlib import contextmanager

import uvicorn

from runhistory_sql.ui.app import create_app
from runhistory_sql.ui.server import bind


class Served:
    """A running server: ``get`` answers ``(status, headers, body)``, ``json`` the decoded body."""

    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
        request = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, path: str, status: int = 200) -> Any:
        got, _, body = self.get(path)
        assert got == status, body
        return json.loads(body)


@contextmanager
def serving(url: str, *, host: str = "127.0.0.1", connect: str = "127.0.0.1", **options: Any) -> Iterator[Served]:
    """Serve ``create_app(url, **options)`` on ``host`` (a free port) until the block ends."""
    sock = bind(host, 0)
    server = uvicorn.Server(uvicorn.Config(create_app(url, **options), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:  # the socket listens already: a request waits in its backlog until the server accepts it
        yield Served(f"http://{connect}:{sock.getsockname()[1]}")
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
