"""The dashboard's ASGI app: read-only JSON under ``/api/`` (built by :mod:`.payloads`), the
pages (Jinja templates, autoescaped) and their static files.

Example::

    import uvicorn
    from runhistory_sql.ui.app import create_app

    uvicorn.run(create_app("sqlite:///runs.db"), host="127.0.0.1", port=8686)

Every route is a GET and reads only; the routes are plain functions, which Starlette runs in its
thread pool, so a slow query never blocks the server.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, AsyncIterator, Callable
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, TemplateNotFound, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..db.migrate import wait_for_schema
from ..errors import DatabaseUnavailableError, DatabaseURLError, RunHistorySQLError, RunNotFoundError
from ..read.query import DEFAULT_LIMIT, DEFAULT_TIMEOUT_S
from ..read.store import RunStore
from ..read.windows import DEFAULT_BUCKETS
from . import payloads
from .auth import COOKIE, accepted, presented

HERE = Path(__file__).resolve().parent
#: The most rows ``/api/query`` returns (``limit=``).
MAX_QUERY_ROWS = 10_000
#: The pages and their templates (the templates are ``uipages``'s; a missing one shows a stub).
PAGES = {"runs": "runs.html", "run": "run.html", "compare": "compare.html", "sql": "sql.html"}


# a browser never reads the API's JSON as anything else, and never keeps it (runs change)
_NO_SNIFF = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


class BadRequest(Exception):
    """A parameter of the request is malformed: HTTP 400 with the message."""


def create_app(url: str | None, *, token: str | None = None, query_timeout: float = DEFAULT_TIMEOUT_S) -> Starlette:
    """Build the dashboard app over the database at ``url`` (opened read-only, once).

    :param url: database URL; else ``$RUNHISTORY_SQL_URL``; else ``sqlite:///runhistory.db``
    :param token: when given, every request must carry it (see :mod:`.auth`), else 403
    :param query_timeout: seconds a statement of the SQL page may run before it is cancelled
    :raises RunHistorySQLError: the database does not exist, cannot be reached, holds no runs
        or has an older schema (the message says how to upgrade it)
    """
    store = RunStore(url)
    try:
        if not wait_for_schema(store.engine, timeout=0):  # an older schema: the fix is one command
            raise DatabaseURLError(f"{store!r} holds no runs yet. Record a run first (e.g. runhistory-sql demo).")
    except RunHistorySQLError:
        store.close()
        raise
    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    def api(build: Callable[[Request], Any]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return _json(build(request))
            except (BadRequest, RunHistorySQLError) as e:
                return _json({"error": " ".join(str(e).split())}, status=_status(e))
        return endpoint

    def page(name: str, **context: Callable[[Request], Any]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            values = {key: get(request) for key, get in context.items()}
            try:
                html = templates.get_template(PAGES[name]).render(static_url="/static", **values)
            except TemplateNotFound:
                html = f"<!doctype html><title>runhistory-sql</title><p>The {name} page.</p>"
            return HTMLResponse(html)
        return endpoint

    routes = [
        Route("/", page("runs")),
        Route("/runs/{run_id:int}", page("run", run_id=lambda r: r.path_params["run_id"])),
        Route("/compare", page("compare")),
        Route("/sql", page("sql")),
        Route("/api/runs", api(lambda r: payloads.runs_payload(store, **_runs_args(r)))),
        Route("/api/runs/{run_id:int}", api(lambda r: payloads.run_payload(store, r.path_params["run_id"]))),
        Route("/api/runs/{run_id:int}/history", api(lambda r: payloads.history_payload(
            store, r.path_params["run_id"], _required(r, "metric"), **_history_args(r)))),
        Route("/api/runs/{run_id:int}/events", api(
            lambda r: payloads.events_list(store.events(r.path_params["run_id"])))),
        Route("/api/runs/{run_id:int}/configs", api(
            lambda r: payloads.configs_list(store.configs(r.path_params["run_id"])))),
        Route("/api/compare", api(lambda r: payloads.compare_payload(store, _ids(r)))),
        Route("/api/query", lambda r: _query(store, r, query_timeout)),
        Route("/api/recipes", api(lambda r: payloads.recipes_payload(store))),
        Mount("/static", StaticFiles(directory=HERE / "static", check_dir=False), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    if token is not None:
        app.add_middleware(TokenMiddleware, token=token)
    app.state.store = store
    return app


def _json(content: Any, status: int = 200) -> Response:
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json", headers=_NO_SNIFF)


def _status(error: Exception) -> int:
    if isinstance(error, RunNotFoundError):
        return 404
    return 503 if isinstance(error, DatabaseUnavailableError) else 400


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise BadRequest(f"The parameter {name}= is required.")
    return value


def _int(request: Request, name: str, default: int | None) -> int | None:
    return _number(request, name, int, "an integer", default)


def _float(request: Request, name: str) -> float | None:
    return _number(request, name, float, "a number", None)


def _number(request: Request, name: str, kind: Callable[[str], Any], what: str, default: Any) -> Any:
    """The query parameter ``name`` read by ``kind`` (``int``, ``float``), ``default`` when absent."""
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    try:
        return kind(value)
    except ValueError:
        raise BadRequest(f"The parameter {name}= takes {what}, not {value!r}.") from None


def _runs_args(request: Request) -> dict[str, Any]:
    q = request.query_params
    return {
        "experiment": q.get("experiment") or None, "status": q.get("status") or None, "q": q.get("q") or None,
        "where": [w for w in q.getlist("where") if w.strip()], "sort": q.get("sort") or "id",
        "order": q.get("order") or "desc", "offset": _int(request, "offset", 0), "limit": _int(request, "limit", 50),
        "metrics": [m for m in (q.get("metrics") or "").split(",") if m],
    }


def _history_args(request: Request) -> dict[str, Any]:
    superseded = request.query_params.get("superseded") or "0"
    if superseded not in ("0", "1"):
        raise BadRequest(f"The parameter superseded= is 0 or 1, not {superseded!r}.")
    return {
        "x": request.query_params.get("x") or "seq", "start": _float(request, "start"), "end": _float(request, "end"),
        "buckets": _int(request, "buckets", DEFAULT_BUCKETS), "after": _int(request, "after", None), "superseded": superseded == "1",
    }


def _ids(request: Request) -> list[int]:
    text = request.query_params.get("runs") or ""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BadRequest(f"runs= takes run ids separated by commas, e.g. runs=1,2,3, not {text!r}.") from None


def _query(store: RunStore, request: Request, timeout: float) -> Response:
    """``/api/query``: JSON, or CSV with ``format=csv``; a refusal is 400 with one line."""
    fmt = request.query_params.get("format") or "json"
    try:
        if fmt not in ("json", "csv"):
            raise BadRequest(f"format= is json or csv, not {fmt!r}.")
        limit = _int(request, "limit", DEFAULT_LIMIT)
        assert limit is not None
        if not 1 <= limit <= MAX_QUERY_ROWS:
            raise BadRequest(f"limit= is 1 to {MAX_QUERY_ROWS}, not {limit}.")
        sql = request.query_params.get("sql") or ""
        result = payloads.query_payload(store, sql, timeout=timeout, limit=limit)
    except (BadRequest, RunHistorySQLError) as e:
        return _json({"error": " ".join(str(e).split())}, status=_status(e))
    if fmt == "json":
        return _json(result)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result["columns"])
    writer.writerows(result["rows"])
    headers = {"Content-Disposition": 'attachment; filename="query.csv"'}
    return Response(out.getvalue(), media_type="text/csv", headers=headers)


class TokenMiddleware:
    """Refuse (403) every request without the token; a valid ``?token=`` also sets the cookie."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        cookies = {k: m.value for k, m in SimpleCookie(headers.get("cookie", "")).items()}
        given = presented(query, cookies, headers)
        if not accepted(self.token, given):
            body = b"403 Forbidden: this dashboard needs its access token: open the URL it printed (?token=...)."
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "http.response.body", "body": body})
            return None
        if "token" not in query:
            return await self.app(scope, receive, send)

        async def with_cookie(message: Any) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
            await send(message)

        return await self.app(scope, receive, with_cookie)
