"""World-process-zero only: a real 2-process launch on CPU (torchrun, gloo), into a real SQLite
file, and beside it a second launch into a real PostgreSQL database.

``tests/scripts/ddp_train.py`` runs on both ranks: the same SQLRunHistory (run name given, since a
generated one would differ per rank), the real Trainer with SaveBestModelCallback,
EarlyStoppingCallback and RunTrackingCallback, 3 epochs with an eval set. Each rank reports what it
read from its own history, its own count of write transactions, and an independent count of every
SQL statement it sent (a SQLAlchemy ``before_cursor_execute`` listener on all engines).

Observed on this machine (pytorch-accelerated 0.1.61, accelerate 1.15, torch 2.13 CPU), on SQLite:
rank 0 commits 4 write transactions during training and 5 after close(); rank 1 commits none, and sends
not a single statement after its SQLRunHistory is built (its reads are served by its mirror).
If the write path had a barrier, rank 1 (which never writes) would leave rank 0 waiting for ever
and the launch would time out.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import is_postgres, query, same, script_env
from pg_server import free_port
from tracking_support import BACKENDS, backend_of, databases, finish

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "scripts" / "ddp_train.py"
METRICS = ["eval_loss_epoch", "train_loss_epoch"]
LAUNCH_TIMEOUT_S = 180

pytestmark = pytest.mark.slow


def _start(folder: Path, url: str) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        str(SCRIPT), url, str(folder),
    ]
    return subprocess.Popen(command, cwd=folder, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def launches(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Launch the 2-process run once on every backend, side by side; backend -> its results."""
    places = {backend: place for (backend, _), place in databases(request, tmp_path_factory, ["ddp"]).items()}
    procs = {backend: _start(folder, url) for backend, (folder, url) in places.items()}
    found = {}
    for backend, proc in procs.items():
        folder, url = places[backend]
        done = finish(proc, timeout=LAUNCH_TIMEOUT_S)
        reports = {}
        for rank in (0, 1):
            report_file = folder / f"rank{rank}.json"
            if report_file.is_file():
                reports[rank] = json.loads(report_file.read_text())
        found[backend] = {"done": done, "reports": reports, "url": url, "out": folder}
    return found


@pytest.fixture(params=BACKENDS)
def launch(request: pytest.FixtureRequest, launches: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The launch on the backend of this test."""
    return launches[backend_of(request)]


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

    stored = query(
        launch["url"],
        "SELECT metric, seq, epoch, value, value_json FROM v_metrics ORDER BY metric, seq",
    )
    assert stored == [
        (name, seq, seq + 1, value, None)
        for name in METRICS
        for seq, value in enumerate(zero["metrics"][name])
    ]


def test_the_database_holds_one_run_each_point_config_and_event_once(launch: dict[str, Any]) -> None:
    url = launch["url"]
    assert query(url, "SELECT experiment, run_name, status, current_epoch, num_stages FROM v_runs") == [
        ("ddp", "ddp-run", "finished", 4, 1),
    ]
    assert query(url, "SELECT COUNT(*) FROM runs") == [(1,)]
    assert query(url, "SELECT COUNT(*) FROM stages") == [(1,)]
    assert query(url, "SELECT COUNT(*) FROM series") == [(2,)]
    # the raw table, not only the view: no point was written twice, none superseded
    assert query(
        url,
        "SELECT m.name, p.epoch, p.rev, COUNT(*) FROM points p "
        "JOIN series s ON s.id = p.series_id JOIN metrics m ON m.id = s.metric_id "
        "GROUP BY m.name, p.epoch, p.rev ORDER BY m.name, p.epoch",
    ) == [(name, epoch, 0, 1) for name in METRICS for epoch in (1, 2, 3)]
    assert query(url, "SELECT COUNT(*) FROM points") == [(6,)]

    # booleans read as 1 on SQLite and as True on PostgreSQL
    yes = True if is_postgres(url) else 1
    assert same(query(
        url,
        "SELECT stage, kind, num_epochs, num_processes, is_distributed, is_world_process_zero, "
        "train_per_device_batch_size, train_total_batch_size FROM v_configs",
    ), [(1, "train", 3, 2, yes, yes, 32, 64)])

    events = query(url, "SELECT stage, epoch, kind, payload FROM v_events ORDER BY epoch, kind")
    assert [(stage, epoch, kind, json.loads(payload)) for stage, epoch, kind, payload in events] == [
        (1, 1, "epoch_end", {"epoch": 1}),
        (1, 1, "training_run_start", {"num_epochs": 3}),
        (1, 2, "epoch_end", {"epoch": 2}),
        (1, 3, "epoch_end", {"epoch": 3}),
        (1, 4, "training_run_end", {"epoch": 4}),
    ]
