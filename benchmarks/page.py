"""Issue 13, the browser: the run page of a run with 10 metrics x 100,000 points shows its charts
in headless Chromium within 1.5 s, and the page's own JS + CSS (uPlot included) weigh at most 300 KB.

The page is served by the real app (uvicorn, in a thread) and timed from navigation start to the
moment its first charts are drawn (``window.runhistoryReady``, set by static/run.js), median of
``reps`` loads after a warm-up. Beside it, the same tab fetching the ten history answers alone
(no drawing): the part of the time the server and the network take.
"""
from __future__ import annotations

import os
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .common import Context, Row, limit_goal, log, median, skipped

ROWS = {
    "8a": "run page, 10 metrics x 100,000 points: charts shown",
    "8b": "the page's own JS + CSS (uPlot included)",
}
METRICS = 10
PER_METRIC = 100_000
EPOCHS = 100
CHROMIUM = "/usr/bin/chromium"
STATIC = Path(__file__).resolve().parent.parent / "runhistory_sql" / "ui" / "static"


def record(path: Path, per_metric: int) -> None:
    from runhistory_sql import SQLRunHistory

    per_epoch = max(1, per_metric // EPOCHS)
    with SQLRunHistory(f"sqlite:///{path}", experiment="bench", run_name="wide") as h:
        for epoch in range(EPOCHS):
            for step in range(per_epoch):
                for m in range(METRICS):
                    h.update_metric(f"metric_{m}", 1.0 / (1 + epoch * per_epoch + step) + 0.01 * m)
            h._increment_epoch()


@contextmanager
def served(url: str) -> Iterator[str]:
    import uvicorn

    from runhistory_sql.ui.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(create_app(url), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


FETCH_ONLY = """async (paths) => { const t = performance.now();
  await Promise.all(paths.map(p => fetch(p).then(r => r.json()))); return performance.now() - t; }"""


def page_times(base: str, reps: int) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    shown, fetched = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        paths = [f"/api/runs/1/history?metric=metric_{m}&x=seq&superseded=1" for m in range(METRICS)]
        for rep in range(reps + 1):  # the first load warms the caches
            page.goto(base + "/runs/1")
            page.wait_for_function("window.runhistoryReady", timeout=60_000)
            charts = page.evaluate("Object.keys(window.runhistoryCharts).length")
            assert charts == METRICS, charts
            if rep:
                shown.append(page.evaluate("window.runhistoryReady") / 1000)
                fetched.append(page.evaluate(FETCH_ONLY, paths) / 1000)
        browser.close()
    return shown, fetched


def own_bytes() -> tuple[int, int]:
    files = [p for p in STATIC.rglob("*") if p.suffix in (".js", ".css")]
    vendor = sum(p.stat().st_size for p in files if "vendor" in p.parts)
    return sum(p.stat().st_size for p in files), vendor


def run(ctx: Context) -> list[Row]:
    total, vendor = own_bytes()
    rows = [limit_goal("8b", ROWS["8b"], total / 1024, "uPlot alone", vendor / 1024, "KB", at_most=300, shown="≤ 300 KB")]
    try:
        import playwright  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        return [skipped("8a", ROWS["8a"], f"needs the [ui] and [test] extras ({e.name} missing)"), *rows]
    if not os.path.exists(CHROMIUM):
        return [skipped("8a", ROWS["8a"], f"no Chromium at {CHROMIUM} (apt-get install chromium)"), *rows]
    per_metric = min(PER_METRIC, max(1000, ctx.sizes.points // 10))
    path = ctx.path("page")
    log(f"recording {METRICS} metrics x {per_metric:,} points")
    record(path, per_metric)
    with served(f"sqlite:///{path}") as base:
        shown, fetched = page_times(base, max(3, ctx.sizes.reps))
    note = f"{METRICS} x {per_metric:,} points; median of {len(shown)} loads; max {max(shown) * 1e3:.0f} ms"
    return [limit_goal("8a", ROWS["8a"], median(shown), "the 10 history answers fetched alone", median(fetched), "s",
                       at_most=1.5, shown="≤ 1.5 s", note=note), *rows]
