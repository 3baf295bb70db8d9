"""A small database of real runs for the read-side tests (RunStore, CLI): built once per session
with the real Trainer, then its clock pinned so that outputs can be compared exactly.

Experiment ``cli``:

- ``baseline``: lr 0.01, batch 32, 3 epochs; then ``evaluate()`` (stage 2);
- ``fast``: lr 0.05, batch 16, 3 epochs;
- ``finetune``: input layer frozen (TrackedModelFreezer) for 2 epochs, unfrozen, 2 more epochs in
  the same stage (``reset_run_history=False``);
- ``resumed``: 2 epochs, the process "ends", a new SQLRunHistory continues it (``resumed`` event)
  for 2 more epochs.

Experiment ``other``: ``solo`` (1 epoch), so that filters have something to leave out.

Times: run i (by id) starts at 2026-11-01 10:00:00 UTC + i hours and ends 1 minute per
``epoch_end`` event later; point k of a series is recorded k seconds after its run started; configs and events are
1 s apart in id order. Host ``trainer-1``, pid 4242 (also in ``resumed`` events), and uuids
``00000000-0000-4000-8000-<id, 12 digits>``.

The values are pinned by the tests, so they must not depend on the CPU: ``build`` trains in a child
process whose torch and MKL use portable kernels only (``PORTABLE_ENV``: no AVX2/AVX-512 code
paths, one thread), so every x86-64 machine computes the same floats.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from pytorch_accelerated.finetuning import ModelFreezer  # noqa: F401  (the base of the tracked one)
from sqlalchemy import text

from runhistory_sql import RunTrackingCallback, SQLRunHistory, TrackedModelFreezer
from runhistory_sql.trainer.demo import make_datasets, make_model, make_trainer
from runhistory_sql.db.engine import make_engine

from helpers import train

BASE_MS = 1_793_527_200_000  # 2026-11-01T10:00:00Z
HOUR_MS = 3_600_000




# Read once, when the libraries load: so they are set in a fresh process, not in the test session.
# ATen's generic kernels (they also pick torch.randn's scalar path), MKL's conditional numerical
# reproducibility on its SSE2 branch, glibc's libm without its FMA variants, and one thread so
# that no sum is split by the thread count. Without the first two the values change with the CPU.
PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "ONEDNN_MAX_CPU_ISA": "SSE41", "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA",
    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
}


def build(url: str) -> None:
    """Record the runs described above in ``url`` (which should be empty), in a child process
    with ``PORTABLE_ENV`` whatever the caller's environment."""
    from helpers import script_env

    here = Path(__file__).resolve().parent
    env = {**script_env(), **PORTABLE_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(here), env["PYTHONPATH"]])
    code = "import sys, trained_runs; trained_runs.build_here(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, url], env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"building the trained runs failed:\n{done.stderr}")


def build_here(url: str) -> None:
    """Record the runs in this process (``build`` calls it in a portable child process)."""
    torch.set_num_threads(1)
    with SQLRunHistory(url, experiment="cli", run_name="baseline") as h:
        trainer = make_trainer(make_model(0), h, callbacks=[RunTrackingCallback()], lr=0.01)
        train(trainer, 3, batch_size=32, seed=0)
        trainer.evaluate(make_datasets()[1], per_device_batch_size=64)
    with SQLRunHistory(url, experiment="cli", run_name="fast") as h:
        train(make_trainer(make_model(0), h, callbacks=[RunTrackingCallback()], lr=0.05), 3, batch_size=16, seed=0)
    with SQLRunHistory(url, experiment="cli", run_name="finetune") as h:
        model = make_model(0)
        freezer = TrackedModelFreezer(model, run_history=h)
        freezer.freeze(from_index=0, to_index=0)
        trainer = make_trainer(model, h, callbacks=[RunTrackingCallback()], lr=0.01)
        train(trainer, 2, batch_size=32, seed=0)
        freezer.unfreeze()  # the optimizer already holds every parameter (make_trainer)
        train(trainer, 4, batch_size=32, seed=0, reset_run_history=False)  # num_epochs counts from the start
    model = make_model(0)
    with SQLRunHistory(url, experiment="cli", run_name="resumed") as h:
        train(make_trainer(model, h, callbacks=[RunTrackingCallback()], lr=0.01), 2, batch_size=32, seed=0)
    with SQLRunHistory(url, experiment="cli", run_name="resumed", resume="must") as h:
        train(make_trainer(model, h, callbacks=[RunTrackingCallback()], lr=0.01), 4, batch_size=32, seed=0, reset_run_history=False)
    with SQLRunHistory(url, experiment="other", run_name="solo") as h:
        train(make_trainer(make_model(1), h, callbacks=[RunTrackingCallback()], lr=0.01), 1, batch_size=32, seed=0)
    pin_clock(url)


def pin_clock(url: str) -> None:
    """Replace every recorded time by the fixed ones described in the module docstring."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            run_ids = [r for (r,) in conn.execute(text("SELECT id FROM runs ORDER BY id"))]
            for i, run_id in enumerate(run_ids):
                start = BASE_MS + i * HOUR_MS
                epochs = conn.execute(text("SELECT COUNT(*) FROM events WHERE run_id = :id AND kind = 'epoch_end'"), {"id": run_id}).scalar()
                conn.execute(text(
                    "UPDATE runs SET created_at = :start, heartbeat_at = :end, ended_at = :end, uuid = :uuid, "
                    "host = 'trainer-1', pid = 4242 WHERE id = :id"
                ), {"start": start, "end": start + 60000 * epochs, "uuid": f"00000000-0000-4000-8000-{run_id:012d}", "id": run_id})
                conn.execute(text("UPDATE stages SET started_at = :start + idx * 1000 WHERE run_id = :id"), {"start": start, "id": run_id})
                for table in ("configs", "events"):
                    column = "captured_at" if table == "configs" else "recorded_at"
                    ids = [r for (r,) in conn.execute(text(f"SELECT id FROM {table} WHERE run_id = :id ORDER BY id"), {"id": run_id})]
                    for k, row_id in enumerate(ids):
                        conn.execute(text(f"UPDATE {table} SET {column} = :t WHERE id = :row"), {"t": start + 1000 * (k + 1), "row": row_id})
            for row_id, payload in conn.execute(text("SELECT id, payload FROM events WHERE kind = 'resumed'")).all():
                fixed = {**json.loads(payload), "host": "trainer-1", "pid": 4242}
                conn.execute(text("UPDATE events SET payload = :p WHERE id = :id"), {"p": json.dumps(fixed), "id": row_id})
            conn.execute(text("UPDATE points SET recorded_at = 1000 * seq"))  # offsets from the run's start
            conn.execute(text("UPDATE experiments SET created_at = :t"), {"t": BASE_MS})
    finally:
        engine.dispose()
