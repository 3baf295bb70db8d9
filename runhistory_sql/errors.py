"""The small family of errors raised by runhistory-sql.

Each message names the thing that is wrong and the fix.
"""
from __future__ import annotations


def brief(error: BaseException | None) -> str:
    """The first line of an error's message: of the driver's own error for a SQLAlchemy one
    (whose message runs to several lines and names its class)."""
    if error is None:
        return ""
    cause = getattr(error, "orig", None) or error
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def unreachable(shown_url: str, cause: BaseException) -> "DatabaseUnavailableError":
    """The error for a database that cannot be reached or used, naming it (``shown_url``,
    masked), the driver's first line, and the fix."""
    return DatabaseUnavailableError(
        f"Cannot use database {shown_url}: {brief(cause)}. Check that the server is running "
        "and the URL and credentials are right."
    )


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


class InvalidArgumentError(RunHistorySQLError, ValueError):
    """An argument cannot be used as given (a sort order, a metric no run has); the message
    says what can."""


class MissingExtraError(RunHistorySQLError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


class QueryError(RunHistorySQLError, ValueError):
    """``runhistory-sql query`` refused the statement (it writes, is more than one, or the role may do
    more than read) or it failed (an error, the time limit, too large a result)."""


class ExportError(RunHistorySQLError, ValueError):
    """The export cannot be written as asked: an unknown file type, nothing to export, a bad path."""


class PlotError(RunHistorySQLError, ValueError):
    """The plot cannot be drawn as asked: an unknown metric, output type or axis."""


class SpillFileError(RunHistorySQLError, ValueError):
    """A spill file cannot be imported as it is: missing, not a spill file, of an old format,
    cut short or damaged. Nothing of it was imported."""


class WrongDatabaseError(SpillFileError):
    """The spill file belongs to another database (or to a run this one does not hold); the
    message names the database it was written for."""
