"""``runhistory-sql export``: every format reads back as exactly the runs' effective points."""
from __future__ import annotations

import csv
import datetime as dt
import json
import math
import sys

import pyarrow.parquet as pq
import pytest
from helpers import query, same

from runhistory_sql import RunStore, SQLRunHistory
from runhistory_sql.read import export as export_module
from runhistory_sql.cli.export import PROGRESS_FROM, ProgressBar
from runhistory_sql.read.export import COLUMNS, export_points

ODD_VALUES = [1.5, math.nan, math.inf, -math.inf, -0.0, 0.0, {"top1": 0.5, "labels": ["a", "b"]}, "text"]


@pytest.fixture
def odd_url(url):
    """A private database (SQLite, then PostgreSQL) with one run of ODD_VALUES."""
    with SQLRunHistory(url, experiment="exp", run_name="odd") as history:
        for value in ODD_VALUES:
            history.update_metric("score", value)
    return url


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def expected(url: str, *runs: str) -> list[tuple]:
    """The rows an export must hold, from RunStore.history: (experiment, ..., value, value_json, recorded_at ms, step)."""
    rows = []
    with RunStore(url) as store:
        for name in runs:
            record = store.run(name)
            series = query(url, "SELECT stage, metric FROM v_summaries WHERE run_id = :id ORDER BY stage, metric", {"id": record.run_id})
            for stage, metric in series:
                for seq, epoch, value, ms, step in store.history(name, metric, stage):
                    text = None if isinstance(value, float) else json.dumps(value)
                    rows.append((record.experiment, name, record.run_id, stage, metric, seq, epoch,
                                 value if text is None else None, text, ms, step))
    return rows


def read_csv(path) -> list[tuple]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        assert tuple(next(reader)) == COLUMNS
        return [(e, r, int(i), int(st), m, int(seq), int(ep), float(v) if v else None, t or None, ts,
                 int(step) if step else None)
                for e, r, i, st, m, seq, ep, v, t, ts, step in reader]


def read_jsonl(path) -> list[tuple]:
    with open(path) as f:
        records = [json.loads(line) for line in f]
    assert all(tuple(record) == COLUMNS for record in records)
    return [(*tuple(r.values())[:7], None if r["value"] is None else float(r["value"]), *tuple(r.values())[8:]) for r in records]


