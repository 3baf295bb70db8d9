"""``runhistory-sql demo``: train a small model with the real Trainer and show the result."""
from __future__ import annotations

import click
from sqlalchemy import text

from .common import EngineFor, one_line_errors, url_option, where
from .output import console


@click.command()
@url_option
@click.option("--experiment", default="demo", show_default=True, help="Experiment to record in.")
@click.option("--run-name", default=None, help="Name of the run (generated if not given).")
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(1, 100), help="Epochs to train.")
@one_line_errors
def demo(url: str | None, experiment: str, run_name: str | None, epochs: int) -> None:
    """Train a small model with the real Trainer on CPU and record it.

    Prints where the data is and an example SQL query with its result.

    \b
    Example:
        runhistory-sql demo --epochs 3
    """
    from ..trainer.demo import run_demo  # imports torch: only when asked for

    result = run_demo(url, experiment=experiment, run_name=run_name, num_epochs=epochs)
    _print_demo(result.url, result.run_name, result.epochs, experiment)


DEMO_SQL = """SELECT epoch,
       MAX(CASE WHEN metric = 'train_loss_epoch' THEN value END) AS train_loss,
       MAX(CASE WHEN metric = 'eval_loss_epoch' THEN value END) AS eval_loss
FROM v_metrics
WHERE experiment = '{experiment}' AND run_name = '{run}'
GROUP BY epoch ORDER BY epoch"""


def _print_demo(url: str, run: str, epochs: int, experiment: str) -> None:
    from rich.table import Table

    sql = DEMO_SQL.format(experiment=experiment.replace("'", "''"), run=run.replace("'", "''"))
    with EngineFor(url) as engine:
        result = engine.connect().execute(text(sql))
        columns, data = list(result.keys()), result.fetchall()
    location = where(url)
    out = console()
    out.print(f"\nRecorded run [bold]{run}[/] ({epochs} epochs, experiment {experiment!r}) in {location}")
    out.print("\nQuery it with plain SQL, e.g. in sqlite3, psql or pandas:\n")
    out.print(sql, highlight=False, markup=False)
    table = Table(*columns)
    for row in data:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)
