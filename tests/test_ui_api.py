"""The dashboard's JSON API, over HTTP from a real uvicorn server, on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Iterator

import pytest
from helpers import reader_url
from ui_support import Served, serving

from runhistory_sql import RunStore, SQLRunHistory
from runhistory_sql.ui.recipes import RECIPES

SPIKE, GAP, LONG = 54_321, 77_777, 100_000
#: a long stretch of NaN: whole blocks of 1,024 points with no number
DARK = range(80_000, 82_500)


def long_values() -> list[float]:
    values = [1.0 + (i % 100) / 1000 for i in range(LONG)]
    values[SPIKE] = 1000.0
    values[GAP:GAP + 3] = [math.nan] * 3
    values[DARK.start:DARK.stop] = [math.nan] * len(DARK)
    return values


def build(url: str) -> None:
    """Runs with known values: ``a`` (two stages), ``b``, ``long`` (100,000 points, a spike and
    a NaN gap), ``rewound`` (a superseded epoch)."""
    with SQLRunHistory(url, experiment="exp", run_name="a", tags={"team": "x"}) as h:
        h.log_params({"lr": 0.01, "model": {"name": "bert"}, "seed": 1})
        h.log_params({"lr": 0.001})
        for loss in (3.0, 2.0, 1.0):
            h.update_metric("eval_loss_epoch", loss)
            h._increment_epoch()
        h.log_event("checkpoint", path="<b>x</b>")
        h.reset()
        for loss in (0.5, 0.25):
            h.update_metric("eval_loss_epoch", loss)
            h._increment_epoch()
    with SQLRunHistory(url, experiment="exp", run_name="b") as h:
        h.log_params({"lr": 0.1, "model": {"name": "bert"}, "seed": 2})
        for loss in (4.0, 0.75):
            h.update_metric("eval_loss_epoch", loss)
            h._increment_epoch()
    with SQLRunHistory(url, experiment="other", run_name="long") as h:
        for value in long_values():
            h.update_metric("loss", value)
    with SQLRunHistory(url, experiment="other", run_name="rewound") as h:
        for loss in (9.0, 8.0, 7.0):
            h.update_metric("eval_loss_epoch", loss)
            h._increment_epoch()
        h._set_epoch(2)
        h.update_metric("eval_loss_epoch", 6.0)
        h._increment_epoch()
        h.update_metric("loss", 5.0)  # a point without a step, beside two with one
        h.log_metrics({"loss": 4.0}, step=10)
        h.log_metrics({"loss": 3.0}, step=20)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'runs.db'}"
        build(url)
        yield url
        return
    pg = request.getfixturevalue("pg_server")
    name = pg.create_database()
    build(pg.url(name))
    yield pg.url(name)
    pg.drop_database(name)


@pytest.fixture(scope="module")
def api(db: str) -> Iterator[Served]:
    with serving(db, query_timeout=0.5) as served:
        yield served


@pytest.fixture(scope="module")
def sql_api(db: str) -> Iterator[Served]:
    """A server whose URL may only read (on PostgreSQL the SQL page refuses any other role)."""
    with serving(reader_url(db), query_timeout=0.5) as served:
        yield served


def ids(api: Served) -> dict[str, int]:
    return {run["name"]: run["id"] for run in api.json("/api/runs?limit=100")["runs"]}


def test_can_list_runs_with_their_metrics_and_what_to_filter_by(api):
    page = api.json("/api/runs?experiment=exp&metrics=eval_loss_epoch&sort=name&order=asc")

    assert [page["total"], page["offset"], page["limit"]] == [2, 0, 50]
    assert page["experiments"] == ["exp", "other"] and page["metrics"] == ["eval_loss_epoch", "loss"]
    assert page["tag_keys"] == ["team"] and page["param_keys"] == ["lr", "model.name", "seed"]
    a, b = page["runs"]
    assert (a["name"], a["status"], a["num_stages"], a["tags"], a["params"], a["metrics"]) == (
        "a", "finished", 2, {"team": "x"}, {"lr": 0.001, "model.name": "bert", "seed": 1},
        {"eval_loss_epoch": {"last": 0.25, "best": 0.25, "n": 2}},
    )
    assert b["metrics"] == {"eval_loss_epoch": {"last": 0.75, "best": 0.75, "n": 2}}
    assert sorted(a) == sorted([
        "id", "uuid", "experiment", "name", "status", "created_at", "ended_at", "duration_s", "num_stages",
        "current_epoch", "epochs", "host", "pid", "tags", "params", "metrics",
    ])


@pytest.mark.parametrize("query, names", [
    ("sort=best.eval_loss_epoch&order=asc", ["a", "b", "rewound", "long"]),
    ("sort=best.eval_loss_epoch&order=desc", ["rewound", "b", "a", "long"]),
    ("sort=last.eval_loss_epoch&order=asc", ["a", "b", "rewound", "long"]),
    ("sort=name&order=asc&offset=1&limit=2", ["b", "long"]),
    ("q=WOUN", ["rewound"]),
    ("status=finished&experiment=other&sort=id&order=asc", ["long", "rewound"]),
    ("q=%25", []),
    ("sort=param.lr&order=asc", ["a", "b", "long", "rewound"]),
    ("where=lr%3C0.05&sort=name&order=asc", ["a"]),
    ("where=model.name%3Dbert&where=seed%3E%3D1&sort=name&order=asc", ["a", "b"]),
    ("where=tag.team%3Dx", ["a"]),
    ("sort=param.lr&order=desc", ["b", "a", "rewound", "long"]),
])
def test_can_sort_filter_and_page_runs_in_sql(api, query, names):
    page = api.json(f"/api/runs?{query}")

    assert [run["name"] for run in page["runs"]] == names


def test_a_bad_sort_is_a_400_with_one_line(api):
    body = api.json("/api/runs?sort=nope", status=400)

    assert body["error"].startswith("Sort by one of id, uuid, experiment, name, status,")


def test_can_read_one_run_with_stages_summaries_and_events(api):
    run = api.json(f"/api/runs/{ids(api)['a']}")

    assert [s["stage"] for s in run["run"]["stages"]] == [1, 2]
    assert [(s["metric"], s["stage"], s["n_points"], s["last"], s["min"], s["max"]) for s in run["summaries"]] == [
        ("eval_loss_epoch", 2, 2, 0.25, 0.25, 0.5),
    ]
    assert [(e["kind"], e["stage"], e["payload"]) for e in run["events"] if e["kind"] == "checkpoint"] == [
        ("checkpoint", 1, {"path": "<b>x</b>"}),
    ]
    assert run["configs"] == [] and run["params"] == {"lr": 0.001, "model.name": "bert", "seed": 1}
    assert [(p["key"], p["value"], p["current"]) for p in run["param_history"]] == [
        ("lr", 0.01, False), ("lr", 0.001, True), ("model.name", "bert", True), ("seed", 1, True),
    ]
    assert api.json(f"/api/runs/{ids(api)['a']}/events") == run["events"]
    assert api.json(f"/api/runs/{ids(api)['a']}/configs") == []


def test_an_unknown_run_is_a_404(api):
    assert api.json("/api/runs/9999", status=404) == {"error": "There is no run with id 9999. List them with: runhistory-sql runs"}


def test_history_is_one_series_per_stage_on_a_run_wide_seq(api):
    history = api.json(f"/api/runs/{ids(api)['a']}/history?metric=eval_loss_epoch")

    assert (history["metric"], history["x"], history["downsampled"], history["cursor"]) == ("eval_loss_epoch", "seq", False, 5)
    assert [(s["stage"], s["rev"], s["x"], s["y"], s["seq"]) for s in history["series"]] == [
        (1, 0, [0, 1, 2], [3.0, 2.0, 1.0], [0, 1, 2]),
        (2, 0, [3, 4], [0.5, 0.25], [0, 1]),
    ]


def test_history_by_step_leaves_out_the_points_without_one(api):
    history = api.json(f"/api/runs/{ids(api)['rewound']}/history?metric=loss&x=step")

    assert [(s["x"], s["y"], s["seq"]) for s in history["series"]] == [([10, 20], [4.0, 3.0], [1, 2])]


def test_history_by_time_is_ms_since_the_epoch(api, db):
    with RunStore(db) as store:
        times = [point[3] for point in store.history("b", "eval_loss_epoch")]

    history = api.json(f"/api/runs/{ids(api)['b']}/history?metric=eval_loss_epoch&x=time")
    zoomed = api.json(f"/api/runs/{ids(api)['b']}/history?metric=eval_loss_epoch&x=time&start={times[1]}")

    assert [s["x"] for s in history["series"]] == [times] and times[0] > 1_700_000_000_000
    assert [s["x"] for s in zoomed["series"]] == [[t for t in times if t >= times[1]]]


def test_api_answers_are_json_that_is_not_kept(api):
    _, headers, _ = api.get("/api/runs")

    assert (headers["content-type"], headers["x-content-type-options"], headers["cache-control"]) == (
        "application/json", "nosniff", "no-store",
    )


def test_history_by_epoch(api):
    history = api.json(f"/api/runs/{ids(api)['a']}/history?metric=eval_loss_epoch&x=epoch")

    assert [s["x"] for s in history["series"]] == [[1, 2, 3], [1, 2]]


def test_superseded_points_come_only_when_asked(api):
    path = f"/api/runs/{ids(api)['rewound']}/history?metric=eval_loss_epoch"

    plain, with_rewound = api.json(path), api.json(path + "&superseded=1")

    assert [(s["rev"], s["x"], s["y"]) for s in plain["series"]] == [(0, [0, 1], [9.0, 6.0])]
    assert [(s["rev"], s["x"], s["y"]) for s in with_rewound["series"]] == [(0, [0, 1], [9.0, 6.0]), (1, [1, 2], [8.0, 7.0])]


def test_a_long_history_is_downsampled_in_sql_and_keeps_its_spike_and_gap(api):
    history = api.json(f"/api/runs/{ids(api)['long']}/history?metric=loss&buckets=500")

    (series,) = history["series"]
    points = dict(zip(series["x"], series["y"]))
    assert history["downsampled"] is True and history["cursor"] == LONG
    assert 2 * 500 <= len(series["x"]) <= 5 * 500
    assert series["x"] == sorted(series["x"]) and series["x"][0] == 0 and series["x"][-1] == LONG - 1
    assert points[SPIKE] == 1000.0 and max(y for y in series["y"] if y is not None) == 1000.0
    nulls = [x for x, y in points.items() if y is None]
    assert points[GAP] is None and nulls[0] == GAP and DARK.start in nulls and set(nulls[1:]) <= set(DARK)
    assert [x for x in points if x in DARK] == nulls[1:]  # in the dark stretch nothing but gaps
    assert min(y for y in series["y"] if y is not None) == 1.0


@pytest.mark.parametrize("query", ["buckets=40", "buckets=40&start=1500&end=98000", "buckets=3&start=54000&end=54400"])
def test_buckets_of_whole_blocks_keep_the_spike_and_gap_too(api, query):
    path = f"/api/runs/{ids(api)['long']}/history?metric=loss&{query}"

    first, again = api.json(path), api.json(path)  # the second answer comes from the blocks read by the first

    (series,) = first["series"]
    nulls = [x for x, y in zip(series["x"], series["y"]) if y is None]
    dark = [x for x in series["x"] if x in DARK]
    assert first == again and first["downsampled"] is True
    assert len(series["x"]) <= 5 * 40 and series["x"] == sorted(set(series["x"]))
    assert (series["x"][0], series["x"][-1]) == {
        "buckets=40": (0, LONG - 1), "buckets=40&start=1500&end=98000": (1500, 98000),
        "buckets=3&start=54000&end=54400": (54000, 54400),
    }[query]
    assert dict(zip(series["x"], series["y"]))[SPIKE] == 1000.0
    assert nulls == ([GAP, *dark] if "54400" not in query else []) and (DARK.start in dark) == ("54400" not in query)


def test_a_zoomed_range_is_at_full_resolution(api):
    history = api.json(f"/api/runs/{ids(api)['long']}/history?metric=loss&start={GAP - 5}&end={GAP + 5}")

    (series,) = history["series"]
    values = long_values()
    assert history["downsampled"] is False
    assert series["x"] == list(range(GAP - 5, GAP + 6))
    assert series["y"] == [None if math.isnan(values[i]) else values[i] for i in range(GAP - 5, GAP + 6)]


def test_raw_history_with_buckets_zero(api):
    history = api.json(f"/api/runs/{ids(api)['b']}/history?metric=eval_loss_epoch&buckets=0")

    assert [s["y"] for s in history["series"]] == [[4.0, 0.75]]


def test_compare_lists_the_runs_and_their_metrics(api):
    run_ids = ids(api)

    body = api.json(f"/api/compare?runs={run_ids['a']},{run_ids['b']}")

    assert [r["name"] for r in body["runs"]] == ["a", "b"]
    assert body["metrics"] == {"eval_loss_epoch": {
        str(run_ids["a"]): {"last": 0.25, "best": 0.25}, str(run_ids["b"]): {"last": 0.75, "best": 0.75},
    }}
    assert body["params"] == {"lr": {str(run_ids["a"]): 0.001, str(run_ids["b"]): 0.1}, "seed": {str(run_ids["a"]): 1, str(run_ids["b"]): 2}}
    assert body["configs"] == {}


def test_compare_needs_two_to_twenty_runs(api):
    assert api.json("/api/compare?runs=1", status=400) == {"error": "Compare 2 to 20 runs (runs=1,2,3), not 1."}


def test_query_answers_json_and_csv(sql_api):
    sql = "SELECT run_name, experiment FROM v_runs ORDER BY run_name"

    body = sql_api.json(f"/api/query?sql={quote(sql)}&limit=2")
    status, headers, text = sql_api.get(f"/api/query?sql={quote(sql)}&format=csv")

    assert body == {"columns": ["run_name", "experiment"], "rows": [["a", "exp"], ["b", "exp"]], "truncated": True, "limit": 2}
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(text.decode()))) == [
        ["run_name", "experiment"], ["a", "exp"], ["b", "exp"], ["long", "other"], ["rewound", "other"],
    ]


def test_query_refuses_a_delete_and_changes_nothing(sql_api, db):
    body = sql_api.json(f"/api/query?sql={quote('DELETE FROM runs')}", status=400)

    assert body["error"].startswith("runhistory-sql query only reads, and DELETE is not a read")
    assert sql_api.json("/api/runs")["total"] == 4


def test_a_slow_query_is_cancelled_after_the_timeout(sql_api):
    slow = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT count(*) FROM c"

    body = sql_api.json(f"/api/query?sql={quote(slow)}", status=400)

    assert body == {"error": "The query was stopped after 0.5 s, its time limit; give it longer with --timeout SECONDS."}


def test_recipes_are_the_readme_sql_blocks(api, db):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    views = readme[readme.index("## The SQL views"):readme.index("## Performance")]
    other = "-- PostgreSQL" if db.startswith("sqlite") else "-- SQLite"

    recipes = api.json("/api/recipes")

    assert [sql for _, sql in RECIPES] == re.findall(r"```sql\n(.*?)```", views, re.DOTALL)
    assert [r["sql"] for r in recipes] == [sql for _, sql in RECIPES if not sql.startswith(other)]
    assert recipes[0]["title"] == "Best eval_loss_epoch of every run of an experiment"


def test_pages_are_served(api):
    for path in ("/", f"/runs/{ids(api)['a']}", "/compare?runs=1,2", "/sql"):
        status, headers, _ = api.get(path)
        assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8")


def quote(text: str) -> str:
    from urllib.parse import quote as q

    return q(text, safe="")




def test_a_condition_that_cannot_be_read_is_a_400(api):
    body = api.json("/api/runs?where=lr", status=400)

    assert body["error"].startswith("Cannot read the condition 'lr': write KEY OP VALUE")


def test_compare_shows_exactly_the_config_fields_that_differ(trained_any):
    with RunStore(trained_any) as store:
        expected = store.compare(["baseline", "fast"]).config_differences
        baseline, fast = store.run_id("baseline"), store.run_id("fast")

    with serving(trained_any) as api:
        body = api.json(f"/api/compare?runs={baseline},{fast}")

    assert body["configs"] == {field: {str(baseline): a, str(fast): b} for field, (a, b) in expected}
    assert body["configs"]["train_per_device_batch_size"] == {str(baseline): 32, str(fast): 16}
    assert [r["name"] for r in body["runs"]] == ["baseline", "fast"] and body["params"] == {}


def test_each_config_snapshot_names_the_fields_that_changed_from_the_one_before(trained_url):
    from runhistory_sql.read.records import config_differences

    with RunStore(trained_url) as store:
        snapshots = store.configs("finetune")
        run_id = store.run_id("finetune")
    expected = [[]] + [[f for f, _ in config_differences([a.fields, b.fields])] for a, b in zip(snapshots, snapshots[1:])]

    with serving(trained_url) as api:
        configs = api.json(f"/api/runs/{run_id}/configs")

    assert [c["changed"] for c in configs] == expected and "num_epochs" in expected[1]
    assert [(c["stage"], c["kind"], c["fields"]["num_epochs"]) for c in configs] == [
        (s.stage, s.kind, s.fields["num_epochs"]) for s in snapshots
    ]
