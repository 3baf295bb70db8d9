"""Points at a step, params and the rewind to a step, through a real database (SQLite and
PostgreSQL, the ``url`` fixture): ``SQLRunHistory.log_metrics``, ``log_params``, ``params``,
``last_step`` and ``rewind_to_step`` (issue 12), with the mirror, a resume, a rank that does not
write, and a spill file."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from helpers import query, same, write_lock
from history_support import false, true
from runhistory_sql import InvalidArgumentError, SQLRunHistory
from runhistory_sql.db.values import decode
from runhistory_sql.write import oplines, spill


def points(url: str) -> list[tuple[Any, ...]]:
    """Every stored point, superseded ones too: (stage, metric, rev, seq, epoch, step, value)."""
    rows = query(url, (
        "SELECT st.idx, m.name, p.rev, p.seq, p.epoch, p.step, p.value, p.special, p.value_json FROM points p "
        "JOIN series s ON s.id = p.series_id JOIN metrics m ON m.id = s.metric_id JOIN stages st ON st.id = s.stage_id "
        "ORDER BY st.idx, m.name, p.rev, p.seq"
    ))
    return [(*row[:6], decode(*row[6:])) for row in rows]


def params_rows(url: str) -> list[tuple[Any, ...]]:
    return query(url, "SELECT key, value, value_text, value_json, is_current FROM v_params ORDER BY recorded_at, key")


def rewinds(url: str) -> list[tuple[Any, ...]]:
    found = query(url, "SELECT stage, epoch, payload FROM v_events WHERE kind = 'rewind' ORDER BY event_id")
    return [(stage, epoch, json.loads(payload)) for stage, epoch, payload in found]


# -- log_metrics --------------------------------------------------------------------------------


def test_can_log_metrics_at_a_step(history: SQLRunHistory, url: str) -> None:
    history.log_metrics({"loss": 0.5, "lr": 0.001}, step=10)
    history.log_metrics({"loss": 0.25}, step=11)
    history._increment_epoch()
    history.log_metrics({"loss": 0.125}, step=11)  # a step may repeat
    history.flush()

    assert history.get_metric_values("loss") == [0.5, 0.25, 0.125]
    assert (history.get_latest_metric("lr"), history.last_step) == (0.001, 11)
    assert points(url) == [
        (1, "loss", 0, 0, 1, 10, 0.5), (1, "loss", 0, 1, 1, 11, 0.25), (1, "loss", 0, 2, 2, 11, 0.125),
        (1, "lr", 0, 0, 1, 10, 0.001),
    ]


def test_update_metric_points_have_no_step(history: SQLRunHistory, url: str) -> None:
    history.update_metric("loss", 1.5)
    history.log_metrics({"loss": 2.5}, step=0)
    history.update_metric("loss", 3.5)
    history.flush()

    assert points(url) == [(1, "loss", 0, 0, 1, None, 1.5), (1, "loss", 0, 1, 1, 0, 2.5), (1, "loss", 0, 2, 1, None, 3.5)]
    assert query(url, "SELECT seq, step FROM v_metrics ORDER BY seq") == [(0, None), (1, 0), (2, None)]


def test_nan_infinities_and_negative_zero_at_a_step_are_exact(history: SQLRunHistory, url: str) -> None:
    values = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "nzero": -0.0, "zero": 0.0, "int": 3,
              "np": np.float32(0.5), "tensor": torch.tensor(-0.0), "text": "best", "dict": {"f1": 0.5}}

    history.log_metrics(values, step=7)
    history.flush()

    expected = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "nzero": -0.0, "zero": 0.0, "int": 3.0,
                "np": 0.5, "tensor": -0.0, "text": "best", "dict": {"f1": 0.5}}
    stored = {name: (step, value) for _, name, _, _, _, step, value in points(url)}
    assert same(stored, {name: (7, value) for name, value in expected.items()})
    floats = ("nan", "inf", "ninf", "nzero", "zero")
    assert same([history.get_latest_metric(name) for name in floats], [expected[name] for name in floats])


@pytest.mark.parametrize("step", [np.int64(4), np.uint8(4), torch.tensor(4), torch.tensor(4, dtype=torch.int32)])
def test_a_step_may_be_any_integral_number(history: SQLRunHistory, url: str, step: Any) -> None:
    history.log_metrics({"loss": 1.0}, step=step)
    history.flush()

    assert points(url) == [(1, "loss", 0, 0, 1, 4, 1.0)]
    assert type(history.last_step) is int


@pytest.mark.parametrize(("step", "error", "message"), [
    (1.0, TypeError, "A step must be a non-negative int, not float 1.0"),
    (True, TypeError, "A step must be a non-negative int, not bool True"),
    ("3", TypeError, "A step must be a non-negative int, not str '3'"),
    (torch.tensor(1.0), TypeError, "A step must be a non-negative int, not Tensor"),
    (-1, InvalidArgumentError, "A step is an int from 0 to 2**63 - 1, not -1."),
    (2**63, InvalidArgumentError, f"A step is an int from 0 to 2**63 - 1, not {2**63}."),
])
def test_a_bad_step_is_refused_and_nothing_is_recorded(history: SQLRunHistory, url: str, step: Any, error: type,
                                                       message: str) -> None:
    with pytest.raises(error) as info:
        history.log_metrics({"loss": 1.0}, step=step)
    history.flush()

    assert str(info.value).startswith(message)
    assert (history.get_metric_names(), points(url)) == (set(), [])


def test_a_bad_value_names_its_metric_and_nothing_of_the_call_is_recorded(history: SQLRunHistory, url: str) -> None:
    history.log_metrics({"loss": 1.0}, step=0)

    with pytest.raises(TypeError, match="for metric 'bad'"):
        history.log_metrics({"loss": 2.0, "new": 3.0, "bad": object()}, step=1)
    history.flush()

    assert (history.get_metric_names(), history.get_metric_values("loss"), history.last_step) == ({"loss"}, [1.0], 0)
    assert points(url) == [(1, "loss", 0, 0, 1, 0, 1.0)]


def test_a_step_before_the_metrics_last_one_is_refused(history: SQLRunHistory, url: str) -> None:
    history.log_metrics({"loss": 1.0, "acc": 0.5}, step=5)
    history.log_metrics({"acc": 0.75}, step=9)

    with pytest.raises(InvalidArgumentError) as info:
        history.log_metrics({"loss": 2.0, "acc": 0.5}, step=8)
    history.log_metrics({"loss": 3.0}, step=8)  # loss is at 5: 8 is fine for it
    history.flush()

    assert str(info.value) == (
        "Metric 'acc' is at step 9 already, so it cannot take a point at step 8: steps do not go back within a "
        "metric. To record from step 8 again, rewind_to_step(8) first."
    )
    assert points(url) == [(1, "acc", 0, 0, 1, 5, 0.5), (1, "acc", 0, 1, 1, 9, 0.75),
                           (1, "loss", 0, 0, 1, 5, 1.0), (1, "loss", 0, 1, 1, 8, 3.0)]


def test_log_metrics_applies_the_prefix_and_checks_names(history: SQLRunHistory, url: str) -> None:
    history.set_metric_name_prefix("eval_")
    history.log_metrics({"loss": 1.0}, step=2)

    with pytest.raises(TypeError, match=r"A metric name must be a str, not int \(3\)"):
        history.log_metrics({3: 1.0}, step=2)  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="log_metrics takes a dict of metric name -> value, not list"):
        history.log_metrics([("loss", 1.0)], step=2)  # type: ignore[arg-type]
    history.flush()

    assert points(url) == [(1, "eval_loss", 0, 0, 1, 2, 1.0)]


# -- log_params -----------------------------------------------------------------------------------


def test_can_log_params_flattened(history: SQLRunHistory, url: str) -> None:
    history.log_params({"lr": 3e-5, "epochs": 3, "model": {"name": "bert-base", "layers": [12, "x"], "opt": {}},
                        "fp16": True, "seed": None, "shape": (2, 3), "big": 10**400})
    history.flush()

    assert history.params == {"lr": 3e-5, "epochs": 3, "model.name": "bert-base", "model.layers": [12, "x"],
                              "model.opt": {}, "fp16": True, "seed": None, "shape": [2, 3], "big": 10**400}
    assert params_rows(url) == sorted([
        ("lr", 3e-5, "3e-05", "3e-05", true(url)), ("epochs", 3.0, "3", "3", true(url)),
        ("model.name", None, "bert-base", '"bert-base"', true(url)),
        ("model.layers", None, '[12, "x"]', '[12, "x"]', true(url)), ("model.opt", None, "{}", "{}", true(url)),
        ("fp16", None, "true", "true", true(url)), ("seed", None, None, "null", true(url)),
        ("shape", None, "[2, 3]", "[2, 3]", true(url)), ("big", None, str(10**400), str(10**400), true(url)),
    ], key=lambda row: row[0])


def test_a_changed_param_keeps_both_rows_and_says_which_is_current(history: SQLRunHistory, url: str) -> None:
    history.log_params({"lr": 0.1, "model": "bert-base"})
    history.flush()
    history.log_params({"lr": 0.1, "model": "bert-base"})  # unchanged: nothing recorded
    history.log_params({"lr": 0.01})
    history.log_params({"lr": 1})  # 1 is not 0.01, and an int is not a float: a change
    history.flush()

    assert history.params == {"lr": 1, "model": "bert-base"}
    rows = query(url, "SELECT key, value, value_json, is_current FROM v_params ORDER BY key, recorded_at")
    assert sorted(rows, key=lambda r: (r[0], r[2] != "0.1", r[2] == "1")) == [
        ("lr", 0.1, "0.1", false(url)), ("lr", 0.01, "0.01", false(url)), ("lr", 1.0, "1", true(url)),
        ("model", None, '"bert-base"', true(url)),
    ]
    assert query(url, "SELECT COUNT(*) FROM params") == [(4,)]


def test_params_with_nan_infinity_and_negative_zero_read_back_exactly(history: SQLRunHistory, url: str) -> None:
    history.log_params({"a": math.nan, "b": -math.inf, "c": -0.0, "d": np.float64(0.5), "e": np.int32(7)})
    history.close()

    with SQLRunHistory(url, experiment="exp", run_name="run", resume="must") as resumed:
        assert same(resumed.params, {"a": math.nan, "b": -math.inf, "c": -0.0, "d": 0.5, "e": 7})
    assert query(url, "SELECT key, value_text, value_json FROM params ORDER BY key") == [
        ("a", "NaN", "NaN"), ("b", "-Infinity", "-Infinity"), ("c", "-0.0", "-0.0"), ("d", "0.5", "0.5"), ("e", "7", "7"),
    ]
    assert same(query(url, "SELECT value FROM params WHERE key IN ('a', 'b') ORDER BY key"), [(None,), (-math.inf,)])


@pytest.mark.parametrize(("params", "error", "message"), [
    ({"ok": 1, "fn": print}, TypeError, "Cannot record param 'fn': a value of type builtins.builtin_function_or_method."),
    ({"opt": {"sched": object()}}, TypeError, "Cannot record param 'opt.sched': a value of type builtins.object."),
    ({"opt": {3: 1}}, TypeError, "A param name must be a non-empty str, not 3 (in 'opt')."),
    ({"xs": [1, object()]}, TypeError, "The list of param 'xs' cannot be stored as JSON"),
    ({"t": "a\x00b"}, ValueError, "A value of param 't' cannot contain a NUL character"),
    ([("lr", 1)], TypeError, "Params are a dict of name -> value, not list."),
])
def test_a_bad_param_is_refused_naming_it_and_nothing_is_recorded(history: SQLRunHistory, url: str, params: Any,
                                                                  error: type, message: str) -> None:
    with pytest.raises(error) as info:
        history.log_params(params)
    history.flush()

    assert str(info.value).startswith(message)
    assert (history.params, query(url, "SELECT COUNT(*) FROM params")) == ({}, [(0,)])


# -- rewind_to_step -------------------------------------------------------------------------------


def _two_stages(history: SQLRunHistory) -> None:
    for step in range(3):
        history.log_metrics({"loss": float(step)}, step=step)
    history.reset()  # stage 2: what a rewind in stage 2 must leave alone
    for step in range(6):
        history.log_metrics({"loss": 10.0 + step, **({"acc": step / 8} if step % 2 else {})}, step=step)
        if step == 2:
            history._increment_epoch()
    history.update_metric("lr", 0.5)  # no step: never superseded


def test_rewind_to_step_supersedes_exactly_the_points_at_or_after_it(history: SQLRunHistory, url: str) -> None:
    _two_stages(history)

    history.rewind_to_step(3)

    assert (history.get_metric_values("loss"), history.get_metric_values("acc"), history.last_step) == (
        [10.0, 11.0, 12.0], [0.125], 2)
    assert history.get_metric_values("lr") == [0.5]
    assert points(url) == [
        *[(1, "loss", 0, s, 1, s, float(s)) for s in range(3)],
        (2, "acc", 0, 0, 1, 1, 0.125), (2, "acc", 1, 1, 2, 3, 0.375), (2, "acc", 1, 2, 2, 5, 0.625),
        *[(2, "loss", 0, s, 1, s, 10.0 + s) for s in range(3)], *[(2, "loss", 1, s, 2, s, 10.0 + s) for s in range(3, 6)],
        (2, "lr", 0, 0, 2, None, 0.5),
    ]
    assert rewinds(url) == [(2, 2, {"to_step": 3, "superseded_points": 5, "rev": 1})]
    assert query(url, "SELECT metric, n_points, min_value, max_value FROM v_summaries WHERE stage = 2 ORDER BY metric") == [
        ("acc", 1, 0.125, 0.125), ("loss", 3, 10.0, 12.0), ("lr", 1, 0.5, 0.5)]
    assert query(url, "SELECT current_epoch FROM v_runs") == [(2,)]  # a step rewind leaves the epoch alone


def test_after_a_rewind_the_steps_are_recorded_again_contiguously(history: SQLRunHistory, url: str) -> None:
    _two_stages(history)
    history.rewind_to_step(4)

    for step in range(4, 7):
        history.log_metrics({"loss": 20.0 + step}, step=step)
    history.rewind_to_step(6)
    history.log_metrics({"loss": 30.0}, step=6)
    history.flush()

    effective = query(url, "SELECT seq, step, value FROM v_metrics WHERE stage = 2 AND metric = 'loss' ORDER BY seq")
    assert effective == [(0, 0, 10.0), (1, 1, 11.0), (2, 2, 12.0), (3, 3, 13.0), (4, 4, 24.0), (5, 5, 25.0), (6, 6, 30.0)]
    assert history.get_metric_values("loss") == [10.0, 11.0, 12.0, 13.0, 24.0, 25.0, 30.0]
    assert rewinds(url) == [(2, 2, {"to_step": 4, "superseded_points": 3, "rev": 1}),
                            (2, 2, {"to_step": 6, "superseded_points": 1, "rev": 2})]


def test_a_value_without_a_step_recorded_after_the_rewound_step_goes_with_it(history: SQLRunHistory, url: str) -> None:
    # the effective seqs stay 0 .. n - 1: nothing recorded after step S survives a rewind to S
    history.log_metrics({"loss": 1.0}, step=1)
    history.log_metrics({"loss": 2.0}, step=2)
    history.update_metric("loss", 2.5)

    history.rewind_to_step(2)

    assert history.get_metric_values("loss") == [1.0]
    assert points(url) == [(1, "loss", 0, 0, 1, 1, 1.0), (1, "loss", 1, 1, 1, 2, 2.0), (1, "loss", 1, 2, 1, None, 2.5)]


def test_a_rewind_past_every_step_supersedes_nothing_but_is_recorded(history: SQLRunHistory, url: str) -> None:
    history.log_metrics({"loss": 1.0}, step=1)

    history.rewind_to_step(5)

    assert history.get_metric_values("loss") == [1.0]
    assert rewinds(url) == [(1, 1, {"to_step": 5, "superseded_points": 0, "rev": 1})]


def test_a_resumed_run_knows_its_steps_and_params_and_rewinds(url: str) -> None:
    with SQLRunHistory(url, experiment="exp", run_name="run") as h:
        for step in range(5):
            h.log_metrics({"loss": float(step)}, step=step * 10)
        h.log_params({"lr": 0.1})
        h.log_params({"lr": 0.2, "seed": 1})

    with SQLRunHistory(url, experiment="exp", run_name="run", resume="must") as resumed:
        loaded = (resumed.last_step, resumed.params, resumed.get_metric_values("loss"))
        resumed.rewind_to_step(25)
        resumed.log_metrics({"loss": 9.0}, step=30)
        after = (resumed.last_step, resumed.get_metric_values("loss"))
        with pytest.raises(InvalidArgumentError, match="Metric 'loss' is at step 30 already"):
            resumed.log_metrics({"loss": 9.5}, step=29)

    assert loaded == (40, {"lr": 0.2, "seed": 1}, [0.0, 1.0, 2.0, 3.0, 4.0])
    assert after == (30, [0.0, 1.0, 2.0, 9.0])
    assert rewinds(url) == [(1, 1, {"to_step": 25, "superseded_points": 2, "rev": 1})]


def test_a_rank_that_does_not_write_keeps_its_mirror_and_writes_nothing(url: str, monkeypatch: pytest.MonkeyPatch,
                                                                       no_accelerate_state: None) -> None:
    with SQLRunHistory(url, run_name="run") as h:
        h.log_metrics({"loss": 1.0}, step=1)
        h.log_params({"lr": 0.1})
    before = (points(url), params_rows(url), rewinds(url))
    monkeypatch.setenv("RANK", "1")

    with SQLRunHistory(url, run_name="run", resume="must") as other:
        other.log_metrics({"loss": 2.0}, step=2)
        other.log_params({"lr": 0.2})
        seen = (other.get_metric_values("loss"), other.last_step, other.params)
        other.rewind_to_step(2)
        rewound = (other.get_metric_values("loss"), other.last_step)

    assert (seen, rewound) == (([1.0, 2.0], 2, {"lr": 0.2}), ([1.0], 1))
    assert (points(url), params_rows(url), rewinds(url)) == before


@pytest.fixture
def no_accelerate_state() -> Any:
    from accelerate.state import PartialState

    saved = dict(PartialState._shared_state)
    PartialState._shared_state.clear()
    yield
    PartialState._shared_state.clear()
    PartialState._shared_state.update(saved)


def test_closed_history_refuses_the_new_calls(history: SQLRunHistory) -> None:
    history.close()

    for call in (lambda: history.log_metrics({"a": 1.0}, 1), lambda: history.log_params({"a": 1}),
                 lambda: history.rewind_to_step(0)):
        with pytest.raises(Exception, match="is closed: nothing more can be recorded"):
            call()


# -- spill files carry the new operations ---------------------------------------------------------


def test_steps_params_and_a_step_rewind_survive_a_spill(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(spill.SPILL_DIR_VAR, str(tmp_path))
    monkeypatch.setattr("runhistory_sql.write.history.EPOCH_COMMIT_TIMEOUT_S", 0.2)
    history = SQLRunHistory(url, experiment="e", run_name="spilled")
    history.log_metrics({"loss": 1.0}, step=1)
    assert history.flush(30)

    with write_lock(url):
        history.log_metrics({"loss": 2.0, "nz": -0.0}, step=2)
        history.log_metrics({"loss": 3.0}, step=3)
        history.log_params({"lr": 0.5})
        history.rewind_to_step(3)  # its commit gives up at once (below): the rewind waits in the queue
        path = history.close(timeout=0.5)
    assert path is not None
    imported = spill.import_file(history._engine, path)

    assert imported == 7  # the series nz, 3 points, the params, the rewind, the end
    assert same(points(url), [(1, "loss", 0, 0, 1, 1, 1.0), (1, "loss", 0, 1, 1, 2, 2.0), (1, "loss", 1, 2, 1, 3, 3.0),
                              (1, "nz", 0, 0, 1, 2, -0.0)])
    assert params_rows(url) == [("lr", 0.5, "0.5", "0.5", true(url))]
    assert rewinds(url) == [(1, 1, {"to_step": 3, "superseded_points": 1, "rev": 1})]


def test_a_format_2_spill_file_imports_its_points_without_a_step(url: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # written before steps existed: its points have six elements
    monkeypatch.setenv(spill.SPILL_DIR_VAR, str(tmp_path))
    history = SQLRunHistory(url, experiment="e", run_name="old")
    history.update_metric("loss", 1.0)
    with write_lock(url):
        history.update_metric("loss", 2.0)
        path = history.close(timeout=0.5)
    assert path is not None
    header, ops = spill.read(path)
    old = [op[:6] if len(op) == 7 else op for op in ops]
    oplines.write(path, {k: v for k, v in {**header, "format": 2}.items() if k != "ops"}, old)

    assert [len(op) for op in old] == [3, 6, 6, 3]  # the series, its two points, the end
    assert spill.import_file(history._engine, path) == 4
    assert points(url) == [(1, "loss", 0, 0, 1, None, 1.0), (1, "loss", 0, 1, 1, None, 2.0)]
