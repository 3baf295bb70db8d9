"""The report file: one self-contained HTML page (the run page for one run, the compare page for
several) with the dashboard's own CSS and JS inline and every answer the page asks ``api()`` for
embedded, so it opens offline, attached to a pull request or a mail.

The answers are built by the same functions as the HTTP API (:mod:`runhistory_sql.ui.payloads`),
under the same paths, so the page cannot tell the file from the server.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from markupsafe import Markup

from ..errors import RunHistorySQLError

UI = Path(__file__).resolve().parent
STATIC = UI / "static"
#: the page's own scripts, in load order (templates/base.html lists the same for the server)
SCRIPTS = ("vendor/uPlot.iife.min.js", "core.js", "charts.js", "runs.js", "run.js", "compare.js", "sql.js")
STYLES = ("vendor/uPlot.min.css", "app.css")
#: the x axes the run and compare pages can switch between
X_MODES = ("epoch", "step", "seq", "time")
MAX_COMPARED = 20


#: the characters JavaScript's encodeURIComponent leaves as they are, beyond quote()'s own
SAFE = "!*'()"


def history_path(run_id: int, metric: str, x: str) -> str:
    """The path under which the page asks for a history (``historyPath`` in static/run.js)."""
    return f"/api/runs/{run_id}/history?metric={quote(metric, safe=SAFE)}&x={x}&superseded=1"


def compare_path(run_ids: Sequence[int]) -> str:
    """The path under which the compare page asks for its runs (static/compare.js)."""
    return "/api/compare?runs=" + quote(",".join(str(i) for i in run_ids), safe="")


def _inline(names: Sequence[str]) -> str:
    text = "\n".join((STATIC / name).read_text(encoding="utf-8") for name in names)
    return text.replace("</", "<\\/")  # no </script> or </style> ends the element early


def render_html(page: str, responses: Mapping[str, Any], *, title: str, **embed: Any) -> str:
    """The page ``page`` (``"run"`` or ``"compare"``) with ``responses`` (path -> JSON answer)
    and the JS and CSS inline.

    :param embed: what else the page reads from the embedded data (``run_id`` or ``runs``)
    """
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(UI / "templates"), autoescape=select_autoescape(default=True))
    inline = {"css": Markup(_inline(STYLES)), "js": Markup(_inline(SCRIPTS))}
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return env.get_template(f"{page}.html").render(
        inline=inline, generated=generated, title=title,
        embed={"page": page, "responses": dict(responses), **embed},
    )


def _unique(run_ids: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(run_ids))


def report_html(store: Any, runs: Sequence[str | int], *, experiment: str | None = None) -> str:
    """The report of ``runs`` (names or ids) in ``store`` (a :class:`~runhistory_sql.RunStore`).

    :raises RunHistorySQLError: no run, or more than 20
    :raises RunNotFoundError: a run that does not exist
    """
    from . import payloads

    ids = _unique([store.run_id(r, experiment) for r in runs])
    if not ids:
        raise RunHistorySQLError("A report needs at least one run: runhistory-sql report RUN [RUN...] -o report.html")
    if len(ids) > MAX_COMPARED:
        raise RunHistorySQLError(f"A report compares at most {MAX_COMPARED} runs, got {len(ids)}; name fewer runs.")
    responses: dict[str, Any] = {}
    for run_id in ids:
        report = payloads.run_payload(store, run_id)
        if len(ids) == 1:
            responses[f"/api/runs/{run_id}"] = report
        for metric in dict.fromkeys(s["metric"] for s in report["summaries"]):
            for x in X_MODES:
                responses[history_path(run_id, metric, x)] = payloads.history_payload(store, run_id, metric, x=x, superseded=True)
    if len(ids) == 1:
        name = responses[f"/api/runs/{ids[0]}"]["run"]["name"]
        return render_html("run", responses, title=f"{name} · runhistory-sql report", run_id=ids[0])
    responses[compare_path(ids)] = payloads.compare_payload(store, ids)
    return render_html("compare", responses, title=f"{len(ids)} runs · runhistory-sql report", runs=ids)


def write_report(url: str | None, runs: Sequence[str | int], output: str | Path, *, experiment: str | None = None) -> Path:
    """Write the report of ``runs`` in the database at ``url`` to ``output``; return its path."""
    from ..read.store import RunStore

    with RunStore(url) as store:
        text = report_html(store, runs, experiment=experiment)
    path = Path(output)
    path.write_text(text, encoding="utf-8")
    return path
