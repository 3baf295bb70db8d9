"""Tables of the runhistory-sql schema (the documented views live in the migrations).

Every timestamp is stored as integer milliseconds since the Unix epoch, UTC, except a point's
``recorded_at``: milliseconds since its run's ``created_at`` (3-4 bytes instead of 6; migration
0004). The views render them all as UTC times. A metric point lives in ``points`` keyed by ``(series_id, rev, seq)``: ``rev = 0`` is the
effective history, ``rev > 0`` a point superseded by the rewind numbered ``rev``. A ``series`` is
one metric within one stage of one run; ``delete_metric`` flags its series ``deleted`` and a later
write of the same name opens a new series, so nothing is ever physically removed. A point's
``step`` is that of ``log_metrics`` (NULL for ``update_metric``'s); ``params`` keeps every logged
value of a run's hyperparameters (migration 0007); ``point_blocks`` summarises the points per
block of 1,024 seqs for charts (migration 0008).
"""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

#: Every status a run reads as: ``running`` until it is closed ``finished`` or ``failed``;
#: ``crashed`` is never stored, it is a running run whose heartbeat went stale.
STATUSES = ("running", "finished", "failed", "crashed")
#: The statuses ``close()`` may store.
END_STATUSES = ("finished", "failed")

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger),
    Column("heartbeat_at", BigInteger),
    # a running run whose heartbeat is older than this reads as crashed (each run states its own)
    Column("stale_after_ms", Integer, nullable=False, server_default="60000"),
    # the id of the last batch its writer committed: a retry whose COMMIT went unanswered checks it
    Column("last_batch", BigInteger),
    Column("current_stage", Integer, nullable=False),
    Column("current_epoch", Integer, nullable=False),
    Column("rewinds", Integer, nullable=False, server_default="0"),
    Column("host", Text),
    Column("pid", Integer),
    Column("tags", Text, nullable=False, server_default="{}"),
    UniqueConstraint("experiment_id", "name"),
)

stages = Table(
    "stages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    UniqueConstraint("run_id", "idx"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
)

series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("stage_id", Integer, ForeignKey("stages.id"), nullable=False, index=True),
    Column("metric_id", Integer, ForeignKey("metrics.id"), nullable=False),
    Column("deleted", Boolean, nullable=False, server_default=false()),
    # summaries of the effective numeric points, kept by the writer (migration 0003)
    Column("n_points", Integer, nullable=False, server_default="0"),
    Column("min_value", Float),
    Column("max_value", Float),
    # best-per-run and "this metric across runs" start from the metric
    Index(None, "metric_id", "run_id"),
    Index(None, "run_id", "metric_id"),
)

# special: NULL for an ordinary value; 1 = NaN (SQLite stores NaN as NULL), 2 = -0.0 (SQLite
# stores a REAL -0.0 as integer 0). value_json holds values that are not numbers.
SPECIAL_NAN = 1
SPECIAL_NEG_ZERO = 2

