"""The browser tests' parts: the real dashboard app served by uvicorn on a free port (in a
thread of the test process), and Debian's Chromium driven by Playwright.

Pages expose what they draw: ``window.runhistoryCharts[metric]`` holds each chart's lines
(``data.lines``: label, stage, rev, x, y), what it drew (``drawn``) and its event markers, so
tests read the points from the page, never from a screenshot.
"""
from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from typing import Any, Iterator

CHROMIUM = "/usr/bin/chromium"


class Served:
    """A running dashboard: ``served.url("/runs/1")``."""

    def __init__(self, base: str) -> None:
        self.base = base

    def url(self, path: str = "/") -> str:
        return self.base + path


@contextmanager
def serve(url: str, **options: Any) -> Iterator[Served]:
    """Serve the dashboard of the database at ``url`` (``create_app`` options: ``query_timeout``,
    ``token``) on 127.0.0.1 and a free port until the block ends."""
    import uvicorn

    from runhistory_sql.ui.app import create_app

    # The socket listens before the server thread starts, so the first request simply waits in
    # the backlog until uvicorn accepts it: nothing to poll for.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(url, **options), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])


def chart_points(page: Any, metric: str, rev: int = 0) -> list[list[Any]]:
    """The ``[x, y]`` pairs the page holds for ``metric``'s lines of revision ``rev``, by stage order."""
    lines = page.evaluate(
        "([m, rev]) => (window.runhistoryCharts[m] ? window.runhistoryCharts[m].data.lines : [])"
        ".filter(l => l.rev === rev).map(l => l.x.map((x, i) => [x, l.y[i]]))", [metric, rev])
    return [pair for line in lines for pair in line]
