"""runhistory-sql: a persistent, SQL-backed RunHistory for pytorch-accelerated.

Importing the package is cheap: the trainer-facing classes (which import torch) load on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    DatabaseUnavailableError,
    DatabaseURLError,
    MissingExtraError,
    RunExistsError,
    RunHistorySQLError,
    RunInUseError,
    RunNotFoundError,
    SchemaVersionError,
    SpillFileError,
    WriteError,
    WrongDatabaseError,
)

if TYPE_CHECKING:
    from .callback import RunTrackingCallback
    from .freezer import TrackedModelFreezer
    from .history import SQLRunHistory
    from .store import RunStore

__all__ = [
    "SQLRunHistory",
    "RunStore",
    "RunTrackingCallback",
    "TrackedModelFreezer",
    "RunHistorySQLError",
    "DatabaseURLError",
    "DatabaseUnavailableError",
    "SchemaVersionError",
    "RunNotFoundError",
    "RunExistsError",
    "RunInUseError",
    "WriteError",
    "MissingExtraError",
    "SpillFileError",
    "WrongDatabaseError",
]

_LAZY = {"SQLRunHistory": "history", "RunStore": "store", "RunTrackingCallback": "callback", "TrackedModelFreezer": "freezer"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
