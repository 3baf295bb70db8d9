"""One rank of a real 2-process CPU launch, for tests/test_distributed.py.

    ACCELERATE_USE_CPU=true python -m torch.distributed.run --nproc_per_node 2 \
        tests/scripts/ddp_train.py URL OUTDIR

URL is any database URL (the tests run it on SQLite and on PostgreSQL). Every rank builds the same
SQLRunHistory and Trainer (SaveBestModelCallback, EarlyStoppingCallback, RunTrackingCallback),
trains 3 epochs with an eval set, and then writes what it can read from its own history to
OUTDIR/rank{N}.json: whether it wrote to the database (and how often), every metric's values, the
latest value of each, the epoch and the run name.
"""
from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from pytorch_accelerated.callbacks import EarlyStoppingCallback, SaveBestModelCallback
from sqlalchemy import Engine, event

from runhistory_sql import RunTrackingCallback, SQLRunHistory
from runhistory_sql.trainer.demo import make_datasets, make_model, make_trainer
from runhistory_sql.write.rank import world_process_index

NUM_EPOCHS = 3
BATCH_SIZE = 32

#: Every SQL statement this process sends, by kind: a count independent of SQLRunHistory's own.
statements: Counter[str] = Counter()


@event.listens_for(Engine, "before_cursor_execute")
def _count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    text = statement.strip().upper()
    word = text.split(None, 1)[0]
    statements["all"] += 1
    if text == "BEGIN IMMEDIATE":
        statements["begin_immediate"] += 1
    # the schema's own stamp is written by whichever rank creates the file first
    if word in ("INSERT", "UPDATE", "DELETE") and "ALEMBIC_VERSION" not in text:
        statements["dml"] += 1


def main(url: str, outdir: Path) -> None:
    # every rank passes the name: a generated one would differ between the ranks
    history = SQLRunHistory(url, experiment="ddp", run_name="ddp-run")
    at_open = Counter(statements)
    callbacks = [
        SaveBestModelCallback(save_path=str(outdir / "best_model.pt")),
        EarlyStoppingCallback(early_stopping_patience=100),
        RunTrackingCallback(),
    ]
    trainer = make_trainer(make_model(seed=0), history, callbacks=callbacks)
    train_ds, eval_ds = make_datasets()
    trainer.train(
        train_dataset=train_ds, eval_dataset=eval_ds, num_epochs=NUM_EPOCHS,
        per_device_batch_size=BATCH_SIZE,
        train_dataloader_kwargs={"num_workers": 0}, eval_dataloader_kwargs={"num_workers": 0},
    )
    rank = world_process_index()
    assert rank == int(os.environ["RANK"]) == trainer._accelerator.process_index
    names = sorted(history.get_metric_names())
    report = {
        "rank": rank,
        "num_processes": trainer._accelerator.num_processes,
        "is_writer": history.is_writer,
        "write_transactions": history.write_transactions,
        "metrics": {name: history.get_metric_values(name) for name in names},
        "latest": {name: history.get_latest_metric(name) for name in names},
        "current_epoch": history.current_epoch,
        "run_name": history.run_name,
    }
    history.close()
    # counted after close(): the final commits (status, pending points) are included
    report["write_transactions_after_close"] = history.write_transactions
    report["statements_at_open"] = dict(at_open)
    report["statements"] = dict(statements)
    (outdir / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
