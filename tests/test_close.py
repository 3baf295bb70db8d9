"""close(status): the schema's end statuses only; anything else fails at the call site."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from runhistory_sql import SQLRunHistory
from runhistory_sql.db.schema import END_STATUSES, STATUSES


def test_the_schema_knows_the_statuses() -> None:
    assert STATUSES == ("running", "finished", "failed", "crashed")
    assert END_STATUSES == ("finished", "failed")


@pytest.mark.parametrize("status", ["done", "crashed", "running", "FINISHED", ""])
def test_can_refuse_an_unknown_status_and_stay_open(db_url: str, status: str) -> None:
    history = SQLRunHistory(db_url, run_name="r")
    history.update_metric("loss", 1.5)

    with pytest.raises(ValueError, match=f"not {status!r}"):
        history.close(status)
    history.update_metric("loss", 2.5)
    history.close("failed")

    engine = create_engine(db_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT status FROM runs WHERE name = 'r'")).scalar_one()
        values = conn.execute(text("SELECT value FROM points ORDER BY seq")).scalars().all()
    engine.dispose()
    assert (stored, values) == ("failed", [1.5, 2.5])
