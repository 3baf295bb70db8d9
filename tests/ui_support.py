"""A real dashboard server for the tests: uvicorn on a free port, in a thread of the test
process, and plain HTTP requests to it (urllib); and Debian's Chromium for the browser tests.

Pages expose what they draw: ``window.runhistoryCharts[metric]`` holds each chart's lines
(``data.lines``: label, stage, rev, x, y), what it drew (``drawn``) and its event markers, so
browser tests read the points from the page, never from a screenshot.
"""
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

CHROMIUM = "/usr/bin/chromium"


class Served:
    """A running server: ``get`` answers ``(status, headers, body)``, ``json`` the decoded body,
    ``url`` the address of a path (for the browser)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def url(self, path: str = "/") -> str:
        return self.base + path

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


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium (Playwright's own browser download is not available here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])


def chart_points(page: Any, metric: str, rev: int = 0) -> list[list[Any]]:
    """The ``[x, y]`` pairs the page holds for ``metric``'s lines of revision ``rev``, by stage order."""
    lines = page.evaluate(
        "([m, rev]) => (window.runhistoryCharts[m] ? window.runhistoryCharts[m].data.lines : [])"
        ".filter(l => l.rev === rev).map(l => l.x.map((x, i) => [x, l.y[i]]))", [metric, rev])
    return [pair for line in lines for pair in line]


def table_rows(page: Any) -> list[tuple[str, str]]:
    """The runs page's rows as ``(name, status)``."""
    return [tuple(r) for r in page.eval_on_selector_all(
        "#runs-table tbody tr", "rows => rows.map(r => [r.querySelector('.col-name').textContent, r.dataset.status])")]


def wait_for_charts(page: Any, n: int) -> None:
    """Wait until the page has drawn exactly ``n`` charts."""
    page.wait_for_function("n => Object.keys(window.runhistoryCharts).length === n", arg=n)
