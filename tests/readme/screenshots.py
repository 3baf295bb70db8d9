"""Take the README's screenshots of the dashboard from the example database of the tests.

    .venv/bin/python tests/readme/screenshots.py        # writes tests/readme/ui-{runs,run,compare}.png

It builds the runs of ``tests/trained_runs.py`` in a temporary folder, serves them with the real
app and photographs the runs, run and compare pages in Debian's Chromium.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent.parent)]

import trained_runs  # noqa: E402
from ui_support import launch_chromium, serving  # noqa: E402

SHOTS = {  # file -> (path, what must be drawn first, clip height)
    "ui-runs.png": ("/", "document.querySelectorAll('#runs-table tbody tr').length === 5", 520),
    "ui-run.png": ("/runs/3", "Object.keys(window.runhistoryCharts).length === 2", 900),
    "ui-compare.png": ("/compare?runs=1,2,3", "Object.keys(window.runhistoryCharts).length === 3 && window.runhistoryParcoords", 2000),
}


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/runs.db"
        trained_runs.build(url)
        with serving(url) as site, sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for name, (path, ready, height) in SHOTS.items():
                page.goto(site.url(path))
                page.wait_for_function(ready)
                if name == "ui-runs.png":
                    page.check('#runs-table tr[data-run-id="1"] input.pick')
                    page.check('#runs-table tr[data-run-id="2"] input.pick')
                full = page.evaluate("document.documentElement.scrollHeight")
                page.screenshot(path=str(HERE / name), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": min(height, full)})
                print("wrote", HERE / name)
            browser.close()


if __name__ == "__main__":
    main()
