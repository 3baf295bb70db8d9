"""World-process-zero only: a real 2-process launch on CPU (torchrun, gloo), a real SQLite file.

``tests/scripts/ddp_train.py`` runs on both ranks: the same SQLRunHistory (run name given, since a
generated one would differ per rank), the real Trainer with SaveBestModelCallback,
EarlyStoppingCallback and RunTrackingCallback, 3 epochs with an eval set. Each rank reports what it
read from its own history, its own count of write transactions, and an independent count of every
SQL statement it sent (a SQLAlchemy ``before_cursor_execute`` listener on all engines).

Observed on this machine (pytorch-accelerated 0.1.61, accelerate 1.15, torch 2.13 CPU): rank 0
commits 4 write transactions during training and 5 after close(); rank 1 commits none, and sends
not a single statement after its SQLRunHistory is built (its reads are served by its mirror).
If the write path had a barrier, rank 1 (which never writes) would leave rank 0 waiting for ever
and the launch would time out.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import rows

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "scripts" / "ddp_train.py"
METRICS = ["eval_loss_epoch", "train_loss_epoch"]
LAUNCH_TIMEOUT_S = 180

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Launch the 2-process run once; every test of this module reads its results."""
    out = tmp_path_factory.mktemp("ddp")
    db_path = out / "runs.db"
    env = {
        **os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("RUNHISTORY_SQL_URL", None)
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        str(SCRIPT), f"sqlite:///{db_path}", str(out),
    ]
    done = subprocess.run(
        command, cwd=out, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S,
    )
    reports = {}
    for rank in (0, 1):
        report_file = out / f"rank{rank}.json"
        if report_file.is_file():
            reports[rank] = json.loads(report_file.read_text())
    return {"done": done, "reports": reports, "db_path": db_path, "out": out}


def test_both_ranks_finish_and_only_rank_zero_writes(launch: dict[str, Any]) -> None:
    done = launch["done"]
    assert done.returncode == 0, done.stderr[-4000:]
    zero, one = launch["reports"][0], launch["reports"][1]
    assert (zero["rank"], one["rank"]) == (0, 1)
    assert zero["num_processes"] == one["num_processes"] == 2

    assert zero["is_writer"] is True and one["is_writer"] is False
    assert zero["write_transactions"] > 0
    assert zero["write_transactions_after_close"] >= zero["write_transactions"]
    assert one["write_transactions"] == 0 and one["write_transactions_after_close"] == 0

    # the independent count: rank 1 never sent an INSERT/UPDATE/DELETE (only the schema stamp
    # may come from whichever rank creates the file), and after building its SQLRunHistory it
    # sent no statement at all: training, callbacks and every read ran on its mirror
    assert one["statements"].get("dml", 0) == 0
    assert one["statements"] == one["statements_at_open"]
    assert zero["statements"]["dml"] > zero["statements_at_open"].get("dml", 0)
    assert (launch["out"] / "best_model.pt").is_file()


def test_rank_one_reads_the_same_history_as_rank_zero_and_the_database(launch: dict[str, Any]) -> None:
    zero, one = launch["reports"][0], launch["reports"][1]
    assert sorted(zero["metrics"]) == sorted(one["metrics"]) == METRICS
    assert one["metrics"] == zero["metrics"]
    assert one["latest"] == zero["latest"] == {name: values[-1] for name, values in zero["metrics"].items()}
    assert all(len(values) == 3 for values in zero["metrics"].values())
    assert one["current_epoch"] == zero["current_epoch"] == 4
    assert one["run_name"] == zero["run_name"] == "ddp-run"

    stored = rows(
        launch["db_path"],
        "SELECT metric, seq, epoch, value, value_json FROM v_metrics ORDER BY metric, seq",
    )
    assert stored == [
        (name, seq, seq + 1, value, None)
        for name in METRICS
        for seq, value in enumerate(zero["metrics"][name])
    ]


def test_the_database_holds_one_run_each_point_config_and_event_once(launch: dict[str, Any]) -> None:
    db = launch["db_path"]
    assert rows(db, "SELECT experiment, run_name, status, current_epoch, num_stages FROM v_runs") == [
        ("ddp", "ddp-run", "finished", 4, 1),
    ]
    assert rows(db, "SELECT COUNT(*) FROM runs") == [(1,)]
    assert rows(db, "SELECT COUNT(*) FROM stages") == [(1,)]
    assert rows(db, "SELECT COUNT(*) FROM series") == [(2,)]
    # the raw table, not only the view: no point was written twice, none superseded
    assert rows(
        db,
        "SELECT m.name, p.epoch, p.rev, COUNT(*) FROM points p "
        "JOIN series s ON s.id = p.series_id JOIN metrics m ON m.id = s.metric_id "
        "GROUP BY m.name, p.epoch, p.rev ORDER BY m.name, p.epoch",
    ) == [(name, epoch, 0, 1) for name in METRICS for epoch in (1, 2, 3)]
    assert rows(db, "SELECT COUNT(*) FROM points") == [(6,)]

    assert rows(
        db,
        "SELECT stage, kind, num_epochs, num_processes, is_distributed, is_world_process_zero, "
        "train_per_device_batch_size, train_total_batch_size FROM v_configs",
    ) == [(1, "train", 3, 2, 1, 1, 32, 64)]

    events = rows(db, "SELECT stage, epoch, kind, payload FROM v_events ORDER BY epoch, kind")
    assert [(stage, epoch, kind, json.loads(payload)) for stage, epoch, kind, payload in events] == [
        (1, 1, "epoch_end", {"epoch": 1}),
        (1, 1, "training_run_start", {"num_epochs": 3}),
        (1, 2, "epoch_end", {"epoch": 2}),
        (1, 3, "epoch_end", {"epoch": 3}),
        (1, 4, "training_run_end", {"epoch": 4}),
    ]
