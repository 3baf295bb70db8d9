"""The small family of errors raised by runhistory-sql.

Each message names the thing that is wrong and the fix.
"""
from __future__ import annotations


class RunHistorySQLError(Exception):
    """Base class of every error runhistory-sql raises on purpose."""


class DatabaseURLError(RunHistorySQLError, ValueError):
    """The database URL cannot be used: malformed, unknown dialect, missing driver or directory."""


class DatabaseUnavailableError(RunHistorySQLError):
    """The database could not be reached (server down, wrong credentials, no permission)."""


class SchemaVersionError(RunHistorySQLError):
    """The database schema is at another revision than this version of runhistory-sql needs."""


class RunNotFoundError(RunHistorySQLError, LookupError):
    """No run of that name (or id) exists in the experiment."""


class RunExistsError(RunHistorySQLError):
    """A run of that name already exists and ``resume="never"`` was asked for."""


class RunInUseError(RunHistorySQLError):
    """The run is held by another live process."""


class WriteError(RunHistorySQLError):
    """Points could not be committed to the database."""


class InvalidArgumentError(RunHistorySQLError, ValueError):
    """An argument cannot be used as given (a sort order, a metric no run has); the message
    says what can."""


class MissingExtraError(RunHistorySQLError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


class QueryError(RunHistorySQLError, ValueError):
    """``runhistory-sql query`` refused the statement (it writes, or is more than one) or it failed."""


class ExportError(RunHistorySQLError, ValueError):
    """The export cannot be written as asked: an unknown file type, nothing to export, a bad path."""


class PlotError(RunHistorySQLError, ValueError):
    """The plot cannot be drawn as asked: an unknown metric, output type or axis."""
