"""One page of the runs, filtered and sorted in SQL: what the dashboard's runs list shows.

Filtering, sorting (by a run's column, by the last or best value of a metric, by a param or a tag) and
paging are one ``SELECT`` of run ids; only the runs of the page are then read in full
(:func:`~runhistory_sql.read.listing.read_runs`), so a page costs the same at 10,000 runs as at 10.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import Connection, text

from ..db.clock import now_ms
from ..db.schema import STATUSES
from ..errors import InvalidArgumentError
from .filters import parse_condition, tag_key, tag_number, tag_text, where_sql
from .listing import dead_runs, read_runs, status_sql
from .models import Run
from .summaries import goal_of

#: The columns a page sorts by, and their SQL (on ``v_runs v JOIN runs r``; ``{status}`` and
#: ``{now}`` are filled in).
SORT_COLUMNS = {
    "id": "v.run_id", "uuid": "v.run_uuid", "experiment": "v.experiment", "name": "v.run_name",
    "status": "{status}", "created_at": "r.created_at", "ended_at": "r.ended_at",
    "duration_s": "(COALESCE(r.ended_at, CASE WHEN {status} = 'running' THEN {now} ELSE r.heartbeat_at END, "
                  "r.created_at) - r.created_at)",
    "num_stages": "v.num_stages", "current_epoch": "v.current_epoch", "host": "v.host", "pid": "r.pid",
}
#: The most runs one page holds.
MAX_PAGE = 1000

# Each run's latest live series of one metric (a primary-key lookup per run, on the index
# series(run_id, metric_id)) and its last effective point.
_METRIC_JOINS = """
 LEFT JOIN series ms ON ms.id = (
    SELECT s.id FROM series s JOIN stages st ON st.id = s.stage_id
    WHERE s.run_id = v.run_id AND s.metric_id = (SELECT id FROM metrics WHERE name = :sort_metric)
      AND s.deleted = :no AND s.n_points > 0
    ORDER BY st.idx DESC, s.id DESC LIMIT 1)
 LEFT JOIN points mp ON mp.series_id = ms.id AND mp.rev = 0 AND mp.seq = ms.n_points - 1"""


# Each run's current value of one param (the latest row of the run and key).
_PARAM_JOIN = """
 LEFT JOIN params pp ON pp.id = (SELECT MAX(q.id) FROM params q WHERE q.run_id = v.run_id AND q.key = :sort_param)"""


@dataclass(frozen=True)
class RunPage:
    """One page of runs (see :meth:`RunStore.runs_page`): ``total`` is the number of runs that
    match the filters, ``runs`` those of ``offset .. offset + limit`` in the order asked."""

    total: int
    offset: int
    limit: int
    runs: list[Run]


def read_page(
    conn: Connection, *, experiment: str | None = None, status: str | None = None, text_in_name: str | None = None,
    sort: str = "id", order: str = "desc", offset: int = 0, limit: int = 50, where: Sequence[str] = (),
) -> RunPage:
    """Read one page of runs (:meth:`RunStore.runs_page`).

    :param text_in_name: text the run's name holds, in any case
    :param sort: a column of :data:`SORT_COLUMNS`, ``last.METRIC``, ``best.METRIC`` (the min or
        the max, as :func:`~runhistory_sql.read.summaries.goal_of` says), ``param.KEY`` or ``tag.KEY``; runs
        without it come last, ties by id
    :param order: ``"asc"`` or ``"desc"``
    :param where: conditions of :mod:`~runhistory_sql.read.filters`, all to be met
    """
    if order not in ("asc", "desc"):
        raise InvalidArgumentError(f"order must be 'asc' or 'desc', not {order!r}.")
    if status is not None and status not in STATUSES:
        raise InvalidArgumentError(f"status must be one of {', '.join(STATUSES)}, not {status!r}.")
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise InvalidArgumentError(f"A page is offset >= 0 and 1 <= limit <= {MAX_PAGE}, not offset={offset}, limit={limit}.")
    status_col = status_sql(dead_runs(conn), "v.status", "v.run_id")
    joins, conditions, params = "", [], {}
    if experiment is not None:
        conditions.append("v.experiment = :experiment")
        params["experiment"] = experiment
    if status is not None:
        conditions.append(f"{status_col} = :status")
        params["status"] = status
    if text_in_name:
        conditions.append("LOWER(v.run_name) LIKE :name ESCAPE '!'")
        escaped = text_in_name.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
        params["name"] = f"%{escaped}%"
    for i, condition in enumerate(parse_condition(c) for c in where):  # the grammar of runs --where
        sql, bound = where_sql(condition, conn.dialect.name, f"w{i}_", "v.run_id")
        conditions.append(sql)
        params.update(bound)
    key, null, sort_joins, sort_params = _sort_key(sort, status_col, conn.dialect.name)
    ordering = ", ".join(f"{part} {order.upper()}" for part in key.split("|"))
    filters = (" WHERE " + " AND ".join(conditions)) if conditions else ""
    total = conn.execute(text(f"SELECT COUNT(*) FROM v_runs v JOIN runs r ON r.id = v.run_id{joins}{filters}"), params).scalar_one()
    direction = order.upper()
    ids = [row[0] for row in conn.execute(text(
        f"SELECT v.run_id FROM v_runs v JOIN runs r ON r.id = v.run_id{joins}{sort_joins}{filters} "
        f"ORDER BY ({null}) IS NULL, {ordering}, v.run_id {direction} LIMIT {int(limit)} OFFSET {int(offset)}"
    ), {**params, **sort_params})]
    found = {run.run_id: run for run in read_runs(conn, ", ".join(map(str, ids)) or "NULL", {})}
    return RunPage(int(total), offset, limit, [found[i] for i in ids if i in found])


def _sort_key(sort: str, status_col: str, dialect: str) -> tuple[str, str, str, dict[str, Any]]:
    """The SQL to order by for ``sort`` (expressions separated by ``|``), the SQL that is NULL
    for the runs without it (they come last), the joins it needs and their bound values."""
    if sort in SORT_COLUMNS:
        column = SORT_COLUMNS[sort].format(status=status_col, now=now_ms())
        return column, column, "", {}
    kind, dot, name = sort.partition(".")
    if dot and name and kind == "param":  # numbers by value, then text; runs without it last
        return "COALESCE(pp.value, 0)|pp.value_text", "pp.id", _PARAM_JOIN, {"sort_param": name}
    if dot and name and kind == "tag":  # the same for a tag: numbers, then strings and booleans
        number, word = tag_number(dialect, ":sort_tag", "r"), tag_text(dialect, ":sort_tag", "r")
        return f"COALESCE({number}, 0)|{word}", f"CASE WHEN {number} IS NULL THEN {word} ELSE 'n' END", "", {"sort_tag": tag_key(dialect, name)}
    if dot and name and kind in ("last", "best"):
        column = "mp.value" if kind == "last" else ("ms.min_value" if goal_of(name) == "min" else "ms.max_value")
        return column, column, _METRIC_JOINS, {"sort_metric": name, "no": False}
    choices = ", ".join(SORT_COLUMNS)
    raise InvalidArgumentError(f"Sort by one of {choices}, last.METRIC, best.METRIC, param.KEY or tag.KEY, not {sort!r}.")


def read_names(conn: Connection) -> dict[str, list[str]]:
    """What a runs list can filter and sort by: ``experiments``, ``metrics`` (those with a
    series), ``param_keys`` and ``tag_keys``, each sorted."""
    tag_keys = (
        "SELECT DISTINCT j.key FROM runs, json_each(runs.tags) AS j" if conn.dialect.name == "sqlite"
        else "SELECT DISTINCT json_object_keys(tags::json) FROM runs"
    )
    found = {
        "experiments": "SELECT name FROM experiments",
        "metrics": "SELECT name FROM metrics m WHERE EXISTS (SELECT 1 FROM series s WHERE s.metric_id = m.id)",
        "tag_keys": tag_keys,
    }
    found["param_keys"] = "SELECT DISTINCT key FROM params"
    names = {key: sorted(str(row[0]) for row in conn.execute(text(sql))) for key, sql in found.items()}
    return {key: names[key] for key in ("experiments", "metrics", "param_keys", "tag_keys")}


def read_stages(conn: Connection, run_id: int) -> list[tuple[int, int]]:
    """The run's stages: ``(stage, started_at in ms)``, in order."""
    rows = conn.execute(text("SELECT idx, started_at FROM stages WHERE run_id = :r ORDER BY idx"), {"r": run_id})
    return [(int(idx), int(at)) for idx, at in rows]

