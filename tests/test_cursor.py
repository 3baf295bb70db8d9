"""A run's Cursor is made from its RunState by one named constructor."""
from __future__ import annotations

import pytest
from sqlalchemy import Engine

from runhistory_sql import SQLRunHistory
from runhistory_sql.write.batch import Cursor
from runhistory_sql.write.run import RunState, open_run


def test_can_make_the_cursor_of_a_continued_run(db_url: str, engine: Engine) -> None:
    with SQLRunHistory(db_url, run_name="r") as history:
        history.update_metric("loss", 2.0)
        history.update_metric("loss", 1.0)
    state = open_run(engine, "default", "r", "allow", {}, writer=True)

    cursor = Cursor.of_run(state, {"loss": 41})

    series_id = state.series["loss"][0]
    assert (cursor.run_id, cursor.stage, cursor.stage_id, cursor.rewinds) == (state.run_id, 1, state.stage_id, 0)
    assert (cursor.series, cursor.stats, cursor.created_ms) == ({41: series_id}, {series_id: [2, 1.0, 2.0]}, state.created_ms)


def test_a_run_without_a_row_has_no_cursor() -> None:
    with pytest.raises(ValueError, match="Run 'r' has no row in the database"):
        Cursor.of_run(RunState(None, "r", "default"), {})