points = Table(
    "points",
    metadata,
    Column("series_id", Integer, ForeignKey("series.id"), primary_key=True),
    Column("rev", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("epoch", Integer, nullable=False),
    Column("value", Float),
    Column("special", SmallInteger),
    Column("value_json", Text),
    Column("recorded_at", BigInteger, nullable=False),
    # the step of log_metrics (migration 0007); NULL for the Trainer's points (update_metric),
    # which have none: their x axis is the epoch
    Column("step", BigInteger),
    sqlite_with_rowid=False,
)

#: The points of a block of :data:`point_blocks`: block ``b`` of a (series, rev) holds seqs
#: ``b * BLOCK .. (b + 1) * BLOCK - 1``.
BLOCK = 1024

point_blocks = Table(
    "point_blocks",
    metadata,
    # per aligned block of BLOCK seqs of a (series, rev), what a chart's downsampling needs
    # (migration 0008): the count, the lowest and highest numeric value with the smallest seq
    # that has it, and the first seq whose value is not a number (NaN or not numeric); kept by
    # the writer in the points' transaction, derived from ``points`` alone
    Column("series_id", Integer, ForeignKey("series.id"), primary_key=True),
    Column("rev", Integer, primary_key=True),
    Column("block", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
    Column("min_value", Float),
    Column("min_seq", Integer),
    Column("max_value", Float),
    Column("max_seq", Integer),
    Column("gap_seq", Integer),
    sqlite_with_rowid=False,
)

configs = Table(
    "configs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False, index=True),
    Column("stage_id", Integer, ForeignKey("stages.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("captured_at", BigInteger, nullable=False),
    Column("num_epochs", Integer),
    Column("train_per_device_batch_size", Integer),
    Column("train_dl_kwargs", Text),
    Column("eval_per_device_batch_size", Integer),
    Column("eval_dl_kwargs", Text),
    Column("gradient_accumulation_steps", Integer),
    Column("gradient_clip_value", Float),
    Column("train_total_batch_size", Integer),
    Column("eval_total_batch_size", Integer),
    Column("num_update_steps_per_epoch", Integer),
    Column("num_local_update_steps_per_epoch", Integer),
    Column("max_num_train_steps", Integer),
    Column("is_local_process_zero", Boolean),
    Column("is_world_process_zero", Boolean),
    Column("is_distributed", Boolean),
    Column("mixed_precision", Text),
    Column("num_processes", Integer),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("stage_id", Integer, ForeignKey("stages.id")),
    Column("epoch", Integer),
    Column("kind", Text, nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    Column("payload", Text, nullable=False, server_default="{}"),
    Index(None, "run_id", "kind"),
)

params = Table(
    "params",
    metadata,
    # one row per logged change of a run's hyperparameter (migration 0007), never overwritten: the
    # latest row of a (run, key) is its current value (v_params.is_current)
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("key", Text, nullable=False),
    # the number, for an int or float that is not NaN (booleans are not numbers)
    Column("value", Float),
    # the str itself; for any other value but None its JSON text
    Column("value_text", Text),
    # the JSON of the value, exact (NaN, Infinity and -0.0 as Python's json writes them)
    Column("value_json", Text, nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    Index(None, "run_id", "key"),
    Index(None, "key", "value"),
)

store_info = Table(
    "store_info",
    metadata,
    # one row (id 1), made with the schema (migration 0006): the database's identity, which
    # spill files name so that they are never applied to another database
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

#: The documented views and their columns, in order. Tests pin these; changing them breaks users.
VIEW_COLUMNS: dict[str, tuple[str, ...]] = {
    "v_runs": (
        "run_id", "run_uuid", "experiment", "run_name", "status", "created_at", "ended_at",
        "current_epoch", "num_stages", "host", "tags",
    ),
    "v_metrics": (
        "run_id", "run_name", "experiment", "stage", "metric", "seq", "epoch", "value",
        "value_json", "recorded_at", "step",
    ),
    "v_configs": (
        "run_id", "stage", "captured_at", "kind", "num_epochs", "train_per_device_batch_size",
        "train_dl_kwargs", "eval_per_device_batch_size", "eval_dl_kwargs",
        "gradient_accumulation_steps", "gradient_clip_value", "train_total_batch_size",
        "eval_total_batch_size", "num_update_steps_per_epoch", "num_local_update_steps_per_epoch",
        "max_num_train_steps", "is_local_process_zero", "is_world_process_zero", "is_distributed",
        "mixed_precision", "num_processes",
    ),
    "v_events": ("run_id", "stage", "epoch", "kind", "recorded_at", "payload", "event_id"),
    "v_summaries": (
        "run_id", "run_name", "experiment", "stage", "metric", "n_points", "min_value", "max_value",
    ),
    "v_params": (
        "run_id", "run_name", "experiment", "key", "value", "value_text", "value_json", "recorded_at", "is_current",
    ),
}
