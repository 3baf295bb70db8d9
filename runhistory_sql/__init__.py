"""runhistory-sql: a persistent, SQL-backed RunHistory for pytorch-accelerated.

The package, by layer (imports flow down only; ``tests/test_layout.py`` checks it)::

    cli/      the runhistory-sql command: parse, call one library function, format
    trainer/  pytorch-accelerated plug-ins: RunTrackingCallback, TrackedModelFreezer, the demo
    tracker/  the accelerate plug-in: SQLTracker (importing it registers log_with="runhistory_sql")
    read/     RunStore, the one door to past runs: listings, reports, query, export, plot
    write/    SQLRunHistory, claiming a run, the background writer, batches, spill files
    db/       engines and URLs, the schema, how a value is stored, migrations
    errors    the error family, used by every layer

Importing the package is cheap and has no side effect: the trainer-facing classes (which import
torch) load on first use; ``from runhistory_sql import SQLTracker`` also registers the tracker
with accelerate.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    DatabaseUnavailableError,
    DatabaseURLError,
    ExportError,
    InvalidArgumentError,
    MissingExtraError,
    PlotError,
    QueryError,
    RunExistsError,
    RunHistorySQLError,
    RunInUseError,
    RunNotFoundError,
    SchemaVersionError,
    SpillFileError,
    WrongDatabaseError,
)

if TYPE_CHECKING:
    from .trainer.callback import RunTrackingCallback
    from .trainer.freezer import TrackedModelFreezer
    from .tracker.sqltracker import SQLTracker
    from .write.history import SQLRunHistory
    from .read.store import RunStore

__all__ = [
    "SQLRunHistory",
    "RunStore",
    "RunTrackingCallback",
    "TrackedModelFreezer",
    "SQLTracker",
    "RunHistorySQLError",
    "DatabaseURLError",
    "DatabaseUnavailableError",
    "SchemaVersionError",
    "RunNotFoundError",
    "RunExistsError",
    "RunInUseError",
    "InvalidArgumentError",
    "QueryError",
    "ExportError",
    "PlotError",
    "MissingExtraError",
    "SpillFileError",
    "WrongDatabaseError",
]

_LAZY = {
    "SQLRunHistory": "write.history", "RunStore": "read.store",
    "RunTrackingCallback": "trainer.callback", "TrackedModelFreezer": "trainer.freezer",
    "SQLTracker": "tracker.sqltracker",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