def read_parquet(path) -> list[tuple]:
    table = pq.read_table(path)
    assert tuple(table.column_names) == COLUMNS
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return [(*tuple(r.values())[:9], (r["recorded_at"] - epoch) // dt.timedelta(milliseconds=1), r["step"])
            for r in table.to_pylist()]


def with_iso_times(rows: list[tuple]) -> list[tuple]:
    return [(*row[:9], iso(row[9]), *row[10:]) for row in rows]


def test_can_export_csv(run, trained_any, tmp_path):
    out = tmp_path / "runs.csv"

    result = run("export", "baseline", "fast", "-o", str(out), "--url", trained_any)

    assert result.output == f"Exported 13 points of 2 runs to {out}\n"
    assert out.read_text().splitlines()[1] == "cli,baseline,1,1,eval_loss_epoch,0,1,9.308703422546387,,2026-11-01T10:00:00.000Z,"
    assert same(read_csv(out), with_iso_times(expected(trained_any, "baseline", "fast")))


def test_can_export_json_lines(run, trained_any, tmp_path):
    out = tmp_path / "runs.jsonl"

    result = run("export", "finetune", "resumed", "-o", str(out), "--url", trained_any)

    assert result.output == f"Exported 20 points of 2 runs to {out}\n"
    assert same(read_jsonl(out), with_iso_times(expected(trained_any, "finetune", "resumed")))


def test_can_export_parquet(run, trained_any, tmp_path):
    out = tmp_path / "runs.parquet"

    result = run("export", "id:1", "solo", "-o", str(out), "--url", trained_any)

    assert result.output == f"Exported 9 points of 2 runs to {out}\n"
    assert same(read_parquet(out), expected(trained_any, "baseline", "solo"))
    assert str(pq.read_schema(out).field("recorded_at").type) == "timestamp[ms, tz=UTC]"


def test_can_choose_metrics_and_the_experiment(run, trained_any, tmp_path):
    out = tmp_path / "eval.ndjson"

    result = run("export", "baseline", "solo", "-m", "eval_loss_epoch", "-m", "nope", "-o", str(out), "--url", trained_any)

    assert result.output == f"Exported 4 points of 2 runs to {out}\n"
    assert [(r[1], r[4], r[5]) for r in read_jsonl(out)] == [
        ("baseline", "eval_loss_epoch", 0), ("baseline", "eval_loss_epoch", 1), ("baseline", "eval_loss_epoch", 2),
        ("solo", "eval_loss_epoch", 0),
    ]
    assert run("export", "solo", "-e", "cli", "-o", str(out), "--url", trained_any).output == (
        "Error: There is no run named 'solo' in experiment 'cli'. List them with: runhistory-sql runs\n"
    )


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_nan_infinities_negative_zero_and_json_values_round_trip(run, odd_url, tmp_path, suffix):
    out = tmp_path / f"odd.{suffix}"

    run("export", "odd", "-o", str(out), "--url", odd_url)

    read = {"csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet}[suffix](out)
    values = [row[7] if row[8] is None else json.loads(row[8]) for row in read]
    assert same(values, ODD_VALUES)
    assert [row[7] for row in read][-2:] == [None, None]  # JSON values have no number


def test_json_lines_are_strict_json(run, odd_url, tmp_path):
    out = tmp_path / "odd.jsonl"

    run("export", "odd", "-o", str(out), "--url", odd_url)

    strict = [json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} is not JSON")) for line in out.read_text().splitlines()]
    assert [r["value"] for r in strict] == [1.5, "NaN", "Infinity", "-Infinity", -0.0, 0.0, None, None]
    assert [r["value_json"] for r in strict][-2:] == ['{"top1": 0.5, "labels": ["a", "b"]}', '"text"']


def test_chunks_of_a_few_points_give_the_same_file(trained_url, tmp_path, monkeypatch):
    whole, chunked = tmp_path / "whole.csv", tmp_path / "chunked.csv"
    with RunStore(trained_url) as store:
        export_points(store, ["finetune"], whole)
    calls = []
    monkeypatch.setattr(export_module, "CHUNK", 4)

    with RunStore(trained_url) as store:
        store.export(["finetune"], chunked, progress=lambda done, total: calls.append(done))

    assert chunked.read_text() == whole.read_text()
    assert calls == [0, 4, 5, 9, 10]


def test_progress_is_reported_per_chunk(trained_url, tmp_path):
    calls = []

    with RunStore(trained_url) as store:
        result = store.export(["baseline"], tmp_path / "b.csv", progress=lambda *call: calls.append(call))

    assert calls == [(0, 7), (3, 7), (6, 7), (7, 7)]
    assert (result.points, result.runs) == (7, 1)


def test_a_progress_bar_shows_only_for_a_big_export():
    small, big = ProgressBar(), ProgressBar()

    with small, big:
        small.update(0, PROGRESS_FROM)
        big.update(0, PROGRESS_FROM + 1)
        big.update(PROGRESS_FROM + 1, PROGRESS_FROM + 1)

    assert small.progress is None
    assert big.progress.finished


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["baseline", "-o", "{tmp}/runs.txt"], "Error: Cannot export to {tmp}/runs.txt: its extension '.txt' is not one of "
         ".csv, .jsonl, .ndjson, .parquet. Name the file e.g. runs.csv, runs.jsonl or runs.parquet.\n"),
        (["baseline", "-o", "{tmp}/runs"], "Error: Cannot export to {tmp}/runs: its extension '(none)' is not one of "
         ".csv, .jsonl, .ndjson, .parquet. Name the file e.g. runs.csv, runs.jsonl or runs.parquet.\n"),
        (["baseline", "nope", "-o", "{tmp}/runs.csv"], "Error: There is no run named 'nope'. List them with: runhistory-sql runs\n"),
        (["baseline", "-m", "nope", "-o", "{tmp}/runs.csv"],
         "Error: None of the runs has points of 'nope'. See a run's metrics with: runhistory-sql show RUN\n"),
        (["baseline", "-o", "{tmp}/no/dir/runs.csv"], "Error: Cannot export to {tmp}/no/dir/runs.csv: the directory {tmp}/no/dir does not exist.\n"),
    ],
)
def test_errors_are_one_line_and_leave_no_file(run, trained_url, tmp_path, args, message):
    out = tmp_path / "out"
    out.mkdir()

    result = run("export", *[a.format(tmp=out) for a in args], "--url", trained_url)

    assert result.exit_code == 1
    assert result.output == message.format(tmp=out)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("name", ["x.csv", "x.jsonl", "x.parquet"])
def test_a_path_that_cannot_be_written_is_named_as_given(run, trained_url, name):
    result = run("export", "baseline", "-o", f"/sys/{name}", "--url", trained_url)  # sysfs: no new files, even for root

    assert (result.exit_code, result.output) == (1, f"Error: Cannot write /sys/{name}: Permission denied.\n")


def test_a_failed_export_keeps_the_old_file(run, trained_url, tmp_path):
    out = tmp_path / "runs.csv"
    out.write_text("precious\n")

    result = run("export", "baseline", "-m", "nope", "-o", str(out), "--url", trained_url)

    assert result.exit_code == 1
    assert out.read_text() == "precious\n"


def test_parquet_without_pyarrow_names_the_extra(run, trained_url, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what an environment without it raises

    result = run("export", "baseline", "-o", str(tmp_path / "runs.parquet"), "--url", trained_url)

    assert result.output == (
        'Error: Exporting Parquet needs pyarrow, which is not installed. Install it with: pip install "runhistory-sql[pandas]"\n'
    )
    assert not (tmp_path / "runs.parquet").exists()
